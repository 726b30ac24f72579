// One evaluation's fairness report, navigable and verdict first: the verdict, then per attribute the
// groups and the gaps with their intervals, the curves, the complete HTML report and the downloads.
// Binary, multi-class and multi-label reports (app/fairness/report_schema.py) each get their own view.
import { api, apiRaw, download } from "../api.js";
import { forestPlot, lineChart } from "../charts.js";
import { alertBox, el, facts as factList, fmt, fmtInterval, fmtTime, setContent, statusLine, table } from "../ui.js";

const SECTIONS = [
  ["verdict", "Verdict"],
  ["groups", "Groups"],
  ["gaps", "Gaps"],
  ["curves", "Curves"],
  ["full-report", "Full report"],
  ["downloads", "Downloads"],
];

// Gaps that are differences (0 = no gap): drawn around 0. Ratios and the worst-group AUC are in the table only.
const BINARY_GAPS = ["pfd", "auc_gap", "eopp1", "eopp0", "eodd", "demographic_parity_difference", "equalized_odds_difference", "equal_opportunity_difference"];
const BINARY_TABLE_GAPS = [...BINARY_GAPS, "worst_group_auc", "demographic_parity_ratio", "equalized_odds_ratio", "equal_opportunity_ratio"];
const BINARY_GROUP_METRICS = [["AUC", "auc"], ["TPR", "tpr"], ["FPR", "fpr"], ["PPV", "ppv"], ["Accuracy", "accuracy"], ["ECE", "ece"]];
const CLASS_GAPS = ["eopp0", "eopp1", "eodd", "accuracy_gap", "balanced_accuracy_gap", "macro_precision_diff", "macro_recall_diff", "macro_f1_diff"];
const CLASS_GROUP_METRICS = [["Accuracy", "accuracy"], ["Balanced accuracy", "balanced_accuracy"], ["Macro precision", "macro_precision"], ["Macro recall", "macro_recall"], ["Macro F1", "macro_f1"]];
const TOP_CLASSES = 10;
const CURVE_POINTS = 25;

export async function render(main, params) {
  const id = params.evaluation_id;
  let evaluation;
  try {
    evaluation = await api(`/v1/evaluations/${encodeURIComponent(id)}`);
  } catch (error) {
    setContent(main, alertBox(`The evaluation could not be loaded: ${error.message}`), el("p", {}, el("a", { href: "/console/evaluations" }, "Back to the evaluations")));
    return;
  }
  const title = `Evaluation: ${evaluation.name || evaluation.id}`;
  main.querySelector("h1").textContent = title;
  document.title = `${title} · FairAudit`;
  if (evaluation.status !== "ready" || !evaluation.report) {
    setContent(main, facts(evaluation), notReady(evaluation));
    return;
  }
  const report = evaluation.report;
  const parts = report.task === "multiclass" ? multiclassParts(report) : report.task === "multilabel" ? multilabelParts(report) : binaryParts(report);
  const sections = Object.fromEntries(SECTIONS.map(([key, label]) => [key, section(key, label)]));
  for (const key of ["verdict", "groups", "gaps", "curves"]) sections[key].append(...parts[key].filter(Boolean));
  sections["full-report"].append(...fullReport(evaluation));
  sections.downloads.append(...downloads(evaluation));
  setContent(main, facts(evaluation), toc(sections), ...Object.values(sections));
  const linked = sections[location.hash.slice(1)]; // a link to a section (…#gaps): the content came after the load
  if (linked) {
    linked.querySelector("h2").focus();
    linked.scrollIntoView({ block: "start" });
  }
}

// ---- page structure -------------------------------------------------------------------------------

function section(key, label) {
  return el("section", { id: key, "aria-labelledby": `${key}-h`, class: "report-section" }, el("h2", { id: `${key}-h`, tabindex: "-1" }, label));
}

/** The table of contents: following a link moves the focus to the section's heading (keyboard and screen readers land there). */
function toc(sections) {
  const links = SECTIONS.map(([key, label]) => {
    const link = el("a", { href: `#${key}` }, label);
    link.addEventListener("click", (event) => {
      event.preventDefault();
      const heading = sections[key].querySelector("h2");
      heading.focus();
      heading.scrollIntoView({ block: "start" });
      history.replaceState(null, "", `#${key}`);
    });
    return el("li", {}, link);
  });
  return el("nav", { class: "toc", "aria-label": "Report sections" }, el("ol", {}, links));
}

