// One cohort: status and counts, its task and classes, the summary as label × group counts per sensitive
// attribute (a chart each, the numbers one click away), the small-group warnings, the splits; delete
// (with a confirmation) for a key that may write, after which the page shows the cohort as deleted.
import { api } from "../api.js";
import { barChart } from "../charts.js";
import { can } from "../session.js";
import { alertBox, confirmDialog, el, facts as factList, fmt, fmtTime, progressBar, setContent, statusLine, table } from "../ui.js";
import { followIngestion, statusBadge } from "./cohorts.js";

const MAX_SERIES = 8; // classes drawn side by side; more are shown one class at a time (against the rest)
const OPEN_WARNINGS = 100; // more warnings than this start folded

export async function render(main, params) {
  let cohort;
  try {
    cohort = await api(`/v1/cohorts/${encodeURIComponent(params.cohort_id)}`);
  } catch (error) {
    setContent(main, alertBox(`The cohort could not be loaded: ${error.message}`), el("p", {}, el("a", { href: "/console/" }, "Back to the cohorts")));
    return;
  }
  show(main, cohort);
}

function show(main, cohort, notice = null) {
  main.querySelector("h1").textContent = `Cohort: ${cohort.name}`;
  document.title = `Cohort ${cohort.name} · FairAudit`;
  const summary = cohort.summary;
  setContent(main,
    notice,
    el("p", {}, el("a", { href: "/console/" }, "All cohorts")),
    overview(cohort),
    cohort.status === "ingesting" ? ingestion(main, cohort) : null,
    cohort.errors.length ? el("section", { "aria-labelledby": "errors-h" }, el("h2", { id: "errors-h" }, "Ingestion errors"),
      alertBox(cohort.errors.map(describe).join("\n"))) : null,
    cohort.warnings.length ? el("section", { "aria-labelledby": "manifest-h" }, el("h2", { id: "manifest-h" }, "Manifest notes"),
      el("ul", {}, cohort.warnings.map((w) => el("li", {}, describe(w))))) : null,
    summary ? countsSection(cohort, summary) : null,
    summary ? warningsSection(summary) : null,
    summary ? splitsSection(cohort, summary) : null,
    can("write") && cohort.status !== "deleted" ? deleteSection(main, cohort) : null,
  );
}

function overview(cohort) {
  const facts = [
    ["Status", statusBadge(cohort)],
    ["Task", cohort.task],
    cohort.classes.length ? [cohort.task === "multilabel" ? "Findings" : "Classes", cohort.classes.join(", ")] : null,
    ["Items", String(cohort.n_items)],
    ["Sensitive attributes", cohort.attributes.join(", ") || "none"],
    ["Preset", cohort.preset],
    ["Images", `${cohort.image_size} × ${cohort.image_size} px, ${cohort.channels} channel${cohort.channels === 1 ? "" : "s"}`],
    ["Created", fmtTime(cohort.created_at)],
    ["Updated", fmtTime(cohort.updated_at)],
    cohort.summary?.merged && Object.keys(cohort.summary.merged).length
      ? ["Merged classes", Object.entries(cohort.summary.merged).map(([into, from]) => `${into} ← ${from.join(", ")}`).join("; ")] : null,
  ].filter(Boolean);
  return el("section", { "aria-labelledby": "overview-h" }, el("h2", { id: "overview-h" }, "Overview"),
    factList(facts),
    cohort.status === "deleted" ? el("p", { class: "notice" }, "Deleted: its images and cache were removed. It is no longer listed; the audit trail keeps its record.") : null);
}

function ingestion(main, cohort) {
  const progress = progressBar("Ingestion");
  const text = statusLine("");
  followIngestion(cohort, (fraction, line) => {
    progress.bar.value = fraction;
    text.textContent = line;
  }).then((final) => show(main, final), (error) => text.replaceWith(alertBox(error.message)));
  return el("section", { "aria-labelledby": "ingest-h" }, el("h2", { id: "ingest-h" }, "Ingestion"), progress.node, text);
}

// ---- label × group counts ----------------------------------------------------------------------

