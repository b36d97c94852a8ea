// Building blocks every page uses: elements, the API, formatting, live refresh with a pause,
// service colours. No dependencies; everything the UI loads comes from the viewer itself.

export const main = document.getElementById("main");

export function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "class") node.className = value;
    else if (key === "style") node.style.cssText = value;
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

const SVG_NS = "http://www.w3.org/2000/svg";
export function svg(tag, attrs, ...children) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    // Through the CSSOM: the Content-Security-Policy refuses style attributes.
    else if (key === "style") node.style.cssText = value;
    else node.setAttribute(key, value);
  }
  for (const child of children.flat(Infinity)) {
    if (child !== null && child !== undefined && child !== false) node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

export async function api(path, init) {
  const response = await fetch(path, { headers: { Accept: "application/json" }, ...init });
  const body = await response.json().catch(() => null);
  if (!response.ok) {
    throw new Error((body && body.errors && body.errors[0] && body.errors[0].msg) || response.statusText);
  }
  return body;
}

export function errorBox(error) {
  return el("div", { class: "error-box" }, String(error.message || error));
}

/** Microseconds as the shortest readable duration: 850µs, 12.3ms, 1.25s, 2m 05s. */
export function formatDuration(micros) {
  if (micros < 1000) return `${Math.round(micros)}µs`;
  if (micros < 1e6) return `${(micros / 1000).toFixed(micros < 1e4 ? 2 : 1)}ms`;
  if (micros < 60e6) return `${(micros / 1e6).toFixed(micros < 1e7 ? 2 : 1)}s`;
  const seconds = Math.round(micros / 1e6);
  return `${Math.floor(seconds / 60)}m ${String(seconds % 60).padStart(2, "0")}s`;
}

export function formatTime(micros) {
  const date = new Date(micros / 1000);
  const pad = (n, w = 2) => String(n).padStart(w, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} ` +
    `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}.${pad(date.getMilliseconds(), 3)}`;
}

export function nanosToMicros(nanos) {
  return Number(BigInt(nanos || 0) / 1000n);
}

/** A number rounded for people: 3 significant digits, thousands separated. */
export function roundNumber(value) {
  if (value === null || value === undefined || Number.isNaN(value)) return "—";
  if (!Number.isFinite(value)) return value > 0 ? "∞" : "-∞";
  const magnitude = Math.abs(value);
  if (magnitude >= 1000) return Math.round(value).toLocaleString("en");
  if (magnitude === 0) return "0";
  return String(Number(value.toPrecision(3)));
}

// OTLP/JSON attribute values → display text.
export function anyValue(value) {
  if (!value) return "";
  if ("stringValue" in value) return value.stringValue;
  if ("intValue" in value) return String(value.intValue);
  if ("doubleValue" in value) return String(value.doubleValue);
  if ("boolValue" in value) return String(value.boolValue);
  if ("bytesValue" in value) return String(value.bytesValue);
  if ("arrayValue" in value) return `[${(value.arrayValue.values || []).map(anyValue).join(", ")}]`;
  if ("kvlistValue" in value) {
    return `{${(value.kvlistValue.values || []).map((kv) => `${kv.key}: ${anyValue(kv.value)}`).join(", ")}}`;
  }
  return "";
}

export function plainValue(value) {
  if (value === null || value === undefined) return "";
  return typeof value === "string" ? value : JSON.stringify(value);
}

/** Text that spans lines (stack traces, multi-line messages) keeps its lines. */
export function textBlock(text, className) {
  return text.includes("\n") ? el("pre", { class: `multiline ${className || ""}` }, text) : text;
}

export function attributeTable(attributes, className) {
  if (!attributes || attributes.length === 0) return el("p", { class: "muted" }, "none");
  return el("table", { class: `kv ${className || ""}` },
    attributes.map((kv) => el("tr", { "data-key": kv.key },
      el("th", {}, kv.key),
      el("td", {}, kv.key.endsWith("stacktrace")
        ? el("pre", { class: "stack" }, anyValue(kv.value)) : textBlock(anyValue(kv.value))))));
}

// The generated OTLP JSON writes enums as numbers; the spec's JSON allows their names too.
const SPAN_KINDS = ["unspecified", "internal", "server", "client", "producer", "consumer"];
export function spanKind(kind) {
  if (typeof kind === "number") return SPAN_KINDS[kind] || String(kind);
  return String(kind || "unspecified").replace("SPAN_KIND_", "").toLowerCase();
}
export function statusCode(status) {
  const code = status && status.code;
  if (code === 2 || code === "STATUS_CODE_ERROR") return "error";
  if (code === 1 || code === "STATUS_CODE_OK") return "ok";
  return "unset";
}

/** `key=value key2=some value` → {"key": "value", "key2": "some value"}; a value may hold spaces. */
export function parseTagFilter(text) {
  const tags = {};
  for (const pair of text.trim().split(/\s+(?=[^\s=]+=)/)) {
    if (!pair) continue;
    const at = pair.indexOf("=");
    if (at <= 0) throw new Error(`attribute filter wants key=value, got "${pair}"`);
    tags[pair.slice(0, at)] = pair.slice(at + 1);
  }
  return tags;
}

/** A stable colour per service: the same service has the same hue on every page. */
export function serviceColor(service) {
  let hash = 2166136261;
  for (const char of service || "") hash = Math.imul(hash ^ char.charCodeAt(0), 16777619);
  return `hsl(${(hash >>> 0) % 360} 62% 46%)`;
}

// ---- live refresh -------------------------------------------------------------------------

const LIVE_REFRESH_MS = 3000;
let refreshTimer = null;

/** Refreshes a page every few seconds unless paused; the pause control shows where it runs. */
export function liveControl(refresh, startLive) {
  let live = startLive;
  const button = el("button", { type: "button", class: "live-toggle", id: "live-toggle" });
  const render = () => {
    button.textContent = live ? "❚❚ Pause live" : "▶ Resume live";
    button.setAttribute("aria-pressed", String(!live));
    button.classList.toggle("paused", !live);
  };
  const schedule = () => {
    clearInterval(refreshTimer);
    refreshTimer = live ? setInterval(refresh, LIVE_REFRESH_MS) : null;
  };
  button.addEventListener("click", () => {
    live = !live;
    render();
    schedule();
    if (live) refresh();
  });
  render();
  schedule();
  return button;
}

export function stopLive() {
  clearInterval(refreshTimer);
  refreshTimer = null;
}

/** Goes to a page of the UI with the given parameters (empty ones left out). */
export function navigate(page, params) {
  const query = new URLSearchParams([...params].filter(([, v]) => v !== "")).toString();
  location.hash = `#/${page}${query ? `?${query}` : ""}`;
}