function facts(evaluation) {
  const report = evaluation.report;
  const config = evaluation.config || {};
  const rows = [
    ["Kind", evaluation.kind],
    ["Status", evaluation.status],
    ["Task", report?.task || (report ? "binary" : config.audit?.task || "—")],
    ["Model", evaluation.model_version_id ? el("a", { href: `/console/models/${encodeURIComponent(evaluation.model_version_id)}` }, evaluation.model_version_id) : "none (predictions made elsewhere)"],
    ["Cohort", evaluation.cohort_id ? el("a", { href: `/console/cohorts/${encodeURIComponent(evaluation.cohort_id)}` }, evaluation.cohort_id) : "uploaded predictions"],
    ["Split", evaluation.split || "—"],
    ["Samples", report?.population ? String(report.population.n) : "—"],
    ["Threshold", config.threshold !== undefined ? `${fmt(config.threshold)}${config.threshold_source ? ` (${config.threshold_source})` : ""}` : config.decision || (config.thresholds ? "per finding" : "—")],
    ["Metric definitions", evaluation.metric_definition_version],
    ["Created", fmtTime(evaluation.created_at)],
  ];
  return factList(rows, { "aria-label": "About this evaluation" });
}

function notReady(evaluation) {
  if (evaluation.status === "failed") return alertBox(`This evaluation failed: ${evaluation.error || "no reason was recorded"}`);
  return el("div", {},
    statusLine(`The report is still being computed (${evaluation.status}).`),
    evaluation.job_id ? el("p", {}, "Follow ", el("a", { href: `/console/jobs/${encodeURIComponent(evaluation.job_id)}` }, `its job ${evaluation.job_id}`), ", then reload this page.") : "");
}

// ---- shared cells ---------------------------------------------------------------------------------

/** "0.812 [0.770, 0.851]", with the status when the number is missing or rests on too few cases. */
function valueText(v) {
  if (!v) return "—";
  const text = fmtInterval(v.value, v.ci_low, v.ci_high);
  return v.status && v.status !== "ok" ? `${text} (${v.status})` : text;
}

function pText(p) {
  if (p === null || p === undefined) return "—";
  if (p === 0) return "0";
  return p < 0.001 ? p.toExponential(1) : fmt(p, 3);
}

function policyOf(report) {
  return report.evaluations.find((e) => e.exit === "policy") || report.evaluations[report.evaluations.length - 1];
}

function groupingTitle(g) {
  return g.kind === "overall" ? "Overall" : g.kind === "intersection" ? `${g.attribute} (intersection)` : g.attribute;
}

function verdictBanner(tone, headline, text) {
  return el("div", { class: `verdict ${tone}` }, el("p", { class: "verdict-headline" }, headline), el("p", { class: "verdict-text" }, text));
}

function gapForest(title, gaps, names) {
  const rows = names.filter((name) => gaps[name] && gaps[name].value !== null && gaps[name].value !== undefined)
    .map((name) => ({ label: name, value: gaps[name].value, low: gaps[name].ci_low, high: gaps[name].ci_high }));
  return rows.length ? forestPlot(title, rows) : el("p", { class: "empty" }, `${title}: no gap could be computed.`);
}

// ---- binary ---------------------------------------------------------------------------------------

function binaryVerdict(report) {
  const s = report.summary;
  const significant = Boolean(s.largest_significant_gap) || s.findings.some((f) => f.significant);
  if (significant) return ["fail", "Significant gap found", s.verdict];
  if (!s.findings.length) return ["uncertain", "No gap could be computed", s.verdict];
  return ["pass", `No significant gap at alpha ${fmt(s.alpha, 2)}`, s.verdict];
}

