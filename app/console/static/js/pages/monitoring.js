// Monitoring: a served model's live subgroup metrics (with intervals) against its audit's values,
// refreshed every few seconds while the page is visible, the demographic mix and exits of its
// predictions, score drift against the audit, and the organisation's alerts with their state.
import { api } from "../api.js";
import { lineChart } from "../charts.js";
import { alertBox, el, field, fmt, fmtInterval, fmtTime, setContent, statusLine, table } from "../ui.js";
import { aliasesOf, allModels, scroller } from "./models.js";

export const REFRESH_MS = 5000;
const METRICS = ["tpr", "fpr", "auc", "ppv", "npv", "accuracy", "selection_rate", "prevalence", "pf"];
const TABLE_METRICS = ["tpr", "fpr", "auc", "ppv", "selection_rate"];
const WINDOWS = [
  ["all", "All time"],
  ["d1", "Today (UTC)"],
  ["d7", "Last 7 days"],
  ["d30", "Last 30 days"],
  ["o100", "Last 100 outcomes"],
  ["o1000", "Last 1,000 outcomes"],
];

export async function render(main) {
  let models;
  try {
    models = await allModels();
  } catch (error) {
    setContent(main, alertBox(error.message));
    return;
  }
  if (!models.length) {
    setContent(main, el("p", { class: "empty" }, "No model versions yet: a finished training job registers one."));
    return;
  }
  const aliases = aliasesOf(models);
  const wanted = new URLSearchParams(location.search).get("ref");
  const model = field("Model or alias", el("select", { name: "model_ref" },
    aliases.length ? el("optgroup", { label: "Aliases" }, aliases.map((a) => el("option", { value: a.name }, `${a.name} → ${a.model.id}`))) : null,
    el("optgroup", { label: "Versions" }, models.map((m) => el("option", { value: m.id }, `${m.id} (${m.method})`)))));
  model.input.value = wanted && [...aliases.map((a) => a.name), ...models.map((m) => m.id)].includes(wanted) ? wanted : aliases[0]?.name || models[0].id;
  const windowField = field("Window", el("select", { name: "window" }, WINDOWS.map(([value, label]) => el("option", { value }, label))));
  const attribute = field("Attribute", el("select", { name: "attribute" }, el("option", { value: "overall" }, "overall")));
  const metric = field("Metric over time", el("select", { name: "metric" }, METRICS.map((m) => el("option", { value: m }, m))));
  const controls = el("form", { class: "card row controls", "aria-label": "What to monitor" }, model.node, windowField.node, attribute.node, metric.node);
  controls.addEventListener("submit", (e) => e.preventDefault());
  const status = statusLine("Loading…");
  const live = el("div", { class: "live" });
  const alerts = el("section", { "aria-labelledby": "alerts-h" }, el("h2", { id: "alerts-h" }, "Alerts"));
  setContent(main, controls, status, live, alerts);

  const state = { history: new Map(), audits: new Map(), timer: null, busy: false, started: performance.now(), last: null };
  const key = () => `${model.input.value}|${windowField.input.value}`;

  async function refresh() {
    if (state.busy) return;
    state.busy = true;
    try {
      const monitoring = await api(`/v1/models/${encodeURIComponent(model.input.value)}/monitoring${windowQuery(windowField.input.value)}`);
      const version = models.find((m) => m.id === monitoring.model_id);
      const audit = await auditOf(state, version?.evaluation_id || monitoring.drift?.evaluation_id);
      const history = state.history.get(key()) || [];
      history.push({ t: Math.round((performance.now() - state.started) / 1000), monitoring });
      if (history.length > 120) history.shift();
      state.history.set(key(), history);
      state.last = { monitoring, audit, history };
      fillAttributes(attribute.input, monitoring);
      draw();
      status.textContent = `Updated ${new Date().toLocaleTimeString()}; refreshes every ${REFRESH_MS / 1000} s while this page is visible.`;
      await loadAlerts(alerts, monitoring.model_id);
    } catch (error) {
      live.replaceChildren(alertBox(error.message));
      status.textContent = "";
    } finally {
      state.busy = false;
    }
  }

  function draw() {
    if (!state.last) return;
    keepOpen(live, () => live.replaceChildren(...liveView(state.last, attribute.input.value, metric.input.value)));
  }

  function schedule() {
    clearTimeout(state.timer);
    state.timer = document.hidden ? null : setTimeout(async () => {
      await refresh();
      schedule();
    }, REFRESH_MS);
  }

  model.input.addEventListener("change", () => refresh().then(schedule));
  windowField.input.addEventListener("change", () => refresh().then(schedule));
  attribute.input.addEventListener("change", draw);
  metric.input.addEventListener("change", draw);
  document.addEventListener("visibilitychange", () => {
    if (document.hidden) clearTimeout(state.timer); // stop while nobody looks
    else refresh().then(schedule);
  });
  window.addEventListener("pagehide", () => clearTimeout(state.timer));
  await refresh();
  schedule();
}

