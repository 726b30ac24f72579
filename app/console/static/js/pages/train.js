// Start training: a form built from the request schema of POST /v1/jobs in the API document, so a
// field added to the training config shows up here with its bounds, default and description.
// The cohort is one of the organisation's ready cohorts; the sensitive attributes are that cohort's.
// Settings the form has no control for go in the "advanced (JSON)" box, merged over the form.
import { api } from "../api.js";
import { alertBox, clearProblem, el, field, setContent, showProblem, statusLine } from "../ui.js";

/** Shown first, in this order; every other simple field goes under "More settings". */
const PRIMARY = ["backbone", "epochs", "batch_size", "lr", "seed", "patience", "fairness_weight", "image_size"];
/** Fields with a control of their own (not built generically). */
const OWN = new Set(["cohort_id", "method", "multi_exit", "terms", "sensitive_attributes"]);
const LABELS = { lr: "Learning rate (lr)", fairness_weight: "Fairness weight (λ)", ic_pool_size: "IC pool size", amp: "Mixed precision (amp)" };
const ACRONYMS = new Set(["lr", "ic", "auc", "amp", "pfd"]);
/** What each method alias trains (config.py METHOD_ALIASES), for the option's hint. */
const METHOD_HINTS = {
  erm: "plain training, single exit",
  pairwise_eo: "single exit + pairwise equalised-odds hinge",
  fair_multi_exit: "multi-exit network, no fairness term",
  fair_multi_exit_pairwise_eo: "multi-exit network + pairwise equalised-odds hinge",
};

export async function render(main) {
  let schema, document_, cohorts;
  try {
    [document_, cohorts] = await Promise.all([api("/openapi.json"), readyCohorts()]);
    schema = requestSchema(document_);
  } catch (error) {
    setContent(main, alertBox(`The training form cannot be built: ${error.message}`));
    return;
  }
  if (!cohorts.length) {
    setContent(main, el("p", { class: "empty" }, "No cohort is ready for training yet. ", el("a", { href: "/console/" }, "Upload a cohort"), " first."));
    return;
  }
  const wanted = new URLSearchParams(location.search).get("cohort");
  setContent(main, buildForm(schema, document_, cohorts, wanted));
}

async function readyCohorts() {
  const ready = [];
  let cursor = null;
  do {
    const page = await api(`/v1/cohorts?limit=200${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`);
    ready.push(...page.items.filter((c) => c.status === "ready"));
    cursor = page.next_cursor;
  } while (cursor && ready.length < 1000);
  return ready;
}

function deref(document_, schema) {
  let s = schema || {};
  while (s.$ref) s = document_.components.schemas[s.$ref.split("/").pop()];
  return s;
}

function requestSchema(document_) {
  const body = document_.paths["/v1/jobs"].post.requestBody.content["application/json"].schema;
  return deref(document_, body);
}

/** A property as a simple control: {kind, nullable, enum, ...bounds} or null (needs JSON). */
function simpleType(document_, prop) {
  let s = prop;
  let nullable = false;
  if (Array.isArray(prop.anyOf)) {
    const others = prop.anyOf.filter((a) => a.type !== "null");
    nullable = others.length < prop.anyOf.length;
    if (others.length !== 1) return null;
    s = others[0];
  }
  s = deref(document_, s);
  if (Array.isArray(s.enum) && s.enum.every((v) => typeof v === "string")) return { kind: "enum", nullable, s };
  if (["integer", "number", "boolean"].includes(s.type)) return { kind: s.type, nullable, s };
  if (s.type === "string") return { kind: "string", nullable, s };
  return null;
}

function labelOf(name, prop) {
  if (LABELS[name]) return LABELS[name];
  const words = name.split("_").map((w) => (ACRONYMS.has(w) ? w.toUpperCase() : w)).join(" ");
  return words.charAt(0).toUpperCase() + words.slice(1);
}

function bounds(s) {
  const parts = [];
  if (s.minimum !== undefined) parts.push(`≥ ${s.minimum}`);
  if (s.exclusiveMinimum !== undefined) parts.push(`> ${s.exclusiveMinimum}`);
  if (s.maximum !== undefined) parts.push(`≤ ${s.maximum}`);
  if (s.exclusiveMaximum !== undefined) parts.push(`< ${s.exclusiveMaximum}`);
  return parts.join(", ");
}