function binaryParts(report, label = "") {
  const s = report.summary;
  const [tone, headline, text] = binaryVerdict(report);
  const policy = policyOf(report);
  const attributes = policy.groupings.filter((g) => g.gaps);
  const suffix = label ? ` (${label})` : "";
  return {
    verdict: [
      verdictBanner(tone, headline, text),
      table(`Overall metrics of the served policy${suffix}`, [["Metric", (r) => r[0]], ["Value [95% CI]", (r) => valueText(r[1])]], Object.entries(s.overall)),
      table(`Findings: the gaps the verdict weighs${suffix}`, [
        ["Attribute", (f) => f.attribute],
        ["Gap", (f) => f.gap],
        ["Value [95% CI]", (f) => fmtInterval(f.value, f.ci_low, f.ci_high)],
        ["Holm p", (f) => pText(f.p_value)],
        ["Significant", (f) => (f.significant ? "yes" : "no")],
        ["Left out", (f) => (f.left_out || []).map((l) => `${l.group} (${l.status})`).join(", ") || "—"],
      ], s.findings, { empty: "No finding: no attribute has two groups with enough cases." }),
    ],
    groups: policy.groupings.flatMap((g) => [
      el("h3", {}, groupingTitle(g)),
      el("div", { class: "table-scroll" }, table(`Groups of ${groupingTitle(g)}${suffix}`, [
        ["Group", (r) => r.group],
        ["n", (r) => String(r.n)],
        ["n+", (r) => String(r.n_pos)],
        ["n−", (r) => String(r.n_neg)],
        ...BINARY_GROUP_METRICS.map(([name, key]) => [name, (r) => valueText(r.metrics[key])]),
      ], g.groups)),
      g.n_missing ? el("p", { class: "hint" }, `${g.n_missing} samples have no value for ${g.attribute}.`) : null,
    ]),
    gaps: attributes.length ? attributes.flatMap((g) => [
      el("h3", {}, `Gaps across ${groupingTitle(g)}`),
      gapForest(`Gaps across ${groupingTitle(g)}${suffix}, 95% intervals (0 = no gap)`, g.gaps, BINARY_GAPS),
      el("div", { class: "table-scroll" }, table(`Gaps across ${groupingTitle(g)}${suffix}`, [
        ["Gap", (name) => name],
        ["Value [95% CI]", (name) => valueText(g.gaps[name])],
        ["Holm p", (name) => pText(g.gaps[name].p_value)],
        ["Groups used", (name) => (g.gaps[name].groups_used || []).join(", ") || "—"],
        ["Left out", (name) => (g.gaps[name].left_out || []).map((l) => `${l.group} (${l.status})`).join(", ") || "—"],
      ], BINARY_TABLE_GAPS.filter((name) => g.gaps[name]))),
    ]) : [el("p", { class: "empty" }, "This report has no attribute with groups to compare.")],
    curves: binaryCurves(policy, suffix),
  };
}

function thin(points) {
  if (points.length <= CURVE_POINTS) return points;
  const step = (points.length - 1) / (CURVE_POINTS - 1);
  return Array.from({ length: CURVE_POINTS }, (_, i) => points[Math.round(i * step)]);
}

const round3 = (x) => Math.round(x * 1000) / 1000;

function binaryCurves(policy, suffix) {
  const withCurves = policy.groupings.filter((g) => g.curves);
  if (!withCurves.length) return [el("p", { class: "empty" }, "This report carries no curves.")];
  return withCurves.flatMap((g) => {
    const roc = Object.entries(g.curves.roc || {}).filter(([, c]) => c)
      .map(([name, c]) => ({ name, points: thin(c.fpr.map((x, i) => [round3(x), round3(c.tpr[i])])) }));
    const reliability = Object.entries(g.curves.reliability || {}).filter(([, bins]) => bins.length)
      .map(([name, bins]) => ({ name, points: bins.map((b) => [round3(b.mean_score), round3(b.observed)]) }));
    return [
      el("h3", {}, groupingTitle(g)),
      roc.length ? lineChart(`ROC curves by ${groupingTitle(g)}${suffix}: true positive rate against false positive rate`, roc, { xLabel: "FPR", yMin: 0, yMax: 1 }) : null,
      reliability.length ? lineChart(`Calibration by ${groupingTitle(g)}${suffix}: observed rate against mean score`, reliability, { xLabel: "mean score", yMin: 0, yMax: 1 }) : null,
    ];
  });
}

// ---- multi-class ----------------------------------------------------------------------------------

