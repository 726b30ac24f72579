// One model version: its manifest essentials, its evaluations, the deployment gate's dry run for an
// alias, promotion through the gate (a writer key; an admin may override a failed gate with a written
// reason), and the alias's history.
import { api, apiRaw } from "../api.js";
import { can, currentCaller } from "../session.js";
import { alertBox, clearProblem, el, facts as factList, field, fmt, fmtInterval, fmtTime, setContent, showProblem, statusLine, table } from "../ui.js";
import { scroller, taskOf } from "./models.js";

export async function render(main, params) {
  const ref = params.model_ref;
  let model;
  try {
    model = await api(`/v1/models/${encodeURIComponent(ref)}`);
  } catch (error) {
    setContent(main, alertBox(error.message));
    return;
  }
  main.querySelector("h1").textContent = `Model version ${model.id}`;
  document.title = `${model.id} · FairAudit`;
  const manifestArea = el("section", { "aria-labelledby": "manifest-h" }, el("h2", { id: "manifest-h" }, "Manifest"), statusLine("Loading model.json…"));
  const evaluationsArea = el("section", { "aria-labelledby": "evals-h" }, el("h2", { id: "evals-h" }, "Evaluations"), statusLine("Loading…"));
  const historyArea = el("section", { "aria-labelledby": "history-h" }, el("h2", { id: "history-h" }, "Alias history"));
  let facts = summary(model);
  const gate = gateSection(model, historyArea, async () => {
    // the version's stage and aliases changed: show them as the API now has them
    try {
      const fresh = summary(await api(`/v1/models/${encodeURIComponent(model.id)}`));
      facts.replaceWith(fresh);
      facts = fresh;
    } catch {
      /* the promotion's own message already says what happened */
    }
  });
  setContent(main, facts, manifestArea, evaluationsArea, gate.node, historyArea);
  await Promise.all([loadManifest(model, manifestArea), loadEvaluations(model, evaluationsArea), gate.check()]);
}

function summary(model) {
  const rows = [
    ["Version", model.id],
    ["Created", fmtTime(model.created_at)],
    ["Method", model.method],
    ["Backbone", model.backbone],
    ["Task", taskOf(model)],
    ["Stage", model.stage],
    ["Aliases", model.aliases.length ? model.aliases.join(", ") : "none"],
    ["Cohort", model.cohort_id ? el("a", { href: `/console/cohorts/${encodeURIComponent(model.cohort_id)}` }, model.cohort_id) : "—"],
    ["Training job", model.job_id ? el("a", { href: `/console/jobs/${encodeURIComponent(model.job_id)}` }, model.job_id) : "—"],
    ["SHA-256 (model.json)", el("code", { class: "sha-full" }, model.sha256)],
    ["Monitoring", el("a", { href: `/console/monitoring?ref=${encodeURIComponent(model.id)}` }, "Live monitoring of this version")],
    ["Try it", el("a", { href: `/console/predict?ref=${encodeURIComponent(model.id)}` }, "Send an image to this version")],
  ];
  const files = table("Files and their SHA-256", [["File", ([name]) => el("code", {}, name)], ["SHA-256", ([, sha]) => el("code", { class: "sha-full" }, sha)]],
    Object.entries(model.files));
  return el("section", { "aria-labelledby": "version-h" }, el("h2", { id: "version-h" }, "Version"), factList(rows), files);
}

async function loadManifest(model, area) {
  const heading = area.querySelector("h2");
  let manifest;
  try {
    manifest = await (await apiRaw(`/v1/models/${encodeURIComponent(model.id)}/onnx?file=model.json`)).json();
  } catch (error) {
    area.replaceChildren(heading, alertBox(`model.json could not be read: ${error.message}`));
    return;
  }
  const arch = manifest.architecture || {};
  const task = manifest.task || { kind: "binary", classes: [] };
  const exits = (arch.exit_names || []).map((name, k) => ({ k, name, theta: manifest.exit_thresholds?.[k], cost: manifest.exit_costs?.[k] }));
  const rows = [
    ["Task", task.kind],
    [task.kind === "multilabel" ? "Findings" : "Classes", task.classes.length ? task.classes.join(", ") : "binary: label 1 is the positive class"],
    ["Input", `${manifest.input?.channels} × ${manifest.input?.height} × ${manifest.input?.width}`],
    ["Exits", `${arch.n_exits} (${arch.served === "early_exit" ? "early exit: a sample leaves at the first confident exit" : "the final head decides"})`],
    ["Operating threshold", manifest.operating_threshold === null ? "— (see the decision rule)" : fmt(manifest.operating_threshold, 4)],
    ["Threshold rule", manifest.operating_threshold_rule?.rule || "—"],
  ];
  if (manifest.decision) {
    rows.push(["Decision rule", manifest.decision.rule]);
    if (manifest.decision.thresholds) {
      rows.push(["Decision thresholds", manifest.decision.thresholds.map((t, i) => `${task.classes[i] ?? i}: ${fmt(t, 3)}`).join(", ")]);
    }
  }
  rows.push(["SHA-256", el("code", { class: "sha-full" }, model.sha256)]);
  area.replaceChildren(heading, factList(rows), table("Exits", [
    ["Exit", (e) => `${e.k + 1} (${e.name})`],
    ["Confidence threshold θ", (e) => (e.theta === null || e.theta === undefined ? "never leaves here" : fmt(e.theta, 3))],
    ["Compute (share of the full network)", (e) => fmt(e.cost, 3)],
  ], exits));
}

