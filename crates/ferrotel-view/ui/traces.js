// The trace list: a search (service, span name, status, duration, attributes, a time range
// relative or absolute), how many traces matched in all with more to load, a box for a trace
// id, picking two traces to compare, and uploading an OTLP/JSON file.

import {
  api, el, errorBox, formatDuration, formatTime, liveControl, main, navigate, parseTagFilter, serviceColor,
} from "./dom.js";
import { keys } from "./keys.js";

const LOOKBACKS = [["", "all stored"], ["5m", "last 5 min"], ["15m", "last 15 min"], ["1h", "last hour"],
  ["6h", "last 6 hours"], ["24h", "last 24 hours"], ["custom", "from … to …"]];
const TRACE_COLUMNS = [
  ["name", "Trace"], ["startTime", "Start"], ["duration", "Duration"], ["spanCount", "Spans"], ["errorCount", "Errors"],
];
const PAGE = 100;

export async function tracesPage(params) {
  const services = (await api("/api/services")).data;
  const service = params.get("service") || "";
  const operations = service ? (await api(`/api/services/${encodeURIComponent(service)}/operations`)).data : [];

  const select = (name, options, current) => el("select", { name, id: `filter-${name}` },
    options.map(([value, label]) => el("option", { value, selected: value === current }, label)));
  const input = (name, placeholder, size, type) => el("input", {
    name, id: `filter-${name}`, placeholder, value: params.get(name) || "", size: size || 10, type: type || "text",
  });
  const lookback = params.get("lookback") || "";
  const range = el("span", { class: "range", hidden: lookback !== "custom" },
    el("label", {}, "From", input("from", "", 16, "datetime-local")),
    el("label", {}, "To", input("to", "", 16, "datetime-local")));
  const form = el("form", { class: "filters", id: "trace-filters" },
    el("label", {}, "Service", select("service", [["", "all"], ...services.map((s) => [s, s])], service)),
    el("label", {}, "Span name", select("operation", [["", "all"], ...operations.map((o) => [o, o])],
      params.get("operation") || "")),
    el("label", {}, "Status", select("status", [["", "any"], ["error", "error"], ["ok", "ok"], ["unset", "unset"]],
      params.get("status") || "")),
    el("label", {}, "Min duration", input("minDuration", "e.g. 10ms", 8)),
    el("label", {}, "Max duration", input("maxDuration", "e.g. 2s", 8)),
    el("label", {}, "Time", select("lookback", LOOKBACKS, lookback)), range,
    el("label", { class: "wide" }, "Attributes (all must hold on one span)",
      input("tags", "error=true http.response.status_code=500 exception.type=KeyError", 36)),
    el("label", {}, "Limit", input("limit", String(PAGE), 4)),
    el("button", { type: "submit", id: "search" }, "Search"));
  form.querySelector("#filter-service").addEventListener("change", () => {
    form.querySelector("#filter-operation").value = "";
    form.requestSubmit();
  });
  form.querySelector("#filter-lookback").addEventListener("change", (event) => {
    range.hidden = event.target.value !== "custom";
  });
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const next = new URLSearchParams();
    for (const [key, value] of new FormData(form)) next.set(key, value.trim());
    if (next.get("lookback") !== "custom") {
      next.delete("from");
      next.delete("to");
    }
    for (const key of ["sort", "live", "match"]) if (params.get(key)) next.set(key, params.get(key));
    navigate("traces", next);
  });

  const idBox = el("form", { class: "id-box", id: "trace-id-form", onsubmit: (event) => {
    event.preventDefault();
    const ids = event.target.elements.id.value.trim().split(/[\s,]+/).filter(Boolean);
    if (ids.length === 2) location.hash = `#/compare/${ids[0]}/${ids[1]}`;
    else if (ids.length) location.hash = `#/trace/${ids[0]}`;
  } }, el("input", { name: "id", id: "trace-id", placeholder: "trace id (two to compare)", size: 34 }),
  el("button", { type: "submit" }, "Open"));
  const upload = el("input", { type: "file", id: "upload-file", accept: ".json,application/json", hidden: true,
    onchange: (event) => uploadFile(event.target.files[0], uploadStatus) });
  const uploadStatus = el("span", { class: "upload-status", id: "upload-status" });
  const uploadButton = el("button", { type: "button", id: "upload", title: "load an OTLP/JSON file (as downloaded here)",
    onclick: () => upload.click() }, "Upload OTLP JSON");

  const results = el("div", { id: "trace-results" });
  main.append(el("div", { class: "page-head" }, el("h1", {}, "Traces"), idBox, uploadButton, upload, uploadStatus),
    form, results);

  const query = new URLSearchParams();
  for (const key of ["service", "operation", "status", "minDuration", "maxDuration", "match"]) {
    if (params.get(key)) query.set(key, params.get(key));
  }
  try {
    if (params.get("tags")) query.set("tags", JSON.stringify(parseTagFilter(params.get("tags"))));
  } catch (error) {
    results.replaceChildren(errorBox(error));
    return;
  }
  let limit = Number(params.get("limit")) || PAGE;
  const [sortKey, sortDirection] = (params.get("sort") || "startTime:desc").split(":");
  const searchParams = new URLSearchParams([...params].filter(([k]) => !["sort", "live", "limit"].includes(k)));
  const chosen = new Set();
  let lastAnswer = null;

  const load = async () => {
    const range = timeRange(params);
    if (range.start) query.set("start", String(range.start));
    if (range.end) query.set("end", String(range.end));
    query.set("limit", String(limit));
    let body;
    try {
      body = await api(`/api/trace-summaries?${query}`);
    } catch (error) {
      results.replaceChildren(errorBox(error));
      return;
    }
    // An unchanged answer leaves the table alone: what the user selected or focused stays.
    const answer = JSON.stringify(body);
    if (answer === lastAnswer) return;
    lastAnswer = answer;
    const rows = body.data;
    const value = (row) => (sortKey === "name" ? `${row.rootService}: ${row.rootName}` : row[sortKey]);
    rows.sort((a, b) => {
      const order = value(a) < value(b) ? -1 : value(a) > value(b) ? 1 : 0;
      return sortDirection === "asc" ? order : -order;
    });
    const more = body.total > rows.length
      ? el("button", { type: "button", id: "load-more", onclick: () => { limit += PAGE; lastAnswer = null; load(); } },
        `Load ${body.totalExact === false ? PAGE : Math.min(PAGE, body.total - rows.length)} more`)
      : null;
    const compare = el("button", { type: "button", id: "compare-selected", disabled: chosen.size !== 2,
      onclick: () => { const [a, b] = chosen; location.hash = `#/compare/${a}/${b}`; } }, "Compare selected");
    const summary = el("p", { class: "result-count", id: "result-count" },
      rows.length ? `${rows.length} of ${body.totalExact === false ? "at least " : ""}${body.total.toLocaleString("en")} ` +
        "traces shown, newest received first" : "", more, " ",
      rows.length ? compare : null);
    results.replaceChildren(summary, rows.length ? traceTable(rows, { sortKey, sortDirection, params, searchParams,
      chosen, onChoose: () => { compare.disabled = chosen.size !== 2; } }) : noMatch(body, params));
  };
  await load();
  form.append(liveControl(load, params.get("live") !== "0"));

  keys.page = {
    "/": () => form.querySelector("#filter-tags").focus(),
    j: () => moveRow(1),
    k: () => moveRow(-1),
    Enter: () => {
      const link = document.querySelector("#trace-table tr.keyboard-focus a.trace-link");
      if (link) link.click();
    },
  };
}