function multiclassParts(report) {
  const s = report.summary;
  const top = s.findings[0];
  const [tone, headline] = !top ? ["uncertain", "No gap could be computed"] : top.excludes_zero ? ["fail", "A gap's interval lies above 0"] : ["pass", "No gap's interval lies above 0"];
  const policy = policyOf(report);
  const overall = policy.groupings.find((g) => g.kind === "overall")?.groups[0];
  const classes = Object.entries(report.population.class_counts).sort((a, b) => b[1] - a[1]);
  const shown = classes.slice(0, TOP_CLASSES);
  const attributes = policy.groupings.filter((g) => g.gaps);
  return {
    verdict: [
      verdictBanner(tone, headline, s.verdict),
      table("Macro numbers of the served policy", [["Metric", (r) => r[0].replace(/_/g, " ")], ["Value [95% CI]", (r) => valueText(r[1])]], Object.entries(s.overall)),
      el("div", { class: "table-scroll" }, table(`Classes by support: ${shown.length} of ${classes.length}, one against the rest`, [
        ["Class", (r) => r[0]],
        ["Support", (r) => String(r[1])],
        ["Recall (TPR)", (r) => valueText(overall?.per_class[r[0]]?.tpr)],
        ["Precision (PPV)", (r) => valueText(overall?.per_class[r[0]]?.ppv)],
        ["F1", (r) => valueText(overall?.per_class[r[0]]?.f1)],
        ["AUC", (r) => valueText(overall?.per_class[r[0]]?.auc)],
      ], shown)),
      classes.length > shown.length ? el("p", { class: "hint" }, `${classes.length - shown.length} smaller classes are in the full report and the downloads.`) : null,
      table("Findings: the gaps the verdict weighs", [
        ["Attribute", (f) => f.attribute],
        ["Gap", (f) => f.gap],
        ["Value [95% CI]", (f) => fmtInterval(f.value, f.ci_low, f.ci_high)],
        ["Interval above 0", (f) => (f.excludes_zero ? "yes" : "no")],
      ], s.findings, { empty: "No finding: no attribute has two groups with enough cases of any class." }),
    ],
    groups: policy.groupings.flatMap((g) => [
      el("h3", {}, groupingTitle(g)),
      el("div", { class: "table-scroll" }, table(`Groups of ${groupingTitle(g)}`, [
        ["Group", (r) => r.group],
        ["n", (r) => String(r.n)],
        ...CLASS_GROUP_METRICS.map(([name, key]) => [name, (r) => valueText(r.metrics[key])]),
      ], g.groups)),
    ]),
    gaps: attributes.length ? attributes.flatMap((g) => [
      el("h3", {}, `Gaps across ${groupingTitle(g)}`),
      gapForest(`Gaps across ${groupingTitle(g)}, 95% intervals (0 = no gap)`, g.gaps, CLASS_GAPS),
      el("div", { class: "table-scroll" }, table(`Gaps across ${groupingTitle(g)}`, [
        ["Gap", (name) => name],
        ["Value [95% CI]", (name) => valueText(g.gaps[name])],
        ["Classes or groups left out", (name) => {
          const gap = g.gaps[name];
          if (gap.classes_left_out) return gap.classes_left_out.map((c) => `${c.class_name}: ${c.reason}`).join("; ") || "—";
          return (gap.left_out || []).map((l) => `${l.group} (${l.status})`).join(", ") || "—";
        }],
      ], CLASS_GAPS.filter((name) => g.gaps[name]))),
      g.averages ? table(`Averages over the groups of ${groupingTitle(g)}`, [["Metric", (r) => r[0].replace(/_/g, " ")], ["Value [95% CI]", (r) => valueText(r[1])]], Object.entries(g.averages)) : null,
    ]) : [el("p", { class: "empty" }, "This report has no attribute with groups to compare.")],
    curves: [el("p", { class: "empty" }, "A multi-class report carries no curves: its per-class one-against-the-rest numbers are under Verdict, its confusion matrices in the full report.")],
  };
}

// ---- multi-label: one finding's binary report at a time -------------------------------------------

function multilabelParts(report) {
  const flagged = report.summary.filter((row) => Object.values(row.gaps).some((g) => g.significant));
  const tone = flagged.length ? "fail" : "pass";
  const headline = flagged.length ? `Significant gap in ${flagged.length} of ${report.findings.length} findings` : `No significant gap in any of ${report.findings.length} findings`;
  const groups = el("div", {});
  const gaps = el("div", {});
  const curves = el("div", {});
  const select = el("select", { id: "finding", name: "finding" }, report.findings.map((f) => el("option", { value: f }, f)));
  const show = () => {
    const finding = select.value;
    const parts = binaryParts(report.per_finding[finding], finding);
    groups.replaceChildren(...parts.groups.filter(Boolean));
    gaps.replaceChildren(...parts.gaps.filter(Boolean));
    curves.replaceChildren(...parts.curves.filter(Boolean));
  };
  select.addEventListener("change", show);
  show();
  const counts = report.population.per_finding;
  return {
    verdict: [
      verdictBanner(tone, headline, flagged.length ? `Findings with a significant gap: ${flagged.map((r) => r.finding).join(", ")}.` : "Each finding's verdict is below."),
      table("Each finding's verdict", [
        ["Finding", (r) => r.finding],
        ["Known labels", (r) => String(counts[r.finding]?.n ?? "—")],
        ["Positives", (r) => String(counts[r.finding]?.n_pos ?? "—")],
        ["Verdict", (r) => r.verdict],
      ], report.summary),
      el("div", { class: "field narrow" }, el("label", { for: "finding" }, "Finding shown under Groups, Gaps and Curves"), select),
    ],
    groups: [groups],
    gaps: [gaps],
    curves: [curves],
  };
}

