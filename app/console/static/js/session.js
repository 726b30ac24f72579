// The signed-in key lives in sessionStorage only: gone when the tab closes, never in a cookie (so
// no other origin's request carries it) and never in a URL (so no log or referrer holds it).
const KEY = "fairaudit.key";
const CALLER = "fairaudit.caller";
const NOTICE = "fairaudit.notice";

export function currentKey() {
  return sessionStorage.getItem(KEY);
}

/** The signed-in key's {key_id, name, role, permissions} (from GET /v1/keys/me at sign-in). */
export function currentCaller() {
  const raw = sessionStorage.getItem(CALLER);
  return raw ? JSON.parse(raw) : null;
}

export function can(permission) {
  const caller = currentCaller();
  return Boolean(caller && caller.permissions.includes(permission));
}

/** Check the key with the API and keep it; throws the API's refusal if the key is not accepted. */
export async function signIn(key) {
  const response = await fetch("/v1/keys/me", { headers: { Authorization: `Bearer ${key}` } });
  if (!response.ok) {
    let detail = "the key was not accepted";
    try {
      detail = (await response.json()).detail || detail;
    } catch {
      /* keep the default */
    }
    throw new Error(detail);
  }
  sessionStorage.setItem(KEY, key);
  sessionStorage.setItem(CALLER, JSON.stringify(await response.json()));
}

/** Forget the key and go to the sign-in page, with ``reason`` shown there. */
export function signOut(reason = "") {
  sessionStorage.removeItem(KEY);
  sessionStorage.removeItem(CALLER);
  if (reason) sessionStorage.setItem(NOTICE, reason);
  const next = location.pathname.startsWith("/console/signin") ? "" : `?next=${encodeURIComponent(location.pathname + location.search)}`;
  location.assign(`/console/signin${next}`);
}

/** The message signOut left for the sign-in page, once. */
export function takeNotice() {
  const notice = sessionStorage.getItem(NOTICE);
  sessionStorage.removeItem(NOTICE);
  return notice;
}
