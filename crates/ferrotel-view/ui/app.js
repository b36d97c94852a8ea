"use strict";
// ferrotel view's web UI: a hash-routed page over the viewer's own JSON API, no dependencies.

const main = document.getElementById("main");
const LIVE_REFRESH_MS = 3000;
const SEVERITIES = [
  ["", "any"], ["1", "TRACE"], ["5", "DEBUG"], ["9", "INFO"], ["13", "WARN"], ["17", "ERROR"], ["21", "FATAL"],
];
const LOOKBACKS = [["", "all stored"], ["5m", "last 5 min"], ["15m", "last 15 min"], ["1h", "last hour"],
  ["6h", "last 6 hours"], ["24h", "last 24 hours"]];
let refreshTimer = null;

// ---- small helpers ------------------------------------------------------------------------

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "class") node.className = value;
    else if (key === "style") node.style.cssText = value;
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

const SVG_NS = "http://www.w3.org/2000/svg";
function svg(tag, attrs, ...children) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, value);
  for (const child of children.flat()) {
    if (child !== null && child !== undefined) node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

async function api(path) {
  const response = await fetch(path, { headers: { Accept: "application/json" } });
  const body = await response.json().catch(() => null);
  if (!response.ok) {
    throw new Error((body && body.errors && body.errors[0] && body.errors[0].msg) || response.statusText);
  }
  return body;
}

function formatDuration(micros) {
  if (micros < 1000) return `${Math.round(micros)}µs`;
  if (micros < 1e6) return `${(micros / 1000).toFixed(micros < 1e4 ? 2 : 1)}ms`;
  return `${(micros / 1e6).toFixed(micros < 1e7 ? 2 : 1)}s`;
}

function formatTime(micros) {
  const date = new Date(micros / 1000);
  const pad = (n, w = 2) => String(n).padStart(w, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} ` +
    `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}.${pad(date.getMilliseconds(), 3)}`;
}

function nanosToMicros(nanos) {
  return Number(BigInt(nanos || 0) / 1000n);
}

function parseLookback(text) {
  const match = /^(\d+)([mh])$/.exec(text || "");
  if (!match) return null;
  return Number(match[1]) * (match[2] === "m" ? 60e3 : 3600e3);
}

function errorBox(error) {
  return el("div", { class: "error-box" }, String(error.message || error));
}

function setLive(enabled, refresh) {
  clearInterval(refreshTimer);
  refreshTimer = enabled ? setInterval(refresh, LIVE_REFRESH_MS) : null;
}

/** `key=value key2=some value` → {"key": "value", "key2": "some value"}; a value may hold spaces. */
function parseTagFilter(text) {
  const tags = {};
  for (const pair of text.trim().split(/\s+(?=[^\s=]+=)/)) {
    if (!pair) continue;
    const at = pair.indexOf("=");
    if (at <= 0) throw new Error(`attribute filter wants key=value, got "${pair}"`);
    tags[pair.slice(0, at)] = pair.slice(at + 1);
  }
  return tags;
}

// OTLP/JSON attribute values → display text.
function anyValue(value) {
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
  return JSON.stringify(value);
}

function plainValue(value) {
  return typeof value === "string" ? value : JSON.stringify(value);
}

function attributeTable(attributes, className) {
  if (!attributes || attributes.length === 0) return el("p", { class: "muted" }, "none");
  return el("table", { class: `kv ${className || ""}` },
    attributes.map((kv) => el("tr", { "data-key": kv.key },
      el("th", {}, kv.key),
      el("td", {}, kv.key.endsWith("stacktrace") ? el("pre", { class: "stack" }, anyValue(kv.value)) : anyValue(kv.value)))));
}

// The generated OTLP JSON writes enums as numbers; the spec's JSON allows their names too.
const SPAN_KINDS = ["unspecified", "internal", "server", "client", "producer", "consumer"];
function spanKind(kind) {
  if (typeof kind === "number") return SPAN_KINDS[kind] || String(kind);
  return String(kind || "unspecified").replace("SPAN_KIND_", "").toLowerCase();
}
function statusCode(status) {
  const code = status && status.code;
  if (code === 2 || code === "STATUS_CODE_ERROR") return "error";
  if (code === 1 || code === "STATUS_CODE_OK") return "ok";
  return "unset";
}

// ---- router -------------------------------------------------------------------------------

function currentRoute() {
  const hash = location.hash.replace(/^#\/?/, "") || "traces";
  const [path, query] = hash.split("?");
  const parts = path.split("/");
  return { page: parts[0], id: parts[1] ? decodeURIComponent(parts[1]) : null, params: new URLSearchParams(query || "") };
}

function navigate(page, params) {
  const query = new URLSearchParams([...params].filter(([, v]) => v !== "")).toString();
  location.hash = `#/${page}${query ? `?${query}` : ""}`;
}