async function loadEvaluations(model, area) {
  const heading = area.querySelector("h2");
  try {
    const { items } = await api(`/v1/evaluations?model_version_id=${encodeURIComponent(model.id)}&limit=200`);
    area.replaceChildren(heading, scroller(table("Evaluations of this version", [
      ["Evaluation", (e) => el("a", { href: `/console/evaluations/${encodeURIComponent(e.id)}` }, e.name || e.id)],
      ["Id", (e) => el("code", {}, e.id)],
      ["Kind", (e) => e.kind],
      ["Status", (e) => e.status],
      ["Split", (e) => e.split || "—"],
      ["Created", (e) => fmtTime(e.created_at)],
    ], items, { empty: "No evaluations of this version yet." })));
  } catch (error) {
    area.replaceChildren(heading, alertBox(error.message));
  }
}

/** "limit: overall auc ≥ 0.99 (estimate)" — a check of the policy language in words. */
export function describeCheck(check) {
  const c = check || {};
  const where = c.attribute && c.attribute !== "overall" ? ` over ${c.attribute}` : c.attribute ? " overall" : "";
  const finding = c.finding ? ` (finding ${c.finding})` : "";
  switch (c.check) {
    case "limit":
      return `limit: ${c.metric}${where}${c.min !== null && c.min !== undefined ? ` ≥ ${c.min}` : ""}${c.max !== null && c.max !== undefined ? ` ≤ ${c.max}` : ""} (${c.on})${finding}`;
    case "group_band":
      return `group band: ${c.metric} of every ${c.attribute} group${c.low !== null && c.low !== undefined ? ` ≥ ${c.low}` : ""}${c.high !== null && c.high !== undefined ? ` ≤ ${c.high}` : ""}${c.max_spread !== null && c.max_spread !== undefined ? `, spread ≤ ${c.max_spread}` : ""}${finding}`;
    case "min_group_count":
      return `minimum group count over ${c.attribute}: ${c.min_positives} positives, ${c.min_negatives} negatives${finding}`;
    case "no_worsening":
      return `no worsening of ${(c.metrics || []).join(", ")}${where} (α ${c.alpha})${finding}`;
    case "max_drop":
      return `max drop of ${c.metric}: ${c.max_drop} (${c.on})${finding}`;
    default:
      return c.check || "check";
  }
}

/** The checks of a gate result or of a 409 refusal: each check, its outcome, numbers and message. */
export function checksTable(caption, checks) {
  return scroller(table(caption, [
    ["Check", (r) => describeCheck(r.check)],
    ["Outcome", (r) => el("span", { class: `badge outcome-${r.outcome}` }, r.outcome)],
    ["Value [95 % interval]", (r) => fmtInterval(r.value, r.ci_low, r.ci_high)],
    ["p-value", (r) => fmt(r.p_value)],
    ["Message", (r) => r.message],
  ], checks, { empty: "No checks: no fairness policy applies." }));
}

