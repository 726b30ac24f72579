// Cohorts (the console's landing page): the organisation's cohorts, a page at a time as the API pages
// them, and (for a key that may write) the upload form: a progress bar for the upload's bytes, then one
// for ingestion (the ingestion job's event stream), ending with a link to the ready cohort or its errors.
import { api, follow, upload } from "../api.js";
import { can } from "../session.js";
import { alertBox, clearProblem, el, field, fmtTime, progressBar, setContent, showProblem, statusLine, table } from "../ui.js";

// What CohortConfig (app/cohorts/config.py) allows; the API judges the rest of the config.
const PRESETS = [
  ["fitzpatrick17k", "fitzpatrick17k (derm)"],
  ["isic2019", "isic2019 (derm)"],
  ["chexpert", "chexpert (chest X-ray)"],
  ["dicom", "dicom (tags)"],
  ["generic", "generic (columns in the config)"],
];
const TASKS = [
  ["binary", "binary: one positive class"],
  ["multiclass", "multiclass: one of several classes"],
  ["multilabel", "multilabel: several findings"],
];
const FORM_FIELDS = new Set(["name", "preset", "task", "image_size"]);
const PAGE_SIZE = 20; // a ?limit= in the page's address (1 to 200, the API's bounds) asks for another

function pageSize() {
  const asked = Number(new URLSearchParams(location.search).get("limit"));
  return Number.isInteger(asked) && asked >= 1 && asked <= 200 ? asked : PAGE_SIZE;
}

export async function render(main) {
  const list = el("section", { "aria-labelledby": "list-h" }, el("h2", { id: "list-h", tabindex: -1 }, "Cohorts of your organisation"));
  const pager = new Pager(list);
  const writer = can("write");
  setContent(main, el("div", { class: writer ? "cohorts-layout" : "" }, list, writer ? uploadSection(() => pager.first()) : null));
  await pager.first();
}

/** The list, a page at a time: the API's ``next_cursor`` leads on; the cursors seen lead back. */
class Pager {
  constructor(area) {
    this.area = area;
    this.cursors = [null];
  }

  first() {
    this.cursors = [null];
    return this.load();
  }

  async load() {
    const heading = this.area.querySelector("h2");
    const cursor = this.cursors[this.cursors.length - 1];
    const query = new URLSearchParams({ limit: String(pageSize()) });
    if (cursor) query.set("cursor", cursor);
    let page;
    try {
      page = await api(`/v1/cohorts?${query}`);
    } catch (error) {
      this.area.replaceChildren(heading, alertBox(`The cohorts could not be loaded: ${error.message}`));
      return;
    }
    const number = this.cursors.length;
    const nav = el("div", { class: "row pager" },
      number > 1 ? el("button", { type: "button", class: "secondary", onclick: () => this.back() }, "Previous page") : null,
      page.next_cursor ? el("button", { type: "button", class: "secondary", onclick: () => this.next(page.next_cursor) }, "Next page") : null,
      number > 1 || page.next_cursor ? el("span", { class: "status" }, `Page ${number}`) : null);
    this.area.replaceChildren(heading, el("div", { class: "table-scroll" }, table("Cohorts", [
      ["Name", (c) => el("a", { href: `/console/cohorts/${encodeURIComponent(c.id)}` }, c.name)],
      ["Task", (c) => (c.classes.length ? `${c.task} (${c.classes.length})` : c.task)],
      ["Status", (c) => statusBadge(c)],
      ["Items", (c) => String(c.n_items)],
      ["Preset", (c) => c.preset],
      ["Created", (c) => fmtTime(c.created_at)],
    ], page.items, { empty: "No cohorts yet." })), nav);
  }

  async next(cursor) {
    this.cursors.push(cursor);
    await this.load();
    this.area.querySelector("h2").focus(); // the button pressed is gone: keep the keyboard in the list
  }

  async back() {
    this.cursors.pop();
    await this.load();
    this.area.querySelector("h2").focus();
  }
}

export function statusBadge(cohort) {
  const text = cohort.status === "ingesting" ? `ingesting ${Math.round(cohort.progress * 100)} %` : cohort.status;
  return el("span", { class: `badge status-${cohort.status}` }, text);
}

