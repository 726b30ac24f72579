// One job: its state and live progress from the event stream (GET /v1/jobs/{id}/events: `state` and
// `progress` events, then `end`), the per-epoch curves, cancel, and once it succeeded the model version
// and evaluation it made. Leaving the page closes the stream.
import { api, follow } from "../api.js";
import { lineChart } from "../charts.js";
import { can } from "../session.js";
import { alertBox, confirmDialog, el, fmt, fmtTime, progressBar, statusLine } from "../ui.js";

const TERMINAL = ["succeeded", "failed", "cancelled"];
const VALIDATION = [["val_auc", "validation AUC"], ["val_pfd", "validation PFD"], ["val_accuracy", "validation accuracy"],
  ["val_macro_f1", "validation macro F1"], ["val_eopp1", "validation Eopp1"]];

export async function render(main, { job_id: jobId }) {
  const title = main.querySelector("h1");
  let job;
  try {
    job = await api(`/v1/jobs/${encodeURIComponent(jobId)}`);
  } catch (error) {
    main.replaceChildren(title, alertBox(error.status === 404 ? `There is no job ${jobId} in your organisation.` : error.message));
    return;
  }
  title.textContent = `${job.kind === "train" ? "Training job" : `Job (${job.kind})`} ${job.id}`;
  document.title = `${title.textContent} · FairAudit`;
  new JobView(main, title, job).start();
}

function duration(seconds) {
  const s = Math.max(0, Math.ceil(seconds));
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  return m < 60 ? `${m} min ${s % 60} s` : `${Math.floor(m / 60)} h ${m % 60} min`;
}

class JobView {
  constructor(main, title, job) {
    this.job = job;
    this.history = new Map((job.history || []).map((h) => [h.epoch, h]));
    this.statusText = el("strong", { class: `badge job-${job.status}` });
    this.cancelButton = el("button", { type: "button", class: "danger", onclick: () => this.cancel() }, "Cancel job");
    this.facts = el("dl", { class: "facts" });
    const progress = progressBar(job.kind === "train" ? "Training progress" : "Job progress");
    this.bar = progress.bar;
    this.progressWords = el("p", { class: "status progress-words" });
    this.notice = el("div", { "aria-live": "polite" });
    this.charts = el("div", { class: "charts" });
    this.outcome = el("div", { "aria-live": "polite" });
    main.replaceChildren(title,
      el("div", { class: "row job-head" }, el("p", { role: "status", class: "job-status" }, "Status: ", this.statusText), this.cancelButton),
      this.notice, this.facts,
      el("section", { "aria-labelledby": "progress-h" }, el("h2", { id: "progress-h" }, "Progress"), progress.node, this.progressWords),
      this.outcome,
      el("section", { "aria-labelledby": "curves-h" }, el("h2", { id: "curves-h" }, "Curves per epoch"), this.charts),
      el("section", { "aria-labelledby": "config-h" }, el("h2", { id: "config-h" }, "Configuration"),
        el("details", {}, el("summary", {}, "Show the configuration (JSON)"), el("pre", { class: "config" }, JSON.stringify(job.config, null, 2)))));
    this.drawState();
    this.drawCharts();
  }

  start() {
    if (TERMINAL.includes(this.job.status)) return;
    this.tries = 0;
    this.follow();
    window.addEventListener("pagehide", () => {
      this.closed = true;
      this.stream?.controller.abort();
    });
    window.addEventListener("pageshow", (event) => { // back from the page cache: follow again
      if (event.persisted && this.closed && !TERMINAL.includes(this.job.status)) {
        this.closed = false;
        this.follow();
      }
    });
  }