/** One generic control: {node, read() -> [present, value]}; ``present`` false leaves it to the API's default. */
function control(name, prop, type, always) {
  const { kind, nullable, s } = type;
  const fallback = prop.default !== undefined ? prop.default : s.default;
  const hintParts = [prop.description || s.description, bounds(s), fallback !== undefined ? `default ${fallback === null ? "none" : fallback}` : "",
    nullable ? "empty: none" : ""].filter(Boolean);
  const hint = hintParts.join(" · ");
  const label = labelOf(name, prop);
  if (kind === "boolean") {
    const input = el("input", { type: "checkbox", name, id: `f-${name}`, checked: fallback === true, "aria-describedby": hint ? `f-${name}-hint` : null });
    const node = el("div", { class: "field check" }, el("div", { class: "row-inline" }, input, el("label", { for: `f-${name}` }, label)),
      hint ? el("p", { class: "hint", id: `f-${name}-hint` }, hint) : null);
    return { name, node, read: () => [always || input.checked !== Boolean(fallback), input.checked] };
  }
  let input;
  if (kind === "enum") {
    input = el("select", { name }, nullable ? el("option", { value: "" }, "(none)") : null,
      s.enum.map((v) => el("option", { value: v, selected: v === fallback }, v)));
  } else if (kind === "string") {
    input = el("input", { name, type: "text", value: fallback ?? "" });
  } else {
    const step = kind === "integer" ? 1 : "any";
    input = el("input", { name, type: "number", step, inputmode: kind === "integer" ? "numeric" : "decimal", value: fallback ?? "" });
  }
  const read = () => {
    const raw = input.value.trim();
    let value;
    if (raw === "") value = nullable || kind === "string" ? null : "";
    else if (kind === "integer" || kind === "number") value = Number.isFinite(Number(raw)) ? Number(raw) : raw;
    else value = raw;
    if (value === "") value = null; // a required number left empty: the API says what it needs
    const isDefault = value === fallback || (value === null && (fallback === undefined || fallback === null));
    return [always || !isDefault, value];
  };
  return { name, node: field(label, input, hint).node, read };
}

function buildForm(schema, document_, cohorts, wanted) {
  const props = schema.properties;
  const form = el("form", { class: "card train-form", novalidate: true, "aria-labelledby": "train-h" }, el("h2", { id: "train-h" }, "Training configuration"));

  // cohort and its attributes
  const cohortSelect = el("select", { name: "cohort_id" }, cohorts.map((c) =>
    el("option", { value: c.id, selected: c.id === wanted || c.name === wanted }, `${c.name} (${c.n_items} images, ${c.task}, ${c.image_size} px)`)));
  const cohortField = field("Cohort", cohortSelect, "a ready cohort of your organisation");
  const attributes = el("fieldset", { class: "field attributes" });
  const showAttributes = () => {
    const cohort = cohorts.find((c) => c.id === cohortSelect.value);
    const prop = props.sensitive_attributes || {};
    attributes.replaceChildren(el("legend", {}, "Sensitive attributes"),
      el("p", { class: "hint", id: "attributes-hint" }, [prop.description, prop.maxItems ? `at most ${prop.maxItems}` : ""].filter(Boolean).join(" · ")),
      ...attributesOf(cohort).map(([name, groups], i) => {
        const id = `attr-${i}`;
        return el("div", { class: "row-inline" },
          el("input", { type: "checkbox", name: "sensitive_attributes", value: name, id, checked: i === 0, "aria-describedby": "attributes-hint" }),
          el("label", { for: id }, name, groups ? el("span", { class: "hint" }, ` (${groups} groups)`) : null));
      }));
  };
  cohortSelect.addEventListener("change", showAttributes);
  showAttributes();

  // method: the aliases the schema gives as examples, and each registered term alone on a single- or multi-exit network
  const aliases = props.method?.examples || [props.method?.default || "erm"];
  const termNames = props.terms?.["x-term-names"] || [];
  const composites = termNames.filter((t) => !aliases.some((a) => a === t || a.endsWith(`_${t}`)))
    .flatMap((t) => [`single_exit+${t}`, `multi_exit+${t}`]);
  const methodSelect = el("select", { name: "method" },
    el("optgroup", { label: "Methods" }, aliases.map((m) => el("option", { value: m, selected: m === props.method?.default }, METHOD_HINTS[m] ? `${m} — ${METHOD_HINTS[m]}` : m))),
    composites.length ? el("optgroup", { label: "A fairness term" }, composites.map((m) => el("option", { value: m }, m.replace("+", " + ").replace("_exit", "-exit")))) : null);
  const methodField = field("Method", methodSelect, props.method?.description || "");
  const termWeight = field("Term weight (λ)", el("input", { name: "terms.0.weight", type: "number", step: "any", inputmode: "decimal" }), "empty: the term's own default");
  const teacher = field("Teacher model version", el("input", { name: "terms.0.teacher_model_version_id", type: "text" }),
    "mfd distils from a model version of this organisation trained with keep_weights");
  const termBox = el("div", { class: "form-grid term-settings" }, termWeight.node, teacher.node);

  // every other field of the schema: simple ones as controls, the rest named in the JSON box's hint
  const primary = [], more = [], complex = [];
  for (const [name, prop] of Object.entries(props)) {
    if (OWN.has(name)) continue;
    const type = simpleType(document_, prop);
    if (!type) complex.push(name);
    else if (PRIMARY.includes(name)) primary.push([name, prop, type]);
    else more.push([name, prop, type]);
  }
  primary.sort((a, b) => PRIMARY.indexOf(a[0]) - PRIMARY.indexOf(b[0]));
  const primaryControls = primary.map(([name, prop, type]) => control(name, prop, type, name !== "image_size"));
  const fairnessWeight = primaryControls.find((c) => c.name === "fairness_weight");
  const showTerm = () => {
    const term = methodSelect.value.includes("+") ? methodSelect.value.split("+")[1] : null;
    termBox.hidden = !term;
    teacher.node.hidden = term !== "mfd";
    if (fairnessWeight) fairnessWeight.node.hidden = !usesPairwise(methodSelect.value);
  };
  methodSelect.addEventListener("change", showTerm);
  showTerm();
  const moreControls = more.map(([name, prop, type]) => control(name, prop, type, false));
  const advanced = field("Advanced (JSON)", el("textarea", { name: "advanced", rows: 4, spellcheck: "false", placeholder: '{"augment": {"hflip": false}}' }),
    `merged over the form; e.g. ${complex.join(", ")}`);

  const status = statusLine();
  const submit = el("button", { type: "submit" }, "Start training");
  form.append(
    el("div", { class: "form-grid wide" }, cohortField.node, methodField.node), termBox, attributes,
    el("div", { class: "form-grid" }, primaryControls.map((c) => c.node)),
    el("details", { class: "more" }, el("summary", {}, `More settings (${moreControls.length})`), el("div", { class: "form-grid" }, moreControls.map((c) => c.node))),
    advanced.node, el("div", { class: "row" }, submit), status);

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearProblem(form);
    let body;
    try {
      body = bodyOf(form, methodSelect.value, [...primaryControls, ...moreControls], termWeight.input, teacher.input, advanced.input);
    } catch (error) {
      showProblem(form, error);
      return;
    }
    submit.disabled = true;
    status.textContent = "Checking the configuration against the cohort…";
    try {
      const job = await api("/v1/jobs", { method: "POST", json: body });
      status.textContent = `Queued as ${job.id}.`;
      location.assign(`/console/jobs/${encodeURIComponent(job.id)}`);
    } catch (error) {
      status.textContent = "";
      submit.disabled = false;
      showProblem(form, error);
    }
  });
  return form;
}