function uploadSection(onUploaded) {
  const archive = field("Archive (.zip or .tar.gz)", el("input", { name: "archive", type: "file", accept: ".zip,.tar.gz,.tgz,application/zip,application/gzip" }),
    "Images and one manifest CSV.");
  const name = field("Name", el("input", { name: "name", maxlength: 200, autocomplete: "off" }), "How the cohort is shown, e.g. \"derm site A 2024\".");
  const preset = field("Preset", el("select", { name: "preset" }, PRESETS.map(([value, label]) => el("option", { value }, label))),
    "The manifest's layout: its columns, labels and sensitive attributes (generic: name them in the advanced config).");
  const task = field("Task", el("select", { name: "task" }, TASKS.map(([value, label]) => el("option", { value }, label))));
  const size = field("Image size (pixels)", el("input", { name: "image_size", type: "number", min: 16, max: 1024, step: 1, value: 128, inputmode: "numeric" }),
    "Images are resized to this square size at ingestion (16 to 1024).");
  const advanced = field("Config JSON", el("textarea", { name: "config", rows: 6, spellcheck: "false", class: "code" }),
    "Optional: a JSON object merged over the fields above, e.g. {\"split\": {\"mode\": \"column\"}}.");
  const details = el("details", { class: "advanced" }, el("summary", {}, "Advanced: config JSON"), advanced.node);
  const submit = el("button", { type: "submit" }, "Upload cohort");
  const form = el("form", { "aria-labelledby": "upload-h", novalidate: true }, archive.node, name.node, preset.node, task.node, size.node, details, submit);
  const progress = el("div", { class: "upload-progress" });
  const section = el("section", { "aria-labelledby": "upload-h", class: "upload" },
    el("div", { class: "card" }, el("h2", { id: "upload-h" }, "Upload a cohort"), form), progress);

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearProblem(form);
    const built = buildConfig(advanced.input.value, { name: name.input.value, preset: preset.input.value, task: task.input.value, image_size: size.input.value });
    if (built.error) {
      details.open = true;
      showProblem(form, built.error);
      return;
    }
    const file = archive.input.files[0];
    if (!file) {
      showProblem(form, { message: "Choose an archive to upload.", errors: [{ field: "archive", message: "no file chosen" }] });
      return;
    }
    const data = new FormData();
    data.append("config", JSON.stringify(built.config));
    data.append("archive", file, file.name);
    submit.disabled = true;
    try {
      await send(data, built.fromAdvanced, progress, form, details, onUploaded);
    } finally {
      submit.disabled = false;
    }
  });
  return section;
}

/** The config sent: the form's fields with the advanced JSON object merged over them. */
function buildConfig(text, fields) {
  const config = { name: fields.name, preset: fields.preset };
  if (fields.task !== "binary") config.task = fields.task;
  if (fields.image_size !== "") config.image_size = /^\d+$/.test(fields.image_size) ? Number(fields.image_size) : fields.image_size;
  if (!text.trim()) return { config, fromAdvanced: new Set() };
  let extra;
  try {
    extra = JSON.parse(text);
  } catch (error) {
    return { error: { message: "config is not valid JSON", errors: [{ field: "config", message: error.message }] } };
  }
  if (extra === null || typeof extra !== "object" || Array.isArray(extra)) {
    return { error: { message: "config is not a JSON object", errors: [{ field: "config", message: "write a JSON object: {\"key\": value, …}" }] } };
  }
  return { config: { ...config, ...extra }, fromAdvanced: new Set(Object.keys(extra)) };
}