  follow() {
    this.stream = follow(`/v1/jobs/${encodeURIComponent(this.job.id)}/events`, (event) => this.onEvent(event));
    this.stream.done.then(() => this.closed || this.refresh()).catch((error) => {
      if (this.closed) return;
      if (this.tries++ < 5 && !(error.status >= 400)) {
        this.notice.replaceChildren(statusLine("The live connection dropped; reconnecting…"));
        setTimeout(() => this.follow(), 1500);
      } else {
        this.notice.replaceChildren(alertBox(`Live progress is unavailable: ${error.message}. Reload the page to see the job's state.`));
      }
    });
  }

  onEvent({ event, data }) {
    if (event === "progress" && data && typeof data === "object") {
      if (data.phase === "validate" && data.epoch) {
        this.history.set(data.epoch, data);
        this.drawCharts();
      }
      // the stream replays the job's events from its start: an older report than the one shown is history only
      if (typeof data.step === "number" && data.step < (this.job.progress?.step ?? 0)) return;
      this.job.progress = data;
      this.drawProgress(data);
    } else if (event === "state" && data && data.status) {
      if (data.attempt && data.attempt > this.job.attempt) { // a new attempt resumes from a checkpoint: steps may go back
        this.job.attempt = data.attempt;
        this.job.progress = {};
      }
      this.job.status = data.status;
      if (data.cancel_requested) this.job.cancel_requested = true;
      if (data.result) this.job.result = data.result;
      if (data.error) this.job.error = data.error;
      this.drawState();
      this.refresh(); // the stored job: start and end times, attempt
    } else if (event === "end") {
      this.notice.replaceChildren();
    }
  }

  /** The job as stored (after a change of state, and once the stream ended: final status, result, history). */
  async refresh() {
    let stored;
    try {
      stored = await api(`/v1/jobs/${encodeURIComponent(this.job.id)}`);
    } catch (error) {
      this.notice.replaceChildren(alertBox(error.message));
      return;
    }
    // the stream may already be further along than this read, and an ended job stays ended
    if ((this.job.progress?.step ?? -1) > (stored.progress?.step ?? -1)) stored.progress = this.job.progress;
    if (TERMINAL.includes(this.job.status) && !TERMINAL.includes(stored.status)) return;
    this.job = stored;
    for (const h of this.job.history || []) this.history.set(h.epoch, h);
    this.drawState();
    this.drawCharts();
  }

  drawState() {
    const { job } = this;
    const cancelling = job.cancel_requested && !TERMINAL.includes(job.status);
    this.statusText.className = `badge job-${job.status}`;
    this.statusText.textContent = cancelling ? `${job.status}, cancel requested` : job.status;
    this.cancelButton.hidden = TERMINAL.includes(job.status) || !can("write");
    this.cancelButton.disabled = Boolean(cancelling);
    const fact = (term, value) => [el("dt", {}, term), el("dd", {}, value)];
    const cohort = job.cohort_id ? el("a", { href: `/console/cohorts/${encodeURIComponent(job.cohort_id)}` }, job.cohort_id) : "—";
    const attributes = job.config?.sensitive_attributes;
    this.facts.replaceChildren(
      ...fact("Kind", job.kind), ...fact("Method", job.method || "—"), ...fact("Cohort", cohort),
      ...(attributes ? fact("Sensitive attributes", attributes.join(", ")) : []),
      ...(job.config?.backbone ? fact("Backbone", job.config.backbone) : []),
      ...fact("Created", fmtTime(job.created_at)), ...fact("Started", fmtTime(job.started_at)),
      ...fact("Finished", fmtTime(job.finished_at)), ...fact("Attempt", `${job.attempt} of ${job.max_attempts}`));
    this.drawProgress(job.progress || {});
    this.drawOutcome();
  }

