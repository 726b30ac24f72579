// Try a model: send one image (and optional demographics) to POST /v1/models/{ref}/predict and show
// the probability (or each class's / finding's), the decision, the exit that decided and the
// provenance. A predictor key cannot list models (that needs read), so it types an alias or an id.
import { upload } from "../api.js";
import { can } from "../session.js";
import { alertBox, clearProblem, el, field, fmt, setContent, showProblem, statusLine, table } from "../ui.js";
import { aliasesOf, allModels } from "./models.js";

const DEMOGRAPHIC_ROWS = 3;

export async function render(main) {
  const reader = can("read");
  let models = [];
  let listError = null;
  if (reader) {
    try {
      models = await allModels();
    } catch (error) {
      listError = error;
    }
  }
  const modelField = reader && models.length ? modelSelect(models) : field("Model or alias", el("input", { name: "model_ref", required: true, autocomplete: "off", spellcheck: "false", value: "production" }),
    "An alias of your organisation (e.g. production) or a model version id (mdl_…).");
  const wanted = new URLSearchParams(location.search).get("ref");
  if (wanted && (modelField.input.tagName === "INPUT" || [...modelField.input.options].some((o) => o.value === wanted))) modelField.input.value = wanted;
  const image = field("Image", el("input", { name: "images", type: "file", required: true, accept: "image/png,image/jpeg,application/dicom,.dcm" }), "A PNG, JPEG or DICOM image.");
  const pairs = [];
  const attributesOf = (ref) => models.find((m) => m.id === ref || m.aliases.includes(ref))?.config?.sensitive_attributes || [];
  const attributes = attributesOf(modelField.input.value);
  for (let i = 0; i < DEMOGRAPHIC_ROWS; i++) {
    const attr = field(`Demographic attribute ${i + 1}`, el("input", { name: `demographic_attribute_${i}`, autocomplete: "off", spellcheck: "false", value: attributes[i] || "" }));
    const group = field(`Group for attribute ${i + 1}`, el("input", { name: `demographic_group_${i}`, autocomplete: "off", spellcheck: "false" }));
    pairs.push({ attr, group });
  }
  const demographics = el("fieldset", { class: "demographics" }, el("legend", {}, "Demographics (optional)"),
    el("p", { class: "hint" }, "Named like the cohort's attributes, e.g. skin_tone = dark. They are stored with the prediction for monitoring."),
    pairs.map(({ attr, group }) => el("div", { class: "row" }, attr.node, group.node)));
  const submit = el("button", { type: "submit" }, "Predict");
  const form = el("form", { class: "card", novalidate: true, "aria-labelledby": "try-h" }, el("h2", { id: "try-h" }, "Send an image"),
    modelField.node, image.node, demographics, submit);
  const result = el("section", { "aria-labelledby": "result-h", "aria-live": "polite" });
  setContent(main, listError ? alertBox(`The models could not be listed: ${listError.message}`) : null, form, result);

  if (modelField.input.tagName === "SELECT") {
    modelField.input.addEventListener("change", () => {
      const names = attributesOf(modelField.input.value);
      pairs.forEach(({ attr }, i) => {
        if (!attr.input.dataset.touched) attr.input.value = names[i] || "";
      });
    });
    pairs.forEach(({ attr }) => attr.input.addEventListener("input", () => (attr.input.dataset.touched = "1")));
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearProblem(form);
    const ref = modelField.input.value.trim();
    const file = image.input.files[0];
    const missing = [];
    if (!ref) missing.push({ field: "model_ref", message: "choose a model or an alias" });
    if (!file) missing.push({ field: "images", message: "choose an image file" });
    if (missing.length) {
      showProblem(form, { message: "The form is incomplete.", errors: missing });
      return;
    }
    const given = {};
    for (const { attr, group } of pairs) {
      const name = attr.input.value.trim();
      if (name && group.input.value.trim()) given[name] = group.input.value.trim();
    }
    const body = new FormData();
    body.append("images", file, file.name);
    if (Object.keys(given).length) body.append("demographics", JSON.stringify([given]));
    submit.disabled = true;
    result.replaceChildren(statusLine("Predicting…"));
    try {
      const answer = await upload(`/v1/models/${encodeURIComponent(ref)}/predict`, body);
      result.replaceChildren(...showAnswer(answer, reader));
    } catch (error) {
      result.replaceChildren();
      showProblem(form, placed(error));
    } finally {
      submit.disabled = false;
    }
  });
}

