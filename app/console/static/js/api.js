// The API client: every call carries the signed-in key as a bearer header (never in a URL or a
// cookie). A problem+json answer becomes an ApiError with the API's own words and field errors, so
// pages show exactly what the API said. A 401 means the key was revoked or is wrong: sign out.
import { currentKey, signOut } from "./session.js";

export class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
    // [{field: "body.config.method", message: "..."}] for schema errors; InputError fields likewise
    this.errors = Array.isArray(problem.errors) ? problem.errors : [];
  }
}

function headers(extra = {}) {
  const key = currentKey();
  return key ? { Authorization: `Bearer ${key}`, ...extra } : { ...extra };
}

async function problemOf(response) {
  const text = await response.text();
  try {
    return JSON.parse(text);
  } catch {
    return { title: response.statusText, detail: text.slice(0, 500) };
  }
}

async function checked(response) {
  if (response.status === 401) {
    signOut("Your key is no longer accepted (revoked or unknown). Sign in again.");
  }
  if (!response.ok) throw new ApiError(response.status, await problemOf(response));
  return response;
}

/** Call the API; ``json`` is sent as the JSON body. Answers the parsed JSON (or null for 204). */
export async function api(path, { method = "GET", json, body, signal } = {}) {
  const init = { method, signal, headers: headers(json === undefined ? {} : { "Content-Type": "application/json" }) };
  if (json !== undefined) init.body = JSON.stringify(json);
  else if (body !== undefined) init.body = body;
  const response = await checked(await fetch(path, init));
  return response.status === 204 ? null : response.json();
}

/** The raw response (text, HTML, CSV, files): for downloads and the embedded HTML report. */
export async function apiRaw(path, { method = "GET", body, signal } = {}) {
  return checked(await fetch(path, { method, body, signal, headers: headers() }));
}

/** Save an API resource as a file: fetched with the key, handed to the browser as a blob URL. */
export async function download(path, filename) {
  const blob = await (await apiRaw(path)).blob();
  const url = URL.createObjectURL(blob);
  const a = document.createElement("a");
  a.href = url;
  a.download = filename;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

/** POST a multipart form with upload progress (fetch cannot report it): onProgress(sent, total). */
export function upload(path, formData, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", path);
    const key = currentKey();
    if (key) xhr.setRequestHeader("Authorization", `Bearer ${key}`);
    xhr.upload.onprogress = (e) => onProgress && e.lengthComputable && onProgress(e.loaded, e.total);
    xhr.onerror = () => reject(new ApiError(0, { detail: "the upload failed: the connection was lost" }));
    xhr.onload = () => {
      let parsed;
      try {
        parsed = JSON.parse(xhr.responseText);
      } catch {
        parsed = { detail: xhr.responseText.slice(0, 500) };
      }
      if (xhr.status === 401) signOut("Your key is no longer accepted (revoked or unknown). Sign in again.");
      if (xhr.status >= 200 && xhr.status < 300) resolve(parsed);
      else reject(new ApiError(xhr.status, parsed));
    };
    xhr.send(formData);
  });
}

/**
 * Follow a server-sent event stream with the key in the header (EventSource cannot send headers).
 * onEvent({event, data}) gets each event with ``data`` parsed as JSON when it is JSON. Answers an
 * AbortController: abort() closes the stream. Resolves ``done`` when the server ends the stream.
 */
export function follow(path, onEvent) {
  const controller = new AbortController();
  const done = (async () => {
    const response = await checked(await fetch(path, { headers: headers({ Accept: "text/event-stream" }), signal: controller.signal }));
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done: finished } = await reader.read();
      if (finished) return;
      buffer += value.replace(/\r\n?/g, "\n");
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        let event = "message";
        const data = [];
        for (const line of block.split("\n")) {
          if (line.startsWith("event:")) event = line.slice(6).trim();
          else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
        }
        if (!data.length) continue; // comments and keep-alives
        const text = data.join("\n");
        let parsed = text;
        try {
          parsed = JSON.parse(text);
        } catch {
          /* not JSON: hand on the text */
        }
        onEvent({ event, data: parsed });
      }
    }
  })().catch((error) => {
    if (error.name !== "AbortError") throw error;
  });
  return { controller, done };
}