async function route() {
  setLive(false);
  const { page, id, params } = currentRoute();
  for (const link of document.querySelectorAll("nav a")) {
    link.classList.toggle("active", link.dataset.page === (page === "trace" ? "traces" : page));
  }
  const pages = { traces: tracesPage, trace: tracePage, logs: logsPage, metrics: metricsPage, map: mapPage };
  main.replaceChildren();
  try {
    await (pages[page] || tracesPage)(params, id);
  } catch (error) {
    main.append(errorBox(error));
  }
  refreshStatus();
}

async function refreshStatus() {
  try {
    const status = await api("/api/status");
    const evicted = status.evictedSpans ? `, ${status.evictedSpans} evicted` : "";
    document.getElementById("store-status").textContent =
      `${status.spans} spans${evicted} · ${status.logRecords} logs · ${status.metricSeries} metric series`;
  } catch (error) {
    document.getElementById("store-status").textContent = "viewer unreachable";
  }
}

// ---- trace list ---------------------------------------------------------------------------

const TRACE_COLUMNS = [
  ["name", "Trace"], ["startTime", "Start"], ["duration", "Duration"], ["spanCount", "Spans"], ["errorCount", "Errors"],
];

async function tracesPage(params) {
  const services = (await api("/api/services")).data;
  const service = params.get("service") || "";
  const operations = service ? (await api(`/api/services/${encodeURIComponent(service)}/operations`)).data : [];

  const select = (name, options, current) => el("select", { name, id: `filter-${name}` },
    options.map(([value, label]) => el("option", { value, selected: value === current }, label)));
  const input = (name, placeholder, size) => el("input", {
    name, id: `filter-${name}`, placeholder, value: params.get(name) || "", size: size || 10,
  });
  const form = el("form", { class: "filters", id: "trace-filters" },
    el("label", {}, "Service", select("service", [["", "all"], ...services.map((s) => [s, s])], service)),
    el("label", {}, "Span name", select("operation", [["", "all"], ...operations.map((o) => [o, o])],
      params.get("operation") || "")),
    el("label", {}, "Status", select("status", [["", "any"], ["error", "error"], ["ok", "ok"], ["unset", "unset"]],
      params.get("status") || "")),
    el("label", {}, "Min duration", input("minDuration", "e.g. 10ms", 8)),
    el("label", {}, "Max duration", input("maxDuration", "e.g. 2s", 8)),
    el("label", {}, "Time", select("lookback", LOOKBACKS, params.get("lookback") || "")),
    el("label", { class: "wide" }, "Attributes", input("tags", "http.response.status_code=500 user.id=7", 30)),
    el("label", {}, "Limit", input("limit", "100", 4)),
    el("button", { type: "submit", id: "search" }, "Search"),
    el("label", { class: "live" }, el("input", { type: "checkbox", id: "live", checked: params.get("live") !== "0" }),
      "Live"));
  form.querySelector("#filter-service").addEventListener("change", () => {
    form.querySelector("#filter-operation").value = "";
    form.requestSubmit();
  });
  const results = el("div", { id: "trace-results" });
  main.append(el("h1", {}, "Traces"), form, results);

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const data = new FormData(form);
    const next = new URLSearchParams();
    for (const [key, value] of data) next.set(key, value.trim());
    if (!form.querySelector("#live").checked) next.set("live", "0");
    next.set("sort", params.get("sort") || "");
    navigate("traces", next);
  });

  const query = new URLSearchParams();
  for (const key of ["service", "operation", "status", "minDuration", "maxDuration"]) {
    if (params.get(key)) query.set(key, params.get(key));
  }
  if (params.get("tags")) query.set("tags", JSON.stringify(parseTagFilter(params.get("tags"))));
  query.set("limit", params.get("limit") || "100");
  const [sortKey, sortDirection] = (params.get("sort") || "startTime:desc").split(":");
  const searchParams = new URLSearchParams([...params].filter(([k]) => k !== "sort" && k !== "live"));

  const load = async () => {
    const lookback = parseLookback(params.get("lookback"));
    if (lookback) query.set("start", String((Date.now() - lookback) * 1000));
    let rows;
    try {
      rows = (await api(`/api/trace-summaries?${query}`)).data;
    } catch (error) {
      results.replaceChildren(errorBox(error));
      return;
    }
    const value = (row) => (sortKey === "name" ? `${row.rootService}: ${row.rootName}` : row[sortKey]);
    rows.sort((a, b) => {
      const order = value(a) < value(b) ? -1 : value(a) > value(b) ? 1 : 0;
      return sortDirection === "asc" ? order : -order;
    });
    results.replaceChildren(traceTable(rows, sortKey, sortDirection, params, searchParams));
    refreshStatus();
  };
  await load();
  setLive(params.get("live") !== "0", load);
}