function modelSelect(models) {
  const aliases = aliasesOf(models);
  const select = el("select", { name: "model_ref" },
    aliases.length ? el("optgroup", { label: "Aliases" }, aliases.map((a) => el("option", { value: a.name }, `${a.name} → ${a.model.id}`))) : null,
    el("optgroup", { label: "Versions" }, models.map((m) => el("option", { value: m.id }, `${m.id} (${m.method}, ${m.backbone})`))));
  return field("Model or alias", select, "An alias follows promotions; a version id stays on that version.");
}

/** The API's refusals put where they belong: an image's at the file field, a model's at the model field. */
function placed(error) {
  error.errors = error.errors.map((e) => {
    if (e.field) return e.field.startsWith("images") ? { ...e, field: "images" } : e;
    if (e.image !== undefined || e.file !== undefined) return { ...e, field: "images" };
    return e;
  });
  if (!error.errors.length && (error.status === 404 || /model|alias/.test(error.message))) {
    error.errors = [{ field: "model_ref", message: error.message }];
  } else if (!error.errors.length && (error.status === 415 || error.status === 413 || /image/.test(error.message))) {
    error.errors = [{ field: "images", message: error.message }];
  }
  return error;
}

function showAnswer(answer, reader) {
  const p = answer.predictions[0];
  const nodes = [el("h2", { id: "result-h" }, `Prediction for ${p.image}`)];
  const facts = [];
  if (answer.task === "multiclass") {
    facts.push(["Decision", `${p.predicted_class} (${fmt(p.probability, 3)})`]);
    facts.push(["Decision rule", answer.decision?.rule || "argmax"]);
  } else if (answer.task === "multilabel") {
    const present = Object.entries(p.findings).filter(([, f]) => f.decision === 1).map(([name]) => name);
    facts.push(["Decision", present.length ? `present: ${present.join(", ")}` : "no finding present"]);
  } else {
    facts.push(["Probability", fmt(p.probability, 3)]);
    facts.push(["Decision", `${p.label === 1 ? "positive (1)" : "negative (0)"}: probability ${p.label === 1 ? "≥" : "<"} the operating threshold ${fmt(answer.operating_threshold, 3)}`]);
  }
  facts.push(["Exit taken", `exit ${p.exit_index + 1} (index ${p.exit_index}; the last exit is the final head)`]);
  facts.push(["Confidence", fmt(p.confidence, 3)]);
  facts.push(["Prediction id", el("code", {}, p.id)]);
  nodes.push(el("dl", { class: "facts prediction" }, facts.flatMap(([t, v]) => [el("dt", {}, t), el("dd", {}, v)])));
  if (answer.task === "multiclass") {
    nodes.push(table("Class probabilities", [["Class", ([name]) => name], ["Probability", ([, v]) => fmt(v, 3)]],
      Object.entries(p.probabilities)));
  } else if (answer.task === "multilabel") {
    nodes.push(table("Findings", [["Finding", ([name]) => name], ["Probability", ([, f]) => fmt(f.probability, 3)], ["Threshold", ([, f]) => fmt(f.threshold, 3)],
      ["Decision", ([, f]) => (f.decision === 1 ? "present" : "absent")]], Object.entries(p.findings)));
  }
  const evaluation = answer.evaluation_id
    ? (reader ? el("a", { href: `/console/evaluations/${encodeURIComponent(answer.evaluation_id)}` }, answer.evaluation_id) : el("code", {}, answer.evaluation_id))
    : "none";
  const provenance = [
    ["Model version", reader ? el("a", { href: `/console/models/${encodeURIComponent(answer.model_id)}` }, answer.model_id) : el("code", {}, answer.model_id)],
    ["Through alias", answer.alias || "— (a version id was named)"],
    ["SHA-256 (model.json)", el("code", { class: "sha-full" }, answer.model_sha256)],
    ["Evaluation", evaluation],
    ["Gate override", answer.gate_override ? `yes: ${answer.gate_override}` : "none"],
  ];
  nodes.push(el("h3", {}, "Provenance"), el("dl", { class: "facts provenance" }, provenance.flatMap(([t, v]) => [el("dt", {}, t), el("dd", {}, v)])));
  if (p.demographics) nodes.push(el("p", { class: "hint" }, `Stored with demographics: ${Object.entries(p.demographics).map(([k, v]) => `${k} = ${v ?? "unknown"}`).join(", ")}`));
  return nodes;
}