function gateSection(model, historyArea, onPromoted) {
  const caller = currentCaller();
  const writer = can("write");
  const admin = caller?.role === "admin";
  const alias = field("Alias", el("input", { name: "alias", value: model.aliases[0] || "production", autocomplete: "off", required: true, spellcheck: "false" }),
    "1-64 lowercase letters, digits and hyphens, starting with a letter, e.g. production.");
  const reason = admin
    ? field("Override reason (admins only)", el("textarea", { name: "override_reason", rows: 2, maxlength: 200 }),
      "Only to promote past a failed gate: the reason is kept in the alias history, on the model card and in every prediction through the alias.")
    : null;
  const checkButton = el("button", { type: "button", class: "secondary" }, "Check the gate");
  const promoteButton = writer ? el("button", { type: "submit" }, "Promote") : null;
  const result = el("div", { class: "gate-result", "aria-live": "polite" });
  const form = el("form", { class: "card", novalidate: true, "aria-labelledby": "gate-h" }, el("h2", { id: "gate-h" }, writer ? "Deployment gate and promotion" : "Deployment gate"),
    el("p", { class: "hint" }, writer
      ? "Promotion points the alias at this version only when the fairness policy holds on its evaluation."
      : "What promoting this version would meet (promotion needs an auditor or admin key)."),
    alias.node, reason?.node, el("div", { class: "row" }, checkButton, promoteButton), result);

  const aliasName = () => alias.input.value.trim();
  const placeAtAlias = (error) => {
    // the API refuses a bad alias name with a detail but no field: it belongs at the alias field
    if (error.status === 422 && !error.errors.length && /alias/.test(error.message)) {
      error.errors = [{ field: "alias", message: error.message }];
      error.message = "The alias name was refused.";
    }
    return error;
  };

  async function check() {
    clearProblem(form);
    result.replaceChildren(statusLine("Checking the gate…"));
    try {
      const gate = await api(`/v1/models/${encodeURIComponent(model.id)}/gate?alias=${encodeURIComponent(aliasName())}`);
      result.replaceChildren(gateResult(gate));
    } catch (error) {
      result.replaceChildren();
      showProblem(form, placeAtAlias(error));
      return;
    }
    await loadHistory(aliasName(), historyArea);
  }

  async function promote() {
    clearProblem(form);
    const body = { model_version_id: model.id };
    const why = reason?.input.value.trim();
    if (why) body.override_reason = why;
    result.replaceChildren(statusLine("Promoting…"));
    try {
      const moved = await api(`/v1/models/aliases/${encodeURIComponent(aliasName())}`, { method: "PUT", json: body });
      result.replaceChildren(
        el("p", { role: "status", class: "verdict pass" }, `${moved.name} now points at ${moved.model_version_id}` + (moved.override_reason ? ` (gate overridden: ${moved.override_reason})` : "") + "."),
        gateResult(moved.gate));
      await onPromoted();
    } catch (error) {
      result.replaceChildren();
      if (error.status === 409 && error.errors.length) {
        const failed = error.errors.filter((e) => e.check);
        const others = error.errors.filter((e) => !e.check).map((e) => e.message);
        result.replaceChildren(...[
          el("div", { role: "alert", class: "alert form-alert", tabindex: "-1" }, `Promotion refused: ${error.message}`),
          failed.length ? checksTable("Checks that did not pass", failed) : null,
          others.length ? el("ul", {}, others.map((m) => el("li", {}, m))) : null,
          admin ? el("p", { class: "hint" }, "As an admin you may promote anyway: write the reason in the override field and promote again.") : null,
        ].filter(Boolean));
        result.querySelector(".alert").focus();
      } else {
        showProblem(form, placeAtAlias(error));
      }
      return;
    }
    await loadHistory(aliasName(), historyArea);
  }

  checkButton.addEventListener("click", check);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    if (writer) promote();
  });
  return { node: form, check };
}

function gateResult(gate) {
  const cls = gate.outcome === "pass" || gate.outcome === "no policy" ? "pass" : gate.outcome === "fail" ? "fail" : "uncertain";
  const facts = [
    ["Alias", gate.alias],
    ["Policy", gate.policy_id ? `${gate.policy_id} (version ${gate.policy_version})` : "none"],
    ["Evaluation checked", gate.evaluation_id ? el("a", { href: `/console/evaluations/${encodeURIComponent(gate.evaluation_id)}` }, gate.evaluation_id) : "—"],
    ["Model behind the alias now", gate.incumbent_model_id || "none"],
  ];
  if (gate.missing_attributes.length) facts.push(["Attributes the evaluation lacks", gate.missing_attributes.join(", ")]);
  return el("div", {},
    el("p", { class: `verdict ${cls}` }, `Gate for ${gate.alias}: ${gate.outcome}`),
    el("p", {}, gate.detail),
    factList(facts),
    checksTable("Gate checks", gate.checks));
}

async function loadHistory(name, area) {
  const heading = area.querySelector("h2");
  try {
    const { items } = await api(`/v1/models/aliases/${encodeURIComponent(name)}/history?limit=50`);
    area.replaceChildren(heading, scroller(table(`History of ${name}`, [
      ["When", (h) => fmtTime(h.created_at)],
      ["From", (h) => (h.from_model_id ? el("a", { href: `/console/models/${encodeURIComponent(h.from_model_id)}` }, h.from_model_id) : "—")],
      ["To", (h) => el("a", { href: `/console/models/${encodeURIComponent(h.to_model_id)}` }, h.to_model_id)],
      ["Gate", (h) => h.gate],
      ["Override reason", (h) => h.override_reason || "—"],
      ["Key", (h) => h.api_key_id || "—"],
    ], items, { empty: `The alias ${name} has never been moved.` })));
  } catch (error) {
    area.replaceChildren(heading, alertBox(error.message));
  }
}
