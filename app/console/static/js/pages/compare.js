// Compare evaluations, paired (POST /v1/compare): each against the reference on the samples they
// share, with paired-bootstrap intervals, Holm-adjusted p values and a verdict per attribute.
// ?ids=a,b,c preselects evaluations (the first is the reference) and runs the comparison at once.
import { api } from "../api.js";
import { forestPlot } from "../charts.js";
import { alertBox, clearProblem, el, field, fmt, fmtInterval, fmtTime, setContent, showProblem, statusLine, table } from "../ui.js";

export async function render(main) {
  const wanted = (new URLSearchParams(location.search).get("ids") || "").split(",").map((s) => s.trim()).filter(Boolean);
  let items;
  try {
    items = await listReady();
  } catch (error) {
    setContent(main, alertBox(`The evaluations could not be listed: ${error.message}`));
    return;
  }
  // Asked-for ids first, in the order asked (the first is the reference), then the rest, newest first.
  const byId = new Map(items.map((e) => [e.id, e]));
  const missing = wanted.filter((id) => !byId.has(id)).map((id) => ({ id, name: id, status: "unknown", missing: true }));
  const ordered = [...wanted.filter((id) => byId.has(id)).map((id) => byId.get(id)), ...missing, ...items.filter((e) => !wanted.includes(e.id))];
  const results = el("div", { "aria-live": "polite" });
  const form = compareForm(ordered, new Set(wanted), results);
  setContent(main, form, results);
  if (wanted.length >= 2) form.requestSubmit();
}

async function listReady() {
  const items = [];
  let cursor = null;
  do {
    const page = await api(`/v1/evaluations?limit=200${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`);
    items.push(...page.items);
    cursor = page.next_cursor;
  } while (cursor && items.length < 1000);
  return items.filter((e) => e.status === "ready");
}

function describe(e) {
  if (e.missing) return `${e.id} (not found, or not ready)`;
  const what = e.model_version_id ? `model ${e.model_version_id}` : "audit";
  return `${e.name || e.id} — ${what}, ${e.task}, ${e.cohort_id ? `cohort ${e.cohort_id}` : "uploaded predictions"}${e.split ? `, ${e.split}` : ""}, ${fmtTime(e.created_at)}`;
}

function compareForm(ordered, checked, results) {
  const boxes = ordered.map((e) => {
    const box = el("input", { type: "checkbox", value: e.id, checked: checked.has(e.id) });
    return { e, box, node: el("label", {}, box, " ", describe(e)) };
  });
  const reference = el("select", { name: "reference" });
  const syncReference = () => {
    const previous = reference.value;
    const chosen = boxes.filter((b) => b.box.checked);
    reference.replaceChildren(...chosen.map((b) => el("option", { value: b.e.id }, b.e.name || b.e.id)));
    if (chosen.some((b) => b.e.id === previous)) reference.value = previous;
  };
  boxes.forEach((b) => b.box.addEventListener("change", syncReference));
  syncReference();
  const referenceField = field("Reference (the others are compared to it)", reference);
  const nBoot = field("Bootstrap resamples", el("input", { name: "n_boot", type: "number", min: 100, max: 10000, step: 100, value: 1000 }),
    "100 to 10,000: more gives steadier intervals and takes longer.");
  const status = statusLine();
  const picker = el("fieldset", { class: "picker field", name: "evaluation_ids" }, el("legend", {}, "Evaluations to compare (two to eight, ready ones)"),
    boxes.length ? boxes.map((b) => b.node) : el("p", { class: "empty" }, "No ready evaluation yet."));
  const form = el("form", { "aria-labelledby": "compare-h" }, el("h2", { id: "compare-h" }, "Choose evaluations"), picker,
    el("div", { class: "row" }, referenceField.node, nBoot.node), el("button", { type: "submit" }, "Compare"), status);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearProblem(form);
    const chosen = boxes.filter((b) => b.box.checked).map((b) => b.e.id);
    const ids = [reference.value, ...chosen.filter((id) => id !== reference.value)].filter(Boolean);
    results.replaceChildren();
    status.textContent = `Comparing ${ids.length} evaluations…`;
    try {
      const comparison = await api("/v1/compare", { method: "POST", json: { evaluation_ids: ids, n_boot: Number(nBoot.input.value) } });
      status.textContent = "";
      results.replaceChildren(...showComparison(comparison));
      history.replaceState(null, "", `/console/compare?ids=${ids.map(encodeURIComponent).join(",")}`);
    } catch (error) {
      status.textContent = "";
      showProblem(form, error);
    }
  });
  return form;
}