/** What a cell counts towards, per task: the series of the charts and which series a cell is in. */
function targets(cohort, summary, focus) {
  const classes = summary.classes || cohort.classes;
  if (cohort.task === "multiclass" && classes.length <= MAX_SERIES) {
    return { names: classes, of: (c) => classes.indexOf(c.class), what: "class" };
  }
  if (cohort.task === "multiclass") {
    return { names: [focus, "other classes"], of: (c) => (c.class === focus ? 0 : 1), what: `${focus} against the other classes` };
  }
  if (cohort.task === "multilabel") {
    return { names: [`${focus} negative`, `${focus} positive`], of: (c) => (c.finding === focus ? c.label : -1), what: `finding ${focus}` };
  }
  return { names: ["negative (label 0)", "positive (label 1)"], of: (c) => c.label, what: "label" };
}

function groupName(group) {
  return Object.values(group).join(" & ");
}

function countsSection(cohort, summary) {
  const splits = Object.keys(summary.splits);
  const classes = summary.classes || cohort.classes;
  const split = el("select", { id: "counts-split" }, el("option", { value: "" }, "all splits"), splits.map((s) => el("option", { value: s }, s)));
  const needsFocus = cohort.task === "multilabel" || (cohort.task === "multiclass" && classes.length > MAX_SERIES);
  const focus = needsFocus ? el("select", { id: "counts-focus" }, classes.map((c) => el("option", { value: c }, c))) : null;
  const charts = el("div", { class: "charts-grid" });
  const draw = () => charts.replaceChildren(...Object.entries(summary.groupings).map(([key, grouping]) =>
    groupingChart(cohort, summary, key, grouping, split.value, focus ? focus.value : null)));
  split.addEventListener("change", draw);
  focus?.addEventListener("change", draw);
  draw();
  return el("section", { "aria-labelledby": "counts-h" }, el("h2", { id: "counts-h" }, "Label × group counts"),
    el("p", { class: "hint" }, "Items per group of each sensitive attribute (and their intersection), by label. Under each chart, \"Show the numbers\" has its table."),
    el("div", { class: "row" },
      el("div", { class: "field" }, el("label", { for: "counts-split" }, "Split"), split),
      focus ? el("div", { class: "field" }, el("label", { for: "counts-focus" }, cohort.task === "multilabel" ? "Finding" : "Class"), focus) : null),
    charts);
}

function groupingChart(cohort, summary, key, grouping, split, focus) {
  const target = targets(cohort, summary, focus);
  const cells = grouping.cells.filter((c) => !split || c.split === split);
  const groups = [...new Set(grouping.cells.map((c) => groupName(c.group)))];
  const values = target.names.map(() => groups.map(() => 0));
  for (const cell of cells) {
    const s = target.of(cell);
    if (s >= 0 && s < target.names.length) values[s][groups.indexOf(groupName(cell.group))] += cell.count;
  }
  const attrs = grouping.attributes.join(" × ");
  const title = `${attrs}: ${target.what} × group counts, ${split || "all splits"}`;
  const warned = summary.warnings.filter((w) => w.grouping === key).length;
  const parts = [
    barChart(title, groups, target.names.map((name, s) => ({ name, values: values[s] })), { yLabel: "items" }),
    el("p", { class: "hint" },
      `Attribute missing for ${grouping.missing} item${grouping.missing === 1 ? "" : "s"} (${fmt(100 * grouping.missing_rate, 1)} %). `,
      warned ? `${warned} small-group warning${warned === 1 ? "" : "s"} in the list below.` : "No small-group warning listed."),
  ];
  if (cohort.task === "multiclass" && target.names.length === 2) parts.push(allClasses(summary.classes || cohort.classes, groups, cells, attrs, split));
  return el("div", { class: "grouping" }, el("h3", {}, attrs), ...parts);
}

/** Every class × group count of one grouping (the chart shows one class at a time). */
function allClasses(classes, groups, cells, attrs, split) {
  const counts = new Map();
  for (const cell of cells) {
    const k = `${cell.class}\u0000${groupName(cell.group)}`;
    counts.set(k, (counts.get(k) || 0) + cell.count);
  }
  return el("details", {}, el("summary", {}, `All ${classes.length} classes × ${groups.length} groups`),
    el("div", { class: "table-scroll", tabindex: 0, role: "region", "aria-label": `${attrs}: all classes` },
      table(`${attrs}: items per class and group, ${split || "all splits"}`,
        [["class", (c) => c], ...groups.map((g) => [g, (c) => String(counts.get(`${c}\u0000${g}`) || 0)])], classes)));
}