function traceTable(rows, sortKey, sortDirection, params, searchParams) {
  if (rows.length === 0) {
    return el("p", { class: "empty" }, "No traces match. Point an app at this viewer with ",
      el("code", {}, "ferrotel instrument --view -- python app.py"), " or change the filters.");
  }
  const header = TRACE_COLUMNS.map(([key, label]) => {
    const active = key === sortKey;
    const nextDirection = active && sortDirection === "desc" ? "asc" : "desc";
    return el("th", {
      class: `sortable ${active ? `sorted-${sortDirection}` : ""}`, "data-sort": key,
      onclick: () => {
        const next = new URLSearchParams(params);
        next.set("sort", `${key}:${nextDirection}`);
        navigate("traces", next);
      },
    }, label);
  });
  const link = (row) => `#/trace/${row.traceID}${searchParams.toString() ? `?${searchParams}` : ""}`;
  return el("table", { class: "traces", id: "trace-table" },
    el("thead", {}, el("tr", {}, header, el("th", {}, "Services"))),
    el("tbody", {}, rows.map((row) => el("tr", { class: row.errorCount ? "has-error" : "", "data-trace-id": row.traceID },
      el("td", {}, el("a", { href: link(row), class: "trace-link" },
        el("span", { class: "service" }, row.rootService || "?"), " ", row.rootName || "(root span missing)"),
        row.rootMissing ? el("span", { class: "badge" }, "root missing") : null),
      el("td", {}, formatTime(row.startTime)),
      el("td", { class: "num" }, formatDuration(row.duration)),
      el("td", { class: "num" }, row.spanCount),
      el("td", { class: "num errors" }, row.errorCount || ""),
      el("td", {}, row.services.join(", "))))));
}

// ---- one trace ----------------------------------------------------------------------------

async function tracePage(params, traceId) {
  const otlp = await api(`/api/traces/${encodeURIComponent(traceId)}/otlp`);
  const spans = [];
  for (const resourceSpans of otlp.resourceSpans || []) {
    const resource = (resourceSpans.resource && resourceSpans.resource.attributes) || [];
    const serviceAttribute = resource.find((kv) => kv.key === "service.name");
    const service = serviceAttribute ? anyValue(serviceAttribute.value) : "unknown_service";
    for (const scopeSpans of resourceSpans.scopeSpans || []) {
      for (const span of scopeSpans.spans || []) {
        const start = nanosToMicros(span.startTimeUnixNano);
        const end = nanosToMicros(span.endTimeUnixNano);
        spans.push({ span, service, resource, scope: scopeSpans.scope || {}, start, duration: Math.max(0, end - start),
          id: span.spanId, parent: span.parentSpanId || "", children: [], error: statusCode(span.status) === "error" });
      }
    }
  }
  const { byId, roots } = spanTree(spans);
  let traceStart = Infinity;
  let traceEnd = -Infinity;
  for (const s of spans) {
    traceStart = Math.min(traceStart, s.start);
    traceEnd = Math.max(traceEnd, s.start + s.duration);
  }
  const total = Math.max(1, traceEnd - traceStart);

  const filter = new URLSearchParams();
  for (const key of ["service", "operation", "status", "minDuration", "maxDuration"]) {
    if (params.get(key)) filter.set(key, params.get(key));
  }
  if (params.get("tags")) filter.set("tags", JSON.stringify(parseTagFilter(params.get("tags"))));
  const matched = new Set(filter.toString()
    ? (await api(`/api/traces/${traceId}/matches?${filter}`)).data : []);

  const collapsed = new Set();
  let selected = params.get("span") && byId.has(params.get("span")) ? params.get("span") : null;
  // Opened from a search, the first matching span's details are what the user came for.
  if (!selected && matched.size) selected = [...matched][0];

  const root = roots[0];
  const errors = spans.filter((s) => s.error).length;
  const back = new URLSearchParams([...params].filter(([k]) => k !== "span"));
  main.append(
    el("p", {}, el("a", { href: `#/traces${back.toString() ? `?${back}` : ""}` }, "← traces")),
    el("h1", {}, el("span", { class: "service" }, root.service), " ", root.span.name),
    el("p", { class: "trace-meta" },
      `Trace ${traceId} · started ${formatTime(traceStart)} · ${formatDuration(total)} · ${spans.length} spans`,
      errors ? el("span", { class: "errors" }, ` · ${errors} with errors`) : null,
      matched.size ? el("span", { class: "matched-note" }, ` · ${matched.size} matching the search`) : null,
      " · ", el("a", { href: `#/logs?traceID=${traceId}`, id: "trace-logs" }, "logs of this trace"),
      " · ", el("a", { href: `/api/traces/${traceId}/otlp`, download: `trace-${traceId}.json` }, "OTLP JSON")));

  const ruler = el("div", { class: "ruler" },
    [0, 0.25, 0.5, 0.75, 1].map((f) => el("span", { style: `left:${f * 100}%` }, formatDuration(total * f))));
  const waterfall = el("div", { class: "waterfall", id: "waterfall" });
  const details = el("div", { class: "details", id: "span-details" });
  main.append(el("div", { class: "waterfall-head" }, el("div", { class: "name-col" }, "Service · span"),
    el("div", { class: "bar-col" }, ruler)), waterfall, details);

  const renderRows = () => {
    const rows = [];
    for (const { node, depth } of visibleRows(roots, collapsed)) {
      const hasChildren = node.children.length > 0;
      const isCollapsed = collapsed.has(node.id);
      const left = ((node.start - traceStart) / total) * 100;
      const width = Math.max(0.2, (node.duration / total) * 100);
      const classes = ["span-row", node.error && "error", matched.has(node.id) && "matched",
        selected === node.id && "selected", node.cycle && "cycle", node.orphan && "orphan"].filter(Boolean).join(" ");
      rows.push(el("div", { class: classes, "data-span-id": node.id, "data-name": node.span.name,
        "data-depth": depth, onclick: () => { selected = node.id; renderRows(); renderDetails(); } },
      el("div", { class: "name-col", style: `padding-left:${indent(depth)}px` },
        hasChildren
          ? el("button", { class: "toggle", title: isCollapsed ? "expand" : "collapse",
            "aria-expanded": String(!isCollapsed),
            onclick: (event) => {
              event.stopPropagation();
              if (isCollapsed) collapsed.delete(node.id); else collapsed.add(node.id);
              renderRows();
            } }, isCollapsed ? "▸" : "▾")
          : el("span", { class: "toggle-space" }),
        el("span", { class: "service" }, node.service), " ", el("span", { class: "span-name" }, node.span.name),
        node.orphan ? el("span", { class: "badge orphan-badge", title: `parent ${node.parent} was not received` },
          "parent missing") : null,
        node.cycle ? el("span", { class: "badge cycle-badge", title: `parent ${node.parent} is its own descendant` },
          "parent link loops") : null,
        node.duplicate ? el("span", { class: "badge cycle-badge", title: "another span has the same id" },
          "duplicate id") : null,
        isCollapsed ? el("span", { class: "badge" }, `+${node.descendants}`) : null),
      el("div", { class: "bar-col" },
        el("div", { class: "bar", style: `left:${left}%;width:${width}%` }),
        // Near the right edge the label goes inside the bar's end instead of off the page.
        el("span", { class: `bar-label ${left + width > 85 ? "inside" : ""}`, style: `left:${left + width}%` },
          formatDuration(node.duration)))));
    }
    waterfall.replaceChildren(...rows);
  };

  const renderDetails = async () => {
    const node = selected && byId.get(selected);
    if (!node) {
      details.replaceChildren(el("p", { class: "muted" }, "Select a span to see its details."));
      return;
    }
    details.replaceChildren(spanDetails(node, traceId, byId));
    const logs = details.querySelector(".span-logs");
    try {
      const records = (await api(`/api/logs?traceID=${traceId}&spanID=${node.id}&limit=50`)).data;
      logs.replaceChildren(records.length ? logTable(records, false) : el("p", { class: "muted" }, "none"));
    } catch (error) {
      logs.replaceChildren(errorBox(error));
    }
  };

  renderRows();
  await renderDetails();
  const selectedRow = selected && waterfall.querySelector(`[data-span-id="${selected}"]`);
  if (selectedRow) selectedRow.scrollIntoView({ block: "nearest" });
}

