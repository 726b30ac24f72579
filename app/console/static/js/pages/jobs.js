// Jobs of the organisation (training, evaluation, ingestion…): newest first, filtered by status.
import { api } from "../api.js";
import { can } from "../session.js";
import { alertBox, el, fmtTime, setContent, table } from "../ui.js";

const STATUSES = ["queued", "running", "succeeded", "failed", "cancelled"];

export async function render(main) {
  const params = new URLSearchParams(location.search);
  const status = el("select", { name: "status", id: "status-filter" }, el("option", { value: "" }, "any status"),
    STATUSES.map((s) => el("option", { value: s, selected: s === params.get("status") }, s)));
  const list = el("section", { "aria-label": "Jobs", "aria-live": "polite" });
  const filter = el("form", { class: "row filter", role: "search", "aria-label": "Filter jobs" },
    el("div", { class: "field" }, el("label", { for: "status-filter" }, "Status"), status),
    el("button", { type: "button", class: "secondary", onclick: () => load(list, status.value) }, "Refresh"),
    can("write") ? el("a", { class: "button", href: "/console/train" }, "Start training") : null);
  filter.addEventListener("submit", (e) => e.preventDefault());
  status.addEventListener("change", () => {
    const url = new URL(location.href);
    if (status.value) url.searchParams.set("status", status.value);
    else url.searchParams.delete("status");
    history.replaceState(null, "", url);
    load(list, status.value);
  });
  setContent(main, filter, list);
  await load(list, status.value);
}

async function load(list, status, cursor = null, rows = []) {
  let page;
  try {
    const query = new URLSearchParams({ limit: "50" });
    if (status) query.set("status", status);
    if (cursor) query.set("cursor", cursor);
    page = await api(`/v1/jobs?${query}`);
  } catch (error) {
    list.replaceChildren(alertBox(error.message));
    return;
  }
  const all = [...rows, ...page.items];
  const more = page.next_cursor
    ? el("button", { type: "button", class: "secondary", onclick: () => load(list, status, page.next_cursor, all) }, "Show more")
    : null;
  list.replaceChildren(...[el("div", { class: "table-scroll" }, table(status ? `Jobs (${status})` : "Jobs", [
    ["Job", (j) => el("a", { href: `/console/jobs/${encodeURIComponent(j.id)}` }, j.id)],
    ["Kind", (j) => j.kind],
    ["Method", (j) => j.method || "—"],
    ["Status", (j) => el("span", { class: `badge job-${j.status}` }, j.cancel_requested && j.status === "running" ? "running (cancelling)" : j.status)],
    ["Created", (j) => fmtTime(j.created_at)],
    ["Progress", progressCell],
  ], all, { empty: status ? `No ${status} job.` : "No job yet." })), more].filter(Boolean));
}

/** A job's progress as a bar and its words: "epoch 2 of 5", the phase, or how it ended. */
export function progressCell(job) {
  const p = job.progress || {};
  const done = job.status === "succeeded";
  const fraction = done ? 1 : typeof p.fraction === "number" ? p.fraction : null;
  const words = done ? "done"
    : job.status === "queued" ? "waiting"
      : p.epochs ? `epoch ${p.epoch || 0} of ${p.epochs}${p.phase ? ` (${p.phase})` : ""}`
        : p.phase || p.message || (job.status === "running" ? "starting" : "—");
  if (fraction === null) return words;
  const bar = el("progress", { max: 1, value: Math.min(1, Math.max(0, fraction)), "aria-label": `Progress of ${job.id}` });
  return el("div", { class: "cell-progress" }, bar, el("span", {}, `${Math.round(fraction * 100)} % · ${words}`));
}