function windowQuery(value) {
  if (value.startsWith("d")) return `?days=${value.slice(1)}`;
  if (value.startsWith("o")) return `?last_outcomes=${value.slice(1)}`;
  return "";
}

async function auditOf(state, evaluationId) {
  if (!evaluationId) return null;
  if (!state.audits.has(evaluationId)) {
    try {
      const evaluation = await api(`/v1/evaluations/${encodeURIComponent(evaluationId)}`);
      state.audits.set(evaluationId, { id: evaluationId, report: evaluation.report });
    } catch (error) {
      state.audits.set(evaluationId, { id: evaluationId, report: null, error: error.message });
    }
  }
  return state.audits.get(evaluationId);
}

/** A binary report's (or monitoring's) groupings, as the "policy" exit serves them. */
function auditGroupings(audit) {
  const report = audit?.report;
  if (!report || report.task) return null; // multiclass and multilabel reports: not compared here
  return report.evaluations?.find((e) => e.exit === "policy")?.groupings || null;
}

function findGroup(groupings, attribute, group) {
  const grouping = groupings?.find((g) => g.attribute === attribute);
  if (!grouping) return null;
  return grouping.groups.find((g) => g.group === group) || (attribute === "overall" ? grouping.groups[0] : null);
}

function fillAttributes(select, monitoring) {
  const names = (monitoring.metrics || []).map((g) => g.attribute);
  const current = [...select.options].map((o) => o.value);
  if (names.length && names.join() !== current.join()) {
    const keep = select.value;
    select.replaceChildren(...names.map((n) => el("option", { value: n }, n)));
    select.value = names.includes(keep) && keep !== "overall" ? keep : names.find((n) => n !== "overall") || names[0];
  }
}