  drawProgress(p) {
    const { job } = this;
    const fraction = job.status === "succeeded" ? 1 : typeof p.fraction === "number" ? p.fraction : 0;
    this.bar.value = Math.min(1, Math.max(0, fraction));
    const parts = [`${Math.round(this.bar.value * 100)} %`];
    if (TERMINAL.includes(job.status)) {
      const where = p.epochs ? `in epoch ${p.epoch || 0} of ${p.epochs}` : "before its first epoch";
      parts.push(job.status === "succeeded" ? "finished" : `${job.status} ${where}`);
      this.progressWords.textContent = parts.join(" · ");
      return;
    }
    if (p.epochs) parts.push(`epoch ${p.epoch || 0} of ${p.epochs}`);
    if (p.phase) parts.push(p.phase);
    if (p.losses && typeof p.losses.total === "number") parts.push(`loss ${fmt(p.losses.total)}`);
    if (typeof p.eta_s === "number") parts.push(`about ${duration(p.eta_s)} left`);
    if (p.message) parts.push(p.message);
    if (job.status === "queued") parts.push("waiting for a worker");
    this.progressWords.textContent = parts.join(" · ");
  }

  drawCharts() {
    const epochs = [...this.history.values()].filter((h) => h.epoch).sort((a, b) => a.epoch - b.epoch);
    if (!epochs.length) {
      this.charts.replaceChildren(el("p", { class: "empty" }, "The curves appear when the first epoch ends."));
      return;
    }
    const lossNames = [...new Set(epochs.flatMap((h) => Object.keys(h.losses || {})))].sort((a, b) => (a === "total" ? -1 : b === "total" ? 1 : a.localeCompare(b)));
    const losses = lossNames.map((name) => ({ name: name === "total" ? "total loss" : `${name} loss`, points: epochs.map((h) => [h.epoch, h.losses?.[name] ?? null]) }));
    const validation = VALIDATION.filter(([key]) => epochs.some((h) => typeof h[key] === "number"))
      .map(([key, name]) => ({ name, points: epochs.map((h) => [h.epoch, h[key] ?? null]) }));
    this.charts.replaceChildren(
      lineChart("Training loss per epoch", losses),
      validation.length ? lineChart("Validation AUC and PFD per epoch", validation, { yMin: 0, yMax: 1 }) : el("p", { class: "empty" }, "No validation metric was reported."));
  }

  drawOutcome() {
    const { job } = this;
    if (job.status === "succeeded" && job.result) {
      const r = job.result;
      const links = [];
      if (r.model_version_id) links.push(el("li", {}, "Model version: ", el("a", { href: `/console/models/${encodeURIComponent(r.model_version_id)}` }, r.model_version_id)));
      if (r.evaluation_id) links.push(el("li", {}, "Evaluation: ", el("a", { href: `/console/evaluations/${encodeURIComponent(r.evaluation_id)}` }, r.evaluation_id)));
      const facts = [r.best_epoch !== undefined ? `best epoch ${r.best_epoch}` : "", r.device ? `trained on ${r.device}` : ""].filter(Boolean).join(", ");
      this.outcome.replaceChildren(el("section", { "aria-labelledby": "result-h", class: "card" }, el("h2", { id: "result-h" }, "Result"),
        facts ? el("p", {}, `Training finished: ${facts}.`) : null, links.length ? el("ul", {}, links) : null));
    } else if (job.status === "failed") {
      this.outcome.replaceChildren(alertBox(`The job failed: ${job.error || "no reason was recorded"}`));
    } else if (job.status === "cancelled") {
      this.outcome.replaceChildren(el("p", { class: "notice", role: "status" }, "The job was cancelled; nothing was registered."));
    } else {
      this.outcome.replaceChildren();
    }
  }

  async cancel() {
    if (!(await confirmDialog(`Cancel the job ${this.job.id}? A running job stops at its next step; nothing it trained is kept.`, "Cancel job"))) return;
    try {
      const job = await api(`/v1/jobs/${encodeURIComponent(this.job.id)}/cancel`, { method: "POST" });
      this.job = { ...this.job, status: job.status, cancel_requested: job.cancel_requested };
      this.drawState();
    } catch (error) {
      this.notice.replaceChildren(alertBox(error.message));
    }
  }
}
