// DOM helpers. Everything the API returns is put on the page as text (textContent), never as markup:
// a cohort or key name cannot inject script, whatever it holds.

/** el("a", {href: "/x", class: "c"}, "text", child) — attributes; children are nodes or text. */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === false || value === null || value === undefined) continue;
    if (name.startsWith("on") && typeof value === "function") node.addEventListener(name.slice(2), value);
    else if (value === true) node.setAttribute(name, "");
    else node.setAttribute(name, String(value));
  }
  node.append(...children.flat().filter((c) => c !== null && c !== undefined && c !== false).map((c) => (c instanceof Node ? c : String(c))));
  return node;
}

/** Replace the page's content (keeps the h1) and move focus there for screen readers and keyboards. */
export function setContent(main, ...nodes) {
  const title = main.querySelector("h1");
  main.replaceChildren(title, ...nodes.filter((n) => n !== null && n !== undefined && n !== false));
}

/** A table with a caption; ``columns`` are [header, row => cell (node or text)]. */
export function table(caption, columns, rows, { empty = "Nothing yet." } = {}) {
  if (!rows.length) return el("p", { class: "empty" }, empty);
  return el(
    "table",
    {},
    el("caption", {}, caption),
    el("thead", {}, el("tr", {}, columns.map(([header]) => el("th", { scope: "col" }, header)))),
    el("tbody", {}, rows.map((row) => el("tr", {}, columns.map(([, cell]) => el("td", {}, cell(row) ?? ""))))),
  );
}

export function fmt(value, digits = 3) {
  if (value === null || value === undefined || Number.isNaN(value)) return "—";
  return typeof value === "number" ? value.toFixed(digits) : String(value);
}

/** "0.123 [0.100, 0.150]" for a value with its interval (either bound may be missing). */
export function fmtInterval(value, low, high, digits = 3) {
  if (low === null || low === undefined || high === null || high === undefined) return fmt(value, digits);
  return `${fmt(value, digits)} [${fmt(low, digits)}, ${fmt(high, digits)}]`;
}

export function fmtTime(iso) {
  return iso ? new Date(iso).toLocaleString() : "—";
}

/** A status line that screen readers announce (role=status), e.g. "Uploading… 40 %". */
export function statusLine(text = "") {
  return el("p", { role: "status", class: "status" }, text);
}

/** An alert box for a failure that belongs to no field. */
export function alertBox(text) {
  return el("div", { role: "alert", class: "alert" }, text);
}

/** A labelled progress bar; update with bar.value = 0..1. */
export function progressBar(label) {
  const id = `p${Math.random().toString(36).slice(2)}`;
  const bar = el("progress", { id, max: 1, value: 0 });
  return { node: el("div", { class: "progress" }, el("label", { for: id }, label), bar), bar };
}

/**
 * Show an API refusal on a form: each error whose ``field`` ends with an input's name goes next to
 * that input (aria-invalid, aria-describedby); the rest, and the detail, in the form's alert box.
 */
export function showProblem(form, error) {
  clearProblem(form);
  const unplaced = [];
  for (const item of error.errors || []) {
    const field = String(item.field || item.loc || "");
    const input = findField(form, field);
    if (!input) {
      unplaced.push(`${field}: ${item.message || item.msg || ""}`);
      continue;
    }
    const id = `${input.id || input.name}-error`;
    const message = el("p", { class: "field-error", id }, item.message || item.msg || "invalid");
    input.setAttribute("aria-invalid", "true");
    input.setAttribute("aria-describedby", id);
    (input.closest(".field") || input.parentElement).append(message);
  }
  const text = [error.message, ...unplaced].filter(Boolean).join("\n");
  form.prepend(el("div", { role: "alert", class: "alert form-alert" }, text));
  (form.querySelector("[aria-invalid=true]") || form.querySelector(".form-alert")).focus?.();
}

export function clearProblem(form) {
  form.querySelectorAll(".field-error, .form-alert").forEach((n) => n.remove());
  form.querySelectorAll("[aria-invalid]").forEach((n) => {
    n.removeAttribute("aria-invalid");
    n.removeAttribute("aria-describedby");
  });
}

/** The input for an API field path: the longest dotted suffix of ``field`` that names an input. */
function findField(form, field) {
  const parts = field.split(".");
  for (let i = 0; i < parts.length; i++) {
    const name = parts.slice(i).join(".");
    const input = form.querySelector(`[name="${CSS.escape(name)}"]`);
    if (input) return input;
  }
  return null;
}

/** A labelled form field: {node, input}. ``control`` is an input/select element built by the caller. */
export function field(label, control, hint = "") {
  const id = control.id || `f-${control.name || Math.random().toString(36).slice(2)}`.replace(/[^\w-]/g, "-");
  control.id = id;
  const hintNode = hint ? el("p", { class: "hint", id: `${id}-hint` }, hint) : null;
  if (hintNode) control.setAttribute("aria-describedby", hintNode.id);
  return { node: el("div", { class: "field" }, el("label", { for: id }, label), control, hintNode), input: control };
}

/** Ask before something that cannot be undone; a modal <dialog> (focus trapped, Esc cancels). */
export function confirmDialog(question, confirmLabel = "Confirm") {
  return new Promise((resolve) => {
    const yes = el("button", { type: "button", class: "danger" }, confirmLabel);
    const no = el("button", { type: "button", class: "secondary" }, "Cancel");
    const dialog = el("dialog", { "aria-labelledby": "confirm-text" }, el("p", { id: "confirm-text" }, question), el("div", { class: "row" }, yes, no));
    const close = (answer) => {
      dialog.close();
      dialog.remove();
      resolve(answer);
    };
    yes.addEventListener("click", () => close(true));
    no.addEventListener("click", () => close(false));
    dialog.addEventListener("cancel", () => close(false));
    document.body.append(dialog);
    dialog.showModal();
    no.focus();
  });
}

/** A resource's properties as a two-column list: rows of [term, value (text or node)]. */
export function facts(rows, attrs = {}) {
  return el("dl", { class: "facts", ...attrs }, rows.flatMap(([term, value]) => [el("dt", {}, term), el("dd", {}, value)]));
}