// ---- the complete HTML report and the downloads ---------------------------------------------------

function fullReport(evaluation) {
  // The frame holds its place from the start, so nothing below it moves when the report arrives.
  const status = statusLine("Loading the HTML report…");
  const problem = el("div", {});
  const frame = el("iframe", { class: "report", sandbox: "", title: `Complete HTML report of ${evaluation.name || evaluation.id}` });
  (async () => {
    try {
      const html = await (await apiRaw(`/v1/evaluations/${encodeURIComponent(evaluation.id)}/report`)).text();
      frame.src = framedReport(html);
      status.textContent = "The report as the API serves it (GET /v1/evaluations/{id}/report), shown in a sandbox: it runs no script.";
    } catch (error) {
      status.textContent = "";
      problem.replaceChildren(alertBox(`The HTML report could not be loaded: ${error.message}`));
    }
  })();
  return [status, problem, frame];
}

/**
 * The report as a blob URL the sandboxed frame can show. A blob document inherits the console's
 * Content-Security-Policy (no inline style), so the report's own <style> blocks and style attributes
 * would be dropped: they are moved, as text, into one stylesheet linked as a data: URL (style-src
 * allows data:; a blob: stylesheet would not load in the sandbox's opaque origin). The report is
 * the service's own autoescaped HTML (attribute values never hold a raw quote), and it is only
 * rewritten as text, never parsed into this page: nothing in it runs here, and sandbox="" runs no
 * script in the frame either.
 */
function framedReport(html) {
  const rules = [];
  let count = 0;
  const unescape = (text) => text.replace(/&#34;|&quot;/g, '"').replace(/&#39;/g, "'").replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&amp;/g, "&");
  let page = html.replace(/<style\b[^>]*>([\s\S]*?)<\/style>/gi, (_, css) => {
    rules.push(css);
    return "";
  });
  page = page.replace(/(<[a-z][^<>]*?)\sstyle="([^"]*)"/gi, (_, before, css) => {
    rules.push(`[data-fa-style="${count}"] { ${unescape(css).replace(/[{}<]/g, "")} }`);
    return `${before} data-fa-style="${count++}"`;
  });
  const bytes = new TextEncoder().encode(rules.join("\n"));
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  const link = `<link rel="stylesheet" href="data:text/css;base64,${btoa(binary)}">`;
  page = /<\/head>/i.test(page) ? page.replace(/<\/head>/i, `${link}</head>`) : link + page;
  return URL.createObjectURL(new Blob([page], { type: "text/html" }));
}

function downloads(evaluation) {
  const id = encodeURIComponent(evaluation.id);
  const status = statusLine();
  const problem = el("div", {});
  const items = [
    ["The evaluation and its report (JSON)", `/v1/evaluations/${id}`, `${evaluation.id}.json`],
    ["The HTML report", `/v1/evaluations/${id}/report`, `${evaluation.id}-report.html`],
    ["The model card (JSON)", `/v1/evaluations/${id}/model-card`, `${evaluation.id}-model-card.json`],
    ["The per-sample predictions (CSV)", `/v1/evaluations/${id}/predictions.csv`, `${evaluation.id}-predictions.csv`],
  ];
  const list = el("ul", { class: "downloads" }, items.map(([label, path, filename]) => el("li", {},
    el("button", { type: "button", class: "secondary", onclick: async () => {
      status.textContent = `Downloading ${filename}…`;
      problem.replaceChildren();
      try {
        await download(path, filename);
        status.textContent = `${filename} downloaded.`;
      } catch (error) {
        status.textContent = "";
        problem.replaceChildren(alertBox(`${label} could not be downloaded: ${error.message}`));
      }
    } }, `Download ${label.replace(/^The /, "the ")}`))));
  return [list, status, problem];
}
