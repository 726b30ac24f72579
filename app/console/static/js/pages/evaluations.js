// Evaluations: every fairness report of the organisation (training, external validation, audits,
// studies), newest first, with a selection to compare two or more of them.
import { api } from "../api.js";
import { alertBox, el, fmtTime, setContent, statusLine, table } from "../ui.js";

const KINDS = {
  training: "test split of training",
  external: "external validation",
  audit: "audit of uploaded predictions",
  study: "study (pooled out-of-fold)",
};

export async function render(main) {
  const selected = new Set();
  const count = statusLine("Select two or more ready evaluations to compare them.");
  const compare = el("button", { type: "button", disabled: true }, "Compare selected");
  compare.addEventListener("click", () => {
    location.assign(`/console/compare?ids=${[...selected].map(encodeURIComponent).join(",")}`);
  });
  const onSelect = (id, checked) => {
    if (checked) selected.add(id);
    else selected.delete(id);
    compare.disabled = selected.size < 2;
    count.textContent = selected.size < 2
      ? `${selected.size} selected: select two or more ready evaluations to compare them.`
      : `${selected.size} selected; the first selected is the reference.`;
  };
  const listArea = el("div", { class: "table-scroll" });
  const more = el("div", {});
  setContent(main, el("div", { class: "row toolbar" }, compare, count), listArea, more);

  const items = [];
  let cursor = null;
  const load = async () => {
    try {
      const page = await api(`/v1/evaluations?limit=50${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`);
      items.push(...page.items);
      cursor = page.next_cursor;
    } catch (error) {
      more.replaceChildren(alertBox(`The evaluations could not be listed: ${error.message}`));
      return;
    }
    listArea.replaceChildren(evaluationTable(items, selected, onSelect));
    more.replaceChildren(cursor ? el("button", { type: "button", class: "secondary", onclick: load }, "Show more evaluations") : "");
  };
  await load();
}

function evaluationTable(items, selected, onSelect) {
  return table("Evaluations, newest first", [
    ["Select", (e) => {
      const box = el("input", { type: "checkbox", "aria-label": `Select ${e.name || e.id}`, disabled: e.status !== "ready", checked: selected.has(e.id) });
      box.addEventListener("change", () => onSelect(e.id, box.checked));
      return box;
    }],
    ["Evaluation", (e) => el("a", { href: `/console/evaluations/${encodeURIComponent(e.id)}` }, e.name || e.id)],
    ["What", (e) => KINDS[e.kind] || e.kind],
    ["Model", (e) => (e.model_version_id ? el("a", { href: `/console/models/${encodeURIComponent(e.model_version_id)}` }, el("code", {}, e.model_version_id)) : "none (audit)")],
    ["Cohort", (e) => (e.cohort_id ? el("a", { href: `/console/cohorts/${encodeURIComponent(e.cohort_id)}` }, el("code", {}, e.cohort_id)) : "uploaded predictions")],
    ["Split", (e) => e.split || "—"],
    ["Task", (e) => e.task || "binary"],
    ["Status", (e) => e.status],
    ["Created", (e) => fmtTime(e.created_at)],
  ], items, { empty: "No evaluations yet: train a model, or audit predictions with POST /v1/audits." });
}