let focusedTrace = null;

function moveRow(delta) {
  const rows = [...document.querySelectorAll("#trace-table tbody tr")];
  if (!rows.length) return;
  const current = rows.findIndex((r) => r.classList.contains("keyboard-focus"));
  const next = rows[Math.max(0, Math.min(rows.length - 1, current + delta))];
  rows.forEach((r) => r.classList.remove("keyboard-focus"));
  next.classList.add("keyboard-focus");
  focusedTrace = next.dataset.traceId;
  next.scrollIntoView({ block: "nearest" });
}

/** Microsecond bounds from the form: a look-back before now, or an absolute from/to. */
function timeRange(params) {
  const lookback = params.get("lookback") || "";
  if (lookback === "custom") {
    const micros = (text) => (text ? new Date(text).getTime() * 1000 : null);
    return { start: micros(params.get("from")), end: micros(params.get("to")) };
  }
  const match = /^(\d+)([mh])$/.exec(lookback);
  if (!match) return {};
  return { start: (Date.now() - Number(match[1]) * (match[2] === "m" ? 60e3 : 3600e3)) * 1000 };
}

function noMatch(body, params) {
  const across = body.hint && body.hint.acrossSpans;
  if (across) {
    const next = new URLSearchParams(params);
    next.set("match", "trace");
    return el("div", { class: "empty", id: "no-match" },
      el("p", {}, "No trace has one span that meets all the conditions."),
      el("p", { class: "hint", id: "search-hint" },
        `${body.hint.acrossSpansExact === false ? "at least " : ""}${across} trace${across > 1 ? "s meet" : " meets"} them across `,
        "several spans: ", el("a", { href: `#/traces?${next}`, id: "match-across" }, "show those")));
  }
  return el("div", { class: "empty", id: "no-match" },
    el("p", {}, "No traces match. A trace matches when one of its spans meets every condition; ",
      "attributes are looked up on the span, its resource and its events, and ",
      el("code", {}, "error=true"), ", ", el("code", {}, "span.kind=server"), ", ",
      el("code", {}, "otel.status_code=ERROR"), " work too."),
    el("p", {}, "Point an app at this viewer with ", el("code", {}, "ferrotel instrument --view -- python app.py"), "."));
}