// ---- warnings and splits -----------------------------------------------------------------------

function warningsSection(summary) {
  const warnings = summary.warnings;
  const omitted = summary.warnings_omitted || 0;
  const heading = el("h2", { id: "warnings-h" }, `Small-group warnings (${warnings.length + omitted})`);
  if (!warnings.length) return el("section", { "aria-labelledby": "warnings-h" }, heading, el("p", {}, "No group is too small in any split."));
  const list = el("div", { class: "table-scroll" }, table("Small-group warnings", [
    ["Attribute", (w) => w.grouping.split("&").join(" × ")],
    ["Group", (w) => groupName(w.group)],
    ["Split", (w) => w.split],
    ["Count", (w) => String(w.count)],
    ["Warning", (w) => w.message],
  ], warnings));
  return el("section", { "aria-labelledby": "warnings-h" }, heading,
    el("p", {}, "Groups with too few positives or negatives in a split: their metrics there are unreliable or undefined."),
    warnings.length > OPEN_WARNINGS ? el("details", {}, el("summary", {}, `List the ${warnings.length} warnings`), list) : list,
    omitted ? el("p", { class: "notice" }, `${omitted} more warnings are not listed (the API lists the first ${warnings.length}); the counts above hold every cell.`) : null);
}

function splitsSection(cohort, summary) {
  const splits = Object.entries(summary.splits);
  let body;
  if (cohort.task === "multiclass") {
    const classes = summary.classes || cohort.classes;
    body = table("Items per class and split", [["class", (c) => c], ...splits.map(([s, v]) => [`${s} (${v.n})`, (c) => String(v.classes[c] ?? 0)])], classes);
  } else if (cohort.task === "multilabel") {
    const findings = summary.classes || cohort.classes;
    body = table("Findings per split (positive / negative / unknown)", [["finding", (f) => f],
      ...splits.map(([s, v]) => [`${s} (${v.n})`, (f) => { const x = v.findings[f] || {}; return `${x.positives ?? 0} / ${x.negatives ?? 0} / ${x.unknown ?? 0}`; }])], findings);
  } else {
    body = table("Items per split", [["split", ([s]) => s], ["items", ([, v]) => String(v.n)], ["positives", ([, v]) => String(v.positives)],
      ["negatives", ([, v]) => String(v.negatives)]], splits);
  }
  return el("section", { "aria-labelledby": "splits-h" }, el("h2", { id: "splits-h" }, "Splits"), el("div", { class: "table-scroll" }, body));
}

// ---- delete ------------------------------------------------------------------------------------

function deleteSection(main, cohort) {
  const problem = el("div", {});
  const button = el("button", { type: "button", class: "danger" }, "Delete cohort");
  button.addEventListener("click", async () => {
    const sure = await confirmDialog(`Delete the cohort "${cohort.name}"? Its images and cache are removed and it can no longer be trained on or evaluated; the audit trail keeps its record. This cannot be undone.`, "Delete");
    if (!sure) {
      button.focus();
      return;
    }
    button.disabled = true;
    try {
      const deleted = await api(`/v1/cohorts/${encodeURIComponent(cohort.id)}`, { method: "DELETE" });
      show(main, deleted, el("p", { role: "status", class: "notice" }, `The cohort "${deleted.name}" was deleted.`));
      main.focus();
    } catch (error) {
      button.disabled = false;
      problem.replaceChildren(alertBox(`The cohort was not deleted: ${error.message}`));
    }
  });
  return el("section", { "aria-labelledby": "delete-h" }, el("h2", { id: "delete-h" }, "Delete"),
    el("p", {}, "Removes the cohort's images and cache (retention) and takes it off the list; the audit trail keeps its record."), button, problem);
}

function describe(item) {
  if (typeof item === "string") return item;
  const where = ["row", "column", "file"].filter((k) => item[k] !== undefined).map((k) => `${k} ${item[k]}`).join(", ");
  const message = item.message ?? JSON.stringify(item);
  return where ? `${where}: ${message}` : String(message);
}