/** Parent links → a forest, without recursion (traces can be tens of thousands deep) and
 * whatever the links say: a span whose parent was not received is a root marked `orphan`; a
 * group whose links loop back never reaches a root, so its earliest span becomes one, marked
 * `cycle`. Every span appears exactly once. Children are in start order, and each node knows
 * how many descendants it has. */
function spanTree(spans) {
  const byId = new Map();
  const roots = [];
  for (const node of spans) {
    // A second span with the same id cannot be anyone's parent; it is shown on its own.
    if (byId.has(node.id)) {
      node.duplicate = true;
      roots.push(node);
    } else byId.set(node.id, node);
  }
  const byStart = (a, b) => a.start - b.start;
  for (const node of byId.values()) {
    const parent = node.parent && node.parent !== node.id ? byId.get(node.parent) : null;
    if (parent) parent.children.push(node);
    else if (node.parent !== node.id) {
      node.orphan = Boolean(node.parent);
      roots.push(node);
    }
  }
  for (const node of byId.values()) node.children.sort(byStart);
  roots.sort(byStart);
  const visited = new Set();
  const order = [];
  const visit = (root) => {
    const stack = [root];
    while (stack.length) {
      const node = stack.pop();
      if (visited.has(node)) continue;
      visited.add(node);
      order.push(node);
      for (let i = node.children.length - 1; i >= 0; i--) stack.push(node.children[i]);
    }
  };
  roots.forEach(visit);
  if (visited.size < spans.length) {
    const stranded = [...byId.values()].filter((n) => !visited.has(n)).sort(byStart);
    for (const node of stranded) {
      if (visited.has(node)) continue;
      node.cycle = true;
      roots.push(node);
      visit(node);
    }
    // A loop's way back to its new root is not a child edge any more.
    for (const node of byId.values()) node.children = node.children.filter((c) => !c.cycle);
  }
  for (let i = order.length - 1; i >= 0; i--) {
    const node = order[i];
    node.descendants = node.children.reduce((sum, child) => sum + 1 + child.descendants, 0);
  }
  return { byId, roots };
}