async function send(data, fromAdvanced, area, form, details, onUploaded) {
  const up = progressBar("Upload");
  const upText = statusLine("Uploading…");
  const ingest = progressBar("Ingestion");
  const ingestText = statusLine("Waiting for the upload to finish.");
  const outcome = el("div", {});
  area.replaceChildren(el("div", { class: "card" }, el("h3", {}, "Progress"), up.node, upText, ingest.node, ingestText, outcome));
  let cohort;
  try {
    cohort = await upload("/v1/cohorts", data, (sent, total) => {
      up.bar.value = total ? sent / total : 0;
      upText.textContent = `Uploading… ${Math.round((100 * sent) / (total || 1))} % of ${bytes(total)}`;
    });
  } catch (error) {
    area.replaceChildren();
    const problem = placed(error, fromAdvanced);
    if (problem.errors.some((e) => e.field === "config")) details.open = true;
    showProblem(form, problem);
    return;
  }
  up.bar.value = 1;
  upText.textContent = "Upload done: the archive and its manifest were accepted.";
  form.reset();
  clearProblem(form);
  onUploaded();
  let final;
  try {
    final = await followIngestion(cohort, (fraction, text) => {
      ingest.bar.value = fraction;
      ingestText.textContent = text;
    });
  } catch (error) {
    ingestText.textContent = "Ingestion could not be followed.";
    outcome.replaceChildren(alertBox(error.message), el("p", {}, el("a", { href: `/console/cohorts/${encodeURIComponent(cohort.id)}` }, `Open the cohort "${cohort.name}"`)));
    return;
  }
  onUploaded();
  const link = el("a", { href: `/console/cohorts/${encodeURIComponent(final.id)}` }, `Open the cohort "${final.name}"`);
  if (final.status === "ready") {
    ingest.bar.value = 1;
    ingestText.textContent = `Ingestion done: ${final.n_items} items ready.`;
    outcome.replaceChildren(el("p", {}, link));
  } else {
    ingestText.textContent = `Ingestion ${final.status}.`;
    outcome.replaceChildren(alertBox([`The cohort is ${final.status}.`, ...final.errors.map(describe)].join("\n")), el("p", {}, link));
  }
}

/**
 * Follow a cohort's ingestion until it is no longer ``ingesting``: its job's event stream when the cohort
 * names one (progress events as they are written), else polling the cohort. Answers the final cohort.
 */
export async function followIngestion(cohort, onProgress) {
  const report = (fraction, done, total) =>
    onProgress(fraction, `Ingesting… ${Math.round(fraction * 100)} %${total ? ` (${done} of ${total} images)` : ""}`);
  report(cohort.progress || 0);
  if (cohort.status !== "ingesting") return cohort;
  if (cohort.ingest_job_id) {
    try {
      const stream = follow(`/v1/jobs/${encodeURIComponent(cohort.ingest_job_id)}/events`, ({ event, data }) => {
        if (event === "progress" && typeof data.fraction === "number") report(data.fraction, data.done, data.total);
      });
      await stream.done;
    } catch {
      /* the stream failed: polling below still finds the outcome */
    }
  }
  for (;;) {
    const now = await api(`/v1/cohorts/${encodeURIComponent(cohort.id)}`);
    if (now.status !== "ingesting") return now;
    report(now.progress || 0);
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
}

/** An upload refusal with each problem at the input it is about: a config field at the form's own input
 * unless the advanced JSON set it; other config paths, and the config as a whole, at the JSON box when
 * there is advanced JSON (else in the form's alert); archive and manifest problems (a file, a row, a
 * column) at the file input. One message per input. */
function placed(error, fromAdvanced) {
  const byField = new Map();
  const general = [];
  const add = (name, message) => byField.set(name, [...(byField.get(name) || []), message]);
  for (const item of error.errors || []) {
    const path = String(item.field || "").replace(/^body\./, "");
    const top = path.split(".")[0];
    if (!path || top === "archive") add("archive", describe(item));
    else if (FORM_FIELDS.has(top) && !fromAdvanced.has(top) && path === top) add(top, item.message || path);
    else if (fromAdvanced.size) add("config", item.message || path);
    else general.push(item.message || path);
  }
  if (!byField.size && !general.length && error.status !== 401 && error.status !== 403 && error.status > 0) add("archive", error.message);
  const errors = [...byField].map(([name, messages]) => ({
    field: name,
    message: messages.length > 6 ? [...messages.slice(0, 6), `… and ${messages.length - 6} more`].join("\n") : messages.join("\n"),
  }));
  return { message: [error.message, ...general].join("\n"), errors };
}

function describe(item) {
  const where = ["row", "column", "file"].filter((k) => item[k] !== undefined).map((k) => `${k} ${item[k]}`).join(", ");
  return where ? `${where}: ${item.message || ""}` : String(item.message || JSON.stringify(item));
}

function bytes(n) {
  if (!n) return "0 B";
  const units = ["B", "kB", "MB", "GB"];
  const i = Math.min(units.length - 1, Math.floor(Math.log10(n) / 3));
  return `${(n / 1000 ** i).toFixed(i ? 1 : 0)} ${units[i]}`;
}
