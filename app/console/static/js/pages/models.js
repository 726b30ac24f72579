// Models: every version (id, method, backbone, task, created, SHA-256, aliases) and every alias with
// the version behind it. A version's own page has its manifest, evaluations, gate and promotion.
import { api } from "../api.js";
import { alertBox, el, fmtTime, setContent, table } from "../ui.js";

const MAX_PAGES = 20; // 20 × 200 versions: enough for a console list; the API pages further

/** Every model version of the organisation (following the cursor). */
export async function allModels() {
  const items = [];
  let cursor = null;
  for (let page = 0; page < MAX_PAGES; page++) {
    const query = new URLSearchParams({ limit: "200" });
    if (cursor) query.set("cursor", cursor);
    const answer = await api(`/v1/models?${query}`);
    items.push(...answer.items);
    cursor = answer.next_cursor;
    if (!cursor) break;
  }
  return items;
}

/** The aliases of the listed versions: [{name, model}] sorted by name. */
export function aliasesOf(models) {
  return models.flatMap((m) => m.aliases.map((name) => ({ name, model: m }))).sort((a, b) => a.name.localeCompare(b.name));
}

/** The task a version serves, read from its registered thresholds (a decision rule: multiclass or multilabel). */
export function taskOf(model) {
  const rule = model.thresholds?.decision?.rule;
  if (!rule) return "binary";
  return rule === "per-finding threshold" ? "multilabel" : "multiclass";
}

/** A SHA-256 shortened to 12 hex digits; the full value one click away (keyboard reachable). */
export function shaCell(sha) {
  return el("details", { class: "sha" }, el("summary", { "aria-label": `SHA-256 ${sha.slice(0, 12)}, show in full` }, el("code", {}, `${sha.slice(0, 12)}…`)),
    el("code", { class: "sha-full" }, sha));
}

export function modelLink(id) {
  return el("a", { href: `/console/models/${encodeURIComponent(id)}` }, id);
}

export async function render(main) {
  let models;
  try {
    models = await allModels();
  } catch (error) {
    setContent(main, alertBox(error.message));
    return;
  }
  const versions = el("section", { "aria-labelledby": "versions-h" }, el("h2", { id: "versions-h" }, "Model versions"),
    scroller(table("Model versions", [
      ["Version", (m) => modelLink(m.id)],
      ["Method", (m) => m.method],
      ["Backbone", (m) => m.backbone],
      ["Task", (m) => taskOf(m)],
      ["Created", (m) => fmtTime(m.created_at)],
      ["SHA-256", (m) => shaCell(m.sha256)],
      ["Aliases", (m) => (m.aliases.length ? m.aliases.join(", ") : "—")],
    ], models, { empty: "No model versions yet: a finished training job registers one." })));
  const aliases = el("section", { "aria-labelledby": "aliases-h" }, el("h2", { id: "aliases-h" }, "Aliases"),
    el("p", { class: "hint" }, "An alias (e.g. production) names the version predictions go to; promote a version from its page."),
    table("Aliases", [
      ["Alias", (a) => el("strong", {}, a.name)],
      ["Version", (a) => modelLink(a.model.id)],
      ["Method", (a) => a.model.method],
      ["Monitoring", (a) => el("a", { href: `/console/monitoring?ref=${encodeURIComponent(a.name)}` }, `Monitor ${a.name}`)],
    ], aliasesOf(models), { empty: "No aliases yet." }));
  setContent(main, versions, aliases);
}

/** A wide table scrolls inside its own box (focusable, so a keyboard can scroll it) at tablet width. */
export function scroller(node) {
  return node.tagName === "TABLE" ? el("div", { class: "table-scroll", tabindex: 0 }, node) : node;
}