/** The rows shown, in tree order with their depth, skipping what collapsed spans hide. */
function visibleRows(roots, collapsed) {
  const rows = [];
  const stack = roots.map((node) => ({ node, depth: 0 })).reverse();
  while (stack.length) {
    const row = stack.pop();
    rows.push(row);
    if (collapsed.has(row.node.id)) continue;
    const children = row.node.children;
    for (let i = children.length - 1; i >= 0; i--) stack.push({ node: children[i], depth: row.depth + 1 });
  }
  return rows;
}

/** Deep traces keep their names on screen: indentation grows 16 px a level up to 30 levels,
 * then 1 px a level. */
function indent(depth) {
  return 4 + Math.min(depth, 30) * 16 + Math.max(0, depth - 30);
}

function spanDetails(node, traceId, byId) {
  const span = node.span;
  const status = statusCode(span.status);
  const parent = byId.get(node.parent);
  const events = (span.events || []).map((event) => el("div", { class: "event" },
    el("div", { class: "event-head" }, el("strong", {}, event.name), " ",
      el("span", { class: "muted" }, `+${formatDuration(nanosToMicros(event.timeUnixNano) - node.start)}`)),
    attributeTable(event.attributes, "event-attributes")));
  const links = (span.links || []).map((link) => el("div", { class: "link" },
    el("a", { href: `#/trace/${link.traceId}?span=${link.spanId}` }, `${link.traceId} / ${link.spanId}`),
    attributeTable(link.attributes)));
  const scope = node.scope.name ? `${node.scope.name}${node.scope.version ? ` ${node.scope.version}` : ""}` : "(none)";
  return el("div", {},
    el("h2", {}, span.name),
    el("table", { class: "kv summary" },
      el("tr", {}, el("th", {}, "Service"), el("td", {}, node.service)),
      el("tr", {}, el("th", {}, "Span ID"), el("td", {}, node.id)),
      el("tr", {}, el("th", {}, "Parent"), el("td", {}, parent ? `${parent.span.name} (${node.parent})`
        : node.parent ? `${node.parent} (not received)` : "none, root span")),
      el("tr", {}, el("th", {}, "Kind"), el("td", {}, spanKind(span.kind))),
      el("tr", {}, el("th", {}, "Start"), el("td", {}, formatTime(node.start))),
      el("tr", {}, el("th", {}, "Duration"), el("td", {}, formatDuration(node.duration))),
      el("tr", {}, el("th", {}, "Status"), el("td", { class: `status-${status}` },
        status, span.status && span.status.message ? `: ${span.status.message}` : "")),
      el("tr", {}, el("th", {}, "Scope"), el("td", {}, scope))),
    el("h3", {}, "Attributes"), attributeTable(span.attributes, "span-attributes"),
    el("h3", {}, `Events (${events.length})`), events.length ? events : el("p", { class: "muted" }, "none"),
    el("h3", {}, `Links (${links.length})`), links.length ? links : el("p", { class: "muted" }, "none"),
    el("h3", {}, "Logs ", el("a", { href: `#/logs?traceID=${traceId}&spanID=${node.id}`, class: "span-logs-link" },
      "open in Logs")),
    el("div", { class: "span-logs" }, el("p", { class: "muted" }, "loading…")),
    el("h3", {}, "Resource"), attributeTable(node.resource, "resource-attributes"));
}

// ---- logs ---------------------------------------------------------------------------------