/** The cohort's attributes (its own and derived groupings) with their number of groups, from its summary. */
function attributesOf(cohort) {
  const groupings = cohort?.summary?.groupings || {};
  const single = Object.entries(groupings).filter(([, g]) => (g.attributes || []).length === 1);
  if (!single.length) return (cohort?.attributes || []).map((name) => [name, null]);
  return single.map(([name, g]) => [name, new Set((g.cells || []).map((c) => JSON.stringify(c.group))).size || null]);
}

/** Whether a method (an alias or ``exits+term``) trains the pairwise_eo hinge, whose λ is ``fairness_weight``. */
function usesPairwise(method) {
  return method.split("+").some((part) => part === "pairwise_eo" || part.endsWith("_pairwise_eo"));
}

function bodyOf(form, method, controls, termWeight, teacher, advanced) {
  const body = { cohort_id: form.elements.cohort_id.value };
  body.sensitive_attributes = [...form.querySelectorAll('input[name="sensitive_attributes"]:checked')].map((i) => i.value);
  if (method.includes("+")) {
    const [exits, term] = method.split("+");
    const config = { name: term };
    if (termWeight.value.trim() !== "") config.weight = Number(termWeight.value);
    if (term === "mfd") config.teacher_model_version_id = teacher.value.trim();
    body.multi_exit = exits === "multi_exit";
    body.terms = [config];
  } else {
    body.method = method;
  }
  for (const c of controls) {
    const [present, value] = c.read();
    if (present) body[c.name] = value;
  }
  if (!usesPairwise(method)) delete body.fairness_weight; // its control is hidden: λ of a term the run does not have
  const text = advanced.value.trim();
  if (text) {
    let extra;
    try {
      extra = JSON.parse(text);
    } catch (error) {
      throw { message: "The advanced settings are not valid JSON.", errors: [{ field: "advanced", message: error.message }] };
    }
    if (!extra || typeof extra !== "object" || Array.isArray(extra)) {
      throw { message: "The advanced settings must be a JSON object.", errors: [{ field: "advanced", message: "a JSON object of training settings" }] };
    }
    Object.assign(body, extra);
  }
  return body;
}
