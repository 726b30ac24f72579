// API keys (admin): create (the key is shown once), list, revoke.
import { api } from "../api.js";
import { alertBox, clearProblem, confirmDialog, el, field, fmtTime, setContent, showProblem, table } from "../ui.js";

const ROLES = [
  ["auditor", "auditor: upload, train, audit, read, predict"],
  ["predictor", "predictor: predictions and outcomes only"],
  ["admin", "admin: everything, and keys"],
];

export async function render(main, _params, caller) {
  const listArea = el("section", { "aria-labelledby": "keys-h" }, el("h2", { id: "keys-h" }, "Keys of your organisation"));
  const created = el("div", { "aria-live": "polite" });
  setContent(main, createForm(created, () => refresh(listArea, caller)), created, listArea);
  await refresh(listArea, caller);
}

function createForm(created, onCreated) {
  const name = field("Name", el("input", { name: "name", maxlength: 200 }), "Who or what will use it, e.g. \"PACS bridge\".");
  const role = field("Role", el("select", { name: "role" }, ROLES.map(([value, label]) => el("option", { value }, label))));
  const form = el("form", { class: "card narrow", "aria-labelledby": "create-h" }, el("h2", { id: "create-h" }, "Create a key"), name.node, role.node,
    el("button", { type: "submit" }, "Create key"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearProblem(form);
    try {
      const key = await api("/v1/keys", { method: "POST", json: { name: name.input.value, role: role.input.value } });
      const shown = el("input", { id: "new-key", readonly: true, value: key.key, class: "secret" });
      created.replaceChildren(el("div", { class: "card", role: "status" },
        el("p", {}, el("strong", {}, `Key "${key.name || key.prefix}" (${key.role}) created. `), "Copy it now: it is shown once and only its hash is stored."),
        el("label", { for: "new-key" }, "The new key"), shown,
        el("button", { type: "button", class: "secondary", onclick: () => navigator.clipboard?.writeText(key.key) }, "Copy")));
      form.reset();
      await onCreated();
    } catch (error) {
      showProblem(form, error);
    }
  });
  return form;
}

async function refresh(area, caller) {
  const heading = area.querySelector("h2");
  try {
    const { items } = await api("/v1/keys");
    area.replaceChildren(heading, table("API keys", [
      ["Name", (k) => k.name || "—"],
      ["Role", (k) => k.role],
      ["Prefix", (k) => el("code", {}, k.prefix)],
      ["Created", (k) => fmtTime(k.created_at)],
      ["Last used", (k) => fmtTime(k.last_used_at)],
      ["State", (k) => (k.revoked_at ? `revoked ${fmtTime(k.revoked_at)}` : "active")],
      ["", (k) => (k.revoked_at ? "" : el("button", { type: "button", class: "danger", "aria-label": `Revoke ${k.name || k.prefix}`,
        onclick: () => revoke(k, area, caller) }, k.id === caller.key_id ? "Revoke (this key)" : "Revoke"))],
    ], items));
  } catch (error) {
    area.replaceChildren(heading, alertBox(error.message));
  }
}

async function revoke(key, area, caller) {
  const own = key.id === caller.key_id ? " This is the key you are signed in with: you will be signed out." : "";
  if (!(await confirmDialog(`Revoke the key "${key.name || key.prefix}"? Anything using it stops working.${own}`, "Revoke"))) return;
  try {
    await api(`/v1/keys/${encodeURIComponent(key.id)}`, { method: "DELETE" });
  } catch (error) {
    area.append(alertBox(error.message));
    return;
  }
  await refresh(area, caller); // revoking one's own key: this call answers 401 and signs out
}