async function logsPage(params) {
  const services = (await api("/api/services")).data;
  const form = el("form", { class: "filters", id: "log-filters" },
    el("label", {}, "Service", el("select", { name: "service" },
      [["", "all"], ...services.map((s) => [s, s])].map(([value, label]) =>
        el("option", { value, selected: value === (params.get("service") || "") }, label)))),
    el("label", {}, "Min severity", el("select", { name: "minSeverity", id: "filter-severity" },
      SEVERITIES.map(([value, label]) => el("option", { value, selected: value === (params.get("minSeverity") || "") },
        label)))),
    el("label", { class: "wide" }, "Text", el("input", { name: "q", id: "filter-text", value: params.get("q") || "",
      placeholder: "words in the message", size: 30 })),
    el("button", { type: "submit" }, "Search"),
    el("label", { class: "live" }, el("input", { type: "checkbox", id: "live", checked: params.get("live") !== "0" }),
      "Live"));
  const scopeNote = params.get("traceID")
    ? el("p", { class: "filter-note" }, `Only trace ${params.get("traceID")}`,
      params.get("spanID") ? `, span ${params.get("spanID")}` : "", " · ",
      el("a", { href: "#/logs" }, "show all"))
    : null;
  const results = el("div", { id: "log-results" });
  main.append(el("h1", {}, "Logs"), form, scopeNote, results);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const next = new URLSearchParams();
    for (const [key, value] of new FormData(form)) next.set(key, value.trim());
    for (const key of ["traceID", "spanID"]) if (params.get(key)) next.set(key, params.get(key));
    if (!form.querySelector("#live").checked) next.set("live", "0");
    navigate("logs", next);
  });
  const query = new URLSearchParams([...params].filter(([k, v]) => k !== "live" && v));
  query.set("limit", "500");
  const load = async () => {
    try {
      const records = (await api(`/api/logs?${query}`)).data;
      results.replaceChildren(records.length ? logTable(records, true)
        : el("p", { class: "empty" }, "No log records match."));
    } catch (error) {
      results.replaceChildren(errorBox(error));
    }
  };
  await load();
  setLive(params.get("live") !== "0", load);
}

function severityClass(number) {
  if (number >= 17) return "sev-error";
  if (number >= 13) return "sev-warn";
  if (number >= 9) return "sev-info";
  return "sev-debug";
}

function logTable(records, withService) {
  return el("table", { class: "logs", id: withService ? "log-table" : null },
    el("thead", {}, el("tr", {}, el("th", {}, "Time"), el("th", {}, "Severity"), withService ? el("th", {}, "Service") : null,
      el("th", {}, "Message"), el("th", {}, "Span"))),
    el("tbody", {}, records.map((record) => {
      const attributes = Object.entries(record.attributes || {});
      const time = nanosToMicros(record.timeUnixNano !== "0" ? record.timeUnixNano : record.observedTimeUnixNano);
      return el("tr", { class: `log-row ${severityClass(record.severityNumber)}` },
        el("td", { class: "nowrap" }, formatTime(time)),
        el("td", {}, record.severityText || String(record.severityNumber)),
        withService ? el("td", {}, record.service) : null,
        el("td", {}, el("span", { class: "log-body" }, plainValue(record.body)),
          attributes.length ? el("details", {}, el("summary", {}, `${attributes.length} attributes`),
            el("table", { class: "kv" }, attributes.map(([k, v]) => el("tr", {}, el("th", {}, k),
              el("td", {}, plainValue(v)))))) : null),
        el("td", {}, record.traceID
          ? el("a", { class: "log-span-link", href: `#/trace/${record.traceID}${record.spanID ? `?span=${record.spanID}` : ""}` },
            record.spanID || record.traceID)
          : el("span", { class: "muted" }, "—")));
    })));
}

// ---- metrics ------------------------------------------------------------------------------

async function metricsPage() {
  const metrics = (await api("/api/metrics")).data;
  main.append(el("h1", {}, "Metrics"));
  if (metrics.length === 0) {
    main.append(el("p", { class: "empty" }, "No metrics received yet."));
    return;
  }
  const grid = el("div", { class: "metric-grid" });
  main.append(grid);
  await Promise.all(metrics.map(async (metric) => {
    const card = el("section", { class: "metric", "data-metric": metric.name },
      el("h2", {}, metric.name, " ", el("span", { class: "badge" }, metric.type)),
      el("p", { class: "muted" }, `${metric.service}${metric.unit ? ` · ${metric.unit}` : ""}` +
        `${metric.description ? ` · ${metric.description}` : ""}`));
    grid.append(card);
    try {
      const [series] = (await api(`/api/metrics/${encodeURIComponent(metric.name)}?service=${encodeURIComponent(metric.service)}`)).data;
      card.append(metricChart(series));
    } catch (error) {
      card.append(errorBox(error));
    }
  }));
}

const CHART = { width: 420, height: 180, left: 56, right: 10, top: 10, bottom: 28 };
const PALETTE = ["#2f6fdf", "#d9480f", "#2b8a3e", "#9c36b5", "#e67700", "#0b7285", "#c2255c"];