function traceTable(rows, { sortKey, sortDirection, params, searchParams, chosen, onChoose }) {
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
    el("thead", {}, el("tr", {}, el("th", { class: "pick" }, ""), header, el("th", {}, "Services"))),
    el("tbody", {}, rows.map((row) => el("tr", {
      class: [row.errorCount && "has-error", row.traceID === focusedTrace && "keyboard-focus"].filter(Boolean).join(" "),
      "data-trace-id": row.traceID,
    },
      el("td", { class: "pick" }, el("input", { type: "checkbox", class: "choose", title: "pick to compare",
        checked: chosen.has(row.traceID), onchange: (event) => {
          if (event.target.checked) chosen.add(row.traceID); else chosen.delete(row.traceID);
          onChoose();
        } })),
      el("td", {}, el("a", { href: link(row), class: "trace-link" },
        el("span", { class: "service" }, row.rootService || "?"), " ", row.rootName || "(root span missing)"),
      row.rootMissing ? el("span", { class: "badge" }, "root missing") : null),
      el("td", {}, formatTime(row.startTime)),
      el("td", { class: "num" }, formatDuration(row.duration)),
      el("td", { class: "num" }, row.spanCount),
      el("td", { class: "num errors" }, row.errorCount || ""),
      el("td", {}, row.services.map((s, i) => [i ? ", " : "",
        el("span", { class: "service-chip", style: `--service:${serviceColor(s)}` }, s)]))))));
}

async function uploadFile(file, status) {
  if (!file) return;
  status.textContent = `uploading ${file.name}…`;
  try {
    const result = await api("/api/upload", { method: "POST", body: await file.text(),
      headers: { "Content-Type": "application/json", Accept: "application/json" } });
    if (result.traceIDs && result.traceIDs.length) {
      status.textContent = `${result.spans} spans in ${result.traceIDs.length} traces loaded`;
      location.hash = `#/trace/${result.traceIDs[0]}`;
    } else {
      status.textContent = result.logRecords !== undefined ? `${result.logRecords} log records loaded`
        : `${result.metricPoints} metric points loaded`;
    }
  } catch (error) {
    status.textContent = `not loaded: ${error.message || error}`;
  }
}
