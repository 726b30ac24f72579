// Every console page: check the session, show what the role may open, then run the page's script
// (static/js/pages/<page>.js exports render(main, params, caller)).
import { currentCaller, signOut } from "./session.js";
import { alertBox, el, setContent } from "./ui.js";

const main = document.getElementById("content");
const page = main.dataset.page;
const params = JSON.parse(main.dataset.params || "{}");

async function boot() {
  const caller = currentCaller();
  if (page !== "signin") {
    if (!caller) {
      signOut();
      return;
    }
    for (const item of document.querySelectorAll("nav [data-permission]")) {
      item.hidden = !caller.permissions.includes(item.dataset.permission);
    }
    document.getElementById("caller-name").textContent = `${caller.name || "key"} (${caller.role})`;
    document.getElementById("sign-out").addEventListener("click", () => signOut("Signed out."));
    const needed = main.dataset.permission;
    if (needed && !caller.permissions.includes(needed)) {
      setContent(main, el("p", { class: "refused", role: "alert" }, `A ${caller.role} key cannot open this page.`));
      return;
    }
  }
  const module = await import(`./pages/${page}.js`);
  try {
    await module.render(main, params, caller);
  } catch (error) {
    setContent(main, alertBox(error.message || String(error)));
    throw error;
  }
}

boot();