function metricChart(series) {
  if (series.type === "histogram") return histogramChart(series);
  const valueOf = series.type === "sum" || series.type === "gauge" ? (p) => Number(p.value) : (p) => Number(p.count);
  const lines = new Map();
  for (const point of series.points) {
    const key = attributeKey(point);
    if (!lines.has(key)) lines.set(key, []);
    lines.get(key).push([nanosToMicros(point.timeUnixNano), valueOf(point)]);
  }
  const all = [...lines.values()].flat();
  const [x0, x1] = extent(all.map((p) => p[0]));
  const [y0, y1] = extent([0, ...all.map((p) => p[1])]);
  const x = (v) => CHART.left + ((v - x0) / (x1 - x0 || 1)) * (CHART.width - CHART.left - CHART.right);
  const y = (v) => CHART.height - CHART.bottom - ((v - y0) / (y1 - y0 || 1)) * (CHART.height - CHART.top - CHART.bottom);
  const chart = svg("svg", { class: "chart", viewBox: `0 0 ${CHART.width} ${CHART.height}`, "data-type": series.type },
    axes(y0, y1, x0, x1),
    [...lines.values()].map((points, i) => svg("g", {},
      svg("polyline", { points: points.map(([a, b]) => `${x(a)},${y(b)}`).join(" "), fill: "none",
        stroke: PALETTE[i % PALETTE.length], "stroke-width": 2 }),
      points.map(([a, b]) => svg("circle", { cx: x(a), cy: y(b), r: 2.5, fill: PALETTE[i % PALETTE.length] },
        svg("title", {}, `${formatTime(a)}: ${b}`))))));
  const latest = series.points[series.points.length - 1];
  return el("div", {}, chart, legend([...lines.keys()]),
    el("p", { class: "latest" }, `latest: ${latest ? valueOf(latest) : "—"} (${series.points.length} points)`));
}

function attributeKey(point) {
  return Object.entries(point.attributes || {}).map(([k, v]) => `${k}=${plainValue(v)}`).join(" ") || "(no attributes)";
}

/** Each attribute set's latest point, folded into one: bucket counts added where the sets
 * share their bounds, count and sum added, min and max of all. */
function latestHistogram(points) {
  const latest = new Map();
  for (const point of points) latest.set(attributeKey(point), point);
  const sets = [...latest.values()];
  const bounds = sets[sets.length - 1].explicitBounds || [];
  const sameBounds = sets.every((p) => JSON.stringify(p.explicitBounds || []) === JSON.stringify(bounds));
  const pool = sameBounds ? sets : [sets[sets.length - 1]];
  const counts = bounds.map(() => 0).concat([0]);
  for (const p of pool) (p.bucketCounts || []).forEach((c, i) => { counts[i] = (counts[i] || 0) + Number(c); });
  const defined = (values) => values.filter((v) => v !== null && v !== undefined).map(Number);
  const mins = defined(pool.map((p) => p.min));
  const maxes = defined(pool.map((p) => p.max));
  return {
    counts, bounds, latest,
    count: pool.reduce((n, p) => n + Number(p.count), 0),
    sum: pool.reduce((n, p) => n + Number(p.sum || 0), 0),
    min: mins.length ? Math.min(...mins) : null,
    max: maxes.length ? Math.max(...maxes) : null,
  };
}

function histogramChart(series) {
  const folded = latestHistogram(series.points);
  const { counts, bounds } = folded;
  const labels = counts.map((_, i) => (i < bounds.length ? `≤${bounds[i]}` : `>${bounds[bounds.length - 1] ?? ""}`));
  const max = Math.max(1, ...counts);
  const plotWidth = CHART.width - CHART.left - CHART.right;
  const barWidth = plotWidth / Math.max(1, counts.length);
  const labelEvery = Math.ceil(counts.length / 8);
  const y = (v) => CHART.height - CHART.bottom - (v / max) * (CHART.height - CHART.top - CHART.bottom);
  const chart = svg("svg", { class: "chart", viewBox: `0 0 ${CHART.width} ${CHART.height}`, "data-type": "histogram" },
    axes(0, max, null, null),
    counts.map((count, i) => svg("g", {},
      svg("rect", { x: CHART.left + i * barWidth + 1, y: y(count), width: Math.max(1, barWidth - 2),
        height: CHART.height - CHART.bottom - y(count), fill: PALETTE[0] }, svg("title", {}, `${labels[i]}: ${count}`)),
      i % labelEvery === 0 ? svg("text", { x: CHART.left + (i + 0.5) * barWidth, y: CHART.height - 14,
        "text-anchor": "middle", class: "tick" }, labels[i]) : null)));
  const mean = folded.count ? folded.sum / folded.count : 0;
  const perSet = folded.latest.size > 1
    ? el("table", { class: "kv per-set" }, [...folded.latest].map(([key, p]) => el("tr", {},
      el("th", {}, key), el("td", {}, `count ${p.count}, mean ${(Number(p.count) ? Number(p.sum) / Number(p.count) : 0).toFixed(3)}`))))
    : null;
  return el("div", {}, chart, el("p", { class: "latest" },
    `latest: count ${folded.count}, sum ${Math.round(folded.sum * 1e6) / 1e6}, mean ${mean.toFixed(3)}` +
    `${folded.min !== null ? `, min ${folded.min}, max ${folded.max}` : ""}` +
    `${folded.latest.size > 1 ? ` over ${folded.latest.size} attribute sets` : ""}`), perSet,
  exemplarLinks([...folded.latest.values()].flatMap((p) => p.exemplars || [])));
}