function pText(p) {
  if (p === null || p === undefined) return "—";
  if (p === 0) return "0";
  return p < 0.001 ? p.toExponential(1) : fmt(p, 3);
}

function showComparison(c) {
  // Two evaluations of one name (e.g. two trainings on one cohort) are told apart by their model or id.
  const counts = {};
  c.evaluations.forEach((e) => { counts[e.name] = (counts[e.name] || 0) + 1; });
  const names = Object.fromEntries(c.evaluations.map((e) => [e.id, !e.name ? e.id : counts[e.name] > 1 ? `${e.name} (${e.model_version_id || e.id})` : e.name]));
  const label = (id) => `${names[id] || id}`;
  const intro = el("p", {}, `${c.n_matched} samples shared by ${c.models.length === 2 ? "both" : `all ${c.models.length}`} evaluations, ${c.config.n_boot} paired bootstrap resamples; reference: ${label(c.reference)}. `,
    Object.entries(c.n_unmatched).some(([, n]) => n) ? `Left out (not shared): ${Object.entries(c.n_unmatched).map(([id, n]) => `${label(id)} ${n}`).join(", ")}.` : "Every sample is shared.");
  return [el("h2", {}, "Paired differences"), intro, ...c.comparisons.flatMap((pair) => pairSection(pair, label))];
}

function pairSection(pair, label) {
  const title = `${label(pair.model)} against ${label(pair.reference)}`;
  const attributes = [...new Set(pair.differences.map((d) => d.attribute))];
  return [el("section", { "aria-label": title },
    el("h3", {}, title),
    pair.verdicts ? table(`Verdicts: ${title}`, [
      ["Attribute", (v) => v.attribute],
      ["Verdict", (v) => el("strong", {}, v.verdict)],
      ["Better", (v) => v.better.join(", ") || "—"],
      ["Worse", (v) => v.worse.join(", ") || "—"],
    ], pair.verdicts) : null,
    pair.compute && (pair.compute.value_model !== 1 || pair.compute.value_reference !== 1) ? el("p", {}, `Mean compute (fraction of each model's full network): ${fmt(pair.compute.value_reference)} → ${fmt(pair.compute.value_model)}, difference ${fmtInterval(pair.compute.difference, pair.compute.ci_low, pair.compute.ci_high)}.`) : null,
    ...attributes.map((attribute) => {
      const rows = pair.differences.filter((d) => d.attribute === attribute && d.difference !== null)
        .map((d) => ({ label: d.metric, value: d.difference, low: d.ci_low, high: d.ci_high }));
      return rows.length ? forestPlot(`${attribute}: ${label(pair.model)} minus ${label(pair.reference)}, 95% intervals`, rows) : null;
    }),
    el("div", { class: "table-scroll" }, table(`Differences: ${title}`, [
      ["Attribute", (d) => d.attribute],
      ["Metric", (d) => d.metric],
      ["Reference", (d) => fmt(d.value_reference)],
      ["Model", (d) => fmt(d.value_model)],
      ["Difference [95% CI]", (d) => (d.status === "ok" ? fmtInterval(d.difference, d.ci_low, d.ci_high) : `— (${d.status})`)],
      ["p", (d) => pText(d.p_value)],
      ["Holm p", (d) => pText(d.p_holm)],
      ["Verdict", (d) => d.verdict || "—"],
    ], pair.differences)),
  )];
}