function liveView({ monitoring, audit, history }, attribute, metric) {
  const nodes = [];
  const counts = el("div", { class: "counts", role: "group", "aria-label": "Counts of the window" },
    el("p", {}, el("strong", {}, "Predictions: "), String(monitoring.n_predictions)),
    el("p", {}, el("strong", {}, "With an outcome: "), String(monitoring.n_with_outcome)),
    el("p", {}, el("strong", {}, "Exits: "), monitoring.exit_counts.map((n, k) => `exit ${k + 1}: ${n}`).join(", ") || "—"),
    el("p", {}, el("strong", {}, "Model: "), el("a", { href: `/console/models/${encodeURIComponent(monitoring.model_id)}` }, monitoring.model_id)));
  nodes.push(el("section", { "aria-labelledby": "window-h" }, el("h2", { id: "window-h" }, "This window"), counts,
    el("p", { class: "hint" }, `Audit: ${audit ? audit.id : "none"}${audit?.error ? ` (${audit.error})` : ""}. SHA-256 of the served model.json: `, el("code", { class: "sha-full" }, monitoring.model_sha256))));

  const metricsSection = el("section", { "aria-labelledby": "metrics-h" }, el("h2", { id: "metrics-h" }, `Live metrics by ${attribute} against the audit`));
  if (monitoring.task) {
    metricsSection.append(el("p", { class: "notice" }, `A ${monitoring.task} model: its per-class or per-finding live metrics are in the API's answer (class_metrics, finding_metrics); this page shows counts, mix and drift.`));
  } else if (monitoring.status === "no_outcomes" || !monitoring.metrics) {
    metricsSection.append(el("p", { class: "notice" }, "No prediction in this window has an outcome yet: post outcomes (POST /v1/predictions/{id}/outcome) to see subgroup metrics."));
  } else {
    const groupings = auditGroupings(audit);
    const grouping = monitoring.metrics.find((g) => g.attribute === attribute) || monitoring.metrics[0];
    const groups = grouping.groups.map((g) => g.group);
    const series = [];
    groups.forEach((group, j) => {
      series.push({ name: `${group} (live)`, color: j, points: history.map(({ t, monitoring: m }) => [t, findGroup(m.metrics, grouping.attribute, group)?.metrics?.[metric]?.value ?? null]) });
      const reference = findGroup(groupings, grouping.attribute, group)?.metrics?.[metric]?.value;
      if (reference !== null && reference !== undefined) series.push({ name: `${group} (audit)`, color: j, dashed: true, points: history.map(({ t }) => [t, reference]) });
    });
    metricsSection.append(lineChart(`${metric} by ${grouping.attribute} over time (live; dashed: the audit)`, series, { xLabel: "seconds since opened", yMin: 0, yMax: 1 }));
    metricsSection.append(el("div", { class: "metric-grid" }, TABLE_METRICS.map((name) => scroller(table(`${name} by ${grouping.attribute}: live against the audit`, [
      ["Group", (g) => g.group],
      ["n", (g) => String(g.n)],
      ["Live [95 % interval]", (g) => fmtInterval(g.metrics[name]?.value, g.metrics[name]?.ci_low, g.metrics[name]?.ci_high)],
      ["Status", (g) => g.metrics[name]?.status || "—"],
      ["Audit [95 % interval]", (g) => {
        const a = findGroup(groupings, grouping.attribute, g.group)?.metrics?.[name];
        return a ? fmtInterval(a.value, a.ci_low, a.ci_high) : "—";
      }],
    ], grouping.groups)))));
  }
  nodes.push(metricsSection);

  nodes.push(el("section", { "aria-labelledby": "mix-h" }, el("h2", { id: "mix-h" }, "Demographic mix of the predictions"),
    monitoring.demographics.length
      ? monitoring.demographics.map((d) => table(`Predictions by ${d.attribute} (${d.n_missing} without a value)`, [
        ["Group", (g) => g.group], ["Predictions", (g) => String(g.n)], ["Share", (g) => `${fmt(g.fraction * 100, 1)} %`]], d.groups))
      : el("p", { class: "empty" }, "No demographics were sent with the predictions of this window.")));

  nodes.push(el("section", { "aria-labelledby": "drift-h" }, el("h2", { id: "drift-h" }, "Drift against the audit"),
    monitoring.drift
      ? scroller(table(`Score drift per group against evaluation ${monitoring.drift.evaluation_id}`, [
        ["Attribute", (g) => g.attribute], ["Group", (g) => g.group], ["Predictions", (g) => String(g.n)], ["Audit n", (g) => String(g.audit_n)],
        ["PSI", (g) => fmt(g.psi)], ["KS", (g) => fmt(g.ks)], ["Exit-rate shift", (g) => fmt(g.exit_rate_shift)]], monitoring.drift.groups, { empty: "No predictions in this window." }))
      : el("p", { class: "empty" }, "No audit to compare with (the model has no training evaluation).")));
  return nodes;
}

async function loadAlerts(area, modelId) {
  const heading = area.querySelector("h2");
  try {
    const { items } = await api("/v1/alerts?limit=50");
    const rows = [...items.filter((a) => a.model_version_id === modelId), ...items.filter((a) => a.model_version_id !== modelId)];
    area.replaceChildren(heading, scroller(table("Alerts, this model's first", [
      ["Raised", (a) => fmtTime(a.created_at)],
      ["State", (a) => el("span", { class: `badge state-${a.status}` }, a.status)],
      ["Model", (a) => a.model_version_id],
      ["Rule", (a) => a.rule_id],
      ["Value", (a) => fmt(a.value)],
      ["Message", (a) => a.message],
      ["Resolved", (a) => fmtTime(a.resolved_at)],
    ], rows, { empty: "No alerts: no alert rule has been breached." })));
  } catch (error) {
    area.replaceChildren(heading, alertBox(error.message));
  }
}

/** Rebuild ``area`` without losing which "Show the numbers" panels were open, nor a focused summary. */
function keepOpen(area, rebuild) {
  const open = [...area.querySelectorAll("details")].map((d) => d.open);
  const summaries = [...area.querySelectorAll("summary")];
  const focused = summaries.indexOf(document.activeElement);
  rebuild();
  [...area.querySelectorAll("details")].forEach((d, i) => {
    if (open[i]) d.open = true;
  });
  if (focused >= 0) area.querySelectorAll("summary")[focused]?.focus();
}