/** Links from measurements to the spans they were made in (the points' exemplars). */
function exemplarLinks(exemplars) {
  const linked = exemplars.filter((e) => e.traceID).slice(-6);
  if (linked.length === 0) return null;
  return el("p", { class: "exemplars" }, "exemplars: ", linked.map((e, i) => [i ? " · " : "",
    el("a", { href: `#/trace/${e.traceID}?span=${e.spanID}`, class: "exemplar-link" }, Number(e.value).toPrecision(3))]));
}

function extent(values) {
  if (values.length === 0) return [0, 1];
  return [Math.min(...values), Math.max(...values)];
}

function axes(y0, y1, x0, x1) {
  const bottom = CHART.height - CHART.bottom;
  return svg("g", { class: "axes" },
    svg("line", { x1: CHART.left, y1: CHART.top, x2: CHART.left, y2: bottom }),
    svg("line", { x1: CHART.left, y1: bottom, x2: CHART.width - CHART.right, y2: bottom }),
    svg("text", { x: CHART.left - 4, y: CHART.top + 8, "text-anchor": "end", class: "tick" }, compact(y1)),
    svg("text", { x: CHART.left - 4, y: bottom, "text-anchor": "end", class: "tick" }, compact(y0)),
    x0 !== null ? svg("text", { x: CHART.left, y: CHART.height - 4, class: "tick" }, formatTime(x0).slice(11, 19)) : null,
    x1 !== null ? svg("text", { x: CHART.width - CHART.right, y: CHART.height - 4, "text-anchor": "end", class: "tick" },
      formatTime(x1).slice(11, 19)) : null);
}

function compact(value) {
  return Math.abs(value) >= 1e4 ? value.toExponential(1) : String(Math.round(value * 100) / 100);
}

function legend(keys) {
  return el("ul", { class: "legend" }, keys.map((key, i) =>
    el("li", {}, el("span", { class: "swatch", style: `background:${PALETTE[i % PALETTE.length]}` }), key)));
}

// ---- service map --------------------------------------------------------------------------

async function mapPage() {
  const [services, edges] = await Promise.all([api("/api/services"), api("/api/dependencies")]);
  main.append(el("h1", {}, "Service map"));
  const names = [...new Set([...services.data, ...edges.data.flatMap((e) => [e.parent, e.child])])].sort();
  if (names.length === 0) {
    main.append(el("p", { class: "empty" }, "No services yet."));
    return;
  }
  const size = 520;
  const center = size / 2;
  const radius = names.length === 1 ? 0 : size / 2 - 90;
  const position = new Map(names.map((name, i) => {
    const angle = (2 * Math.PI * i) / names.length - Math.PI / 2;
    return [name, [center + radius * Math.cos(angle), center + radius * Math.sin(angle)]];
  }));
  const edgeShapes = edges.data.map((edge) => {
    const [x1, y1] = position.get(edge.parent);
    const [x2, y2] = position.get(edge.child);
    const length = Math.hypot(x2 - x1, y2 - y1) || 1;
    // Stop the arrow at the child's circle so its head stays visible.
    const [ex, ey] = [x2 - ((x2 - x1) / length) * 34, y2 - ((y2 - y1) / length) * 34];
    const failing = edge.errorCount > 0;
    return svg("g", { class: `edge ${failing ? "failing" : ""}` },
      svg("line", { x1, y1, x2: ex, y2: ey, "marker-end": `url(#${failing ? "arrow-red" : "arrow"})` }),
      svg("text", { x: (x1 + x2) / 2, y: (y1 + y2) / 2 - 6, "text-anchor": "middle" },
        `${edge.callCount} calls${failing ? `, ${edge.errorCount} errors` : ""}`));
  });
  const marker = (id, color) => svg("marker", { id, viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 8,
    markerHeight: 8, orient: "auto-start-reverse" }, svg("path", { d: "M 0 0 L 10 5 L 0 10 z", fill: color }));
  const nodes = names.map((name) => {
    const [cx, cy] = position.get(name);
    return svg("g", { class: "node", "data-service": name },
      svg("circle", { cx, cy, r: 30 }),
      svg("text", { x: cx, y: cy + 48, "text-anchor": "middle" }, name));
  });
  main.append(svg("svg", { class: "service-map", viewBox: `0 0 ${size} ${size}`, width: size, height: size },
    svg("defs", {}, marker("arrow", "#667"), marker("arrow-red", "#d6336c")), edgeShapes, nodes));
  main.append(el("table", { class: "edges", id: "edge-table" },
    el("thead", {}, el("tr", {}, el("th", {}, "Caller"), el("th", {}, "Callee"), el("th", {}, "Calls"),
      el("th", {}, "Errors"))),
    el("tbody", {}, edges.data.map((edge) => el("tr", {},
      el("td", {}, edge.parent), el("td", {}, edge.child), el("td", { class: "num" }, edge.callCount),
      el("td", { class: `num ${edge.errorCount ? "errors" : ""}` }, edge.errorCount))))));
}

window.addEventListener("hashchange", route);
route();
