// Sign in with an API key: checked by GET /v1/keys/me, then kept in sessionStorage only.
import { signIn, takeNotice } from "../session.js";
import { alertBox, clearProblem, el, field, setContent } from "../ui.js";

export function render(main) {
  const key = field("API key", el("input", { name: "key", type: "password", autocomplete: "off", required: true, spellcheck: "false" }),
    "An API key of your organisation (fa_…). It stays in this tab only and is forgotten when the tab closes.");
  const form = el("form", { class: "card narrow", novalidate: true }, key.node, el("button", { type: "submit" }, "Sign in"));
  const notice = takeNotice();
  setContent(main, notice ? el("p", { role: "status", class: "notice" }, notice) : null, form);
  key.input.focus();
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearProblem(form);
    try {
      await signIn(key.input.value.trim());
    } catch (error) {
      key.input.setAttribute("aria-invalid", "true");
      form.prepend(alertBox(error.message));
      form.querySelector(".alert").classList.add("form-alert");
      return;
    }
    const next = new URLSearchParams(location.search).get("next") || "";
    // only a console path: the sign-in page must not become an open redirect
    location.assign(next.startsWith("/console/") && !next.startsWith("/console/signin") ? next : "/console/");
  });
}
