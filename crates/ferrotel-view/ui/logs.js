// Log records, newest first by time. Live updates add the new rows at the top and leave the
// rows already shown as they are, so what the user opened or selected stays.

import {
  api, el, errorBox, formatTime, liveControl, main, nanosToMicros, navigate, plainValue, textBlock,
} from "./dom.js";
import { keys } from "./keys.js";

const SEVERITIES = [
  ["", "any"], ["1", "TRACE"], ["5", "DEBUG"], ["9", "INFO"], ["13", "WARN"], ["17", "ERROR"], ["21", "FATAL"],
];

export async function logsPage(params) {
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
    el("button", { type: "submit" }, "Search"));
  const scopeNote = params.get("traceID")
    ? el("p", { class: "filter-note" }, `Only trace ${params.get("traceID")}`,
      params.get("spanID") ? `, span ${params.get("spanID")}` : "", " · ",
      el("a", { href: "#/logs" }, "show all"))
    : null;
  const results = el("div", { id: "log-results" });
  main.append(el("h1", {}, "Logs"), form);
  if (scopeNote) main.append(scopeNote);
  main.append(results);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const next = new URLSearchParams();
    for (const [key, value] of new FormData(form)) next.set(key, value.trim());
    for (const key of ["traceID", "spanID", "live"]) if (params.get(key)) next.set(key, params.get(key));
    navigate("logs", next);
  });
  const query = new URLSearchParams([...params].filter(([k, v]) => k !== "live" && v));
  query.set("limit", "500");
  query.set("order", "time");
  let table = null;
  const load = async () => {
    try {
      const records = (await api(`/api/logs?${query}`)).data;
      if (!records.length && !table) {
        results.replaceChildren(el("p", { class: "empty" }, "No log records match."));
        return;
      }
      if (!table) {
        table = logTable([], true);
        results.replaceChildren(table);
      }
      addNewRecords(table, records);
    } catch (error) {
      results.replaceChildren(errorBox(error));
      table = null;
    }
  };
  await load();
  form.append(liveControl(load, params.get("live") !== "0"));
  keys.page = { "/": () => form.querySelector("#filter-text").focus() };
}

/** A record's identity across refreshes. */
function recordKey(record) {
  return [record.timeUnixNano, record.observedTimeUnixNano, record.service, record.spanID,
    record.severityNumber, plainValue(record.body)].join("|");
}

/** Puts records not shown yet into the table in time order (newest first), leaving the rows
 * already there untouched. */
function addNewRecords(table, records) {
  const body = table.querySelector("tbody");
  const shown = new Set([...body.children].map((row) => row.dataset.key));
  const fresh = records.filter((record) => !shown.has(recordKey(record)));
  const time = (record) => BigInt(record.timeUnixNano !== "0" ? record.timeUnixNano : record.observedTimeUnixNano);
  for (const record of fresh.reverse()) {
    const row = logRow(record, true);
    const later = [...body.children].find((existing) => BigInt(existing.dataset.time) < time(record));
    body.insertBefore(row, later || null);
  }
}

function severityClass(number) {
  if (number >= 17) return "sev-error";
  if (number >= 13) return "sev-warn";
  if (number >= 9) return "sev-info";
  return "sev-debug";
}

function logRow(record, withService) {
  const attributes = Object.entries(record.attributes || {});
  const timeNanos = record.timeUnixNano !== "0" ? record.timeUnixNano : record.observedTimeUnixNano;
  const stack = attributes.find(([key]) => key.endsWith("stacktrace"));
  const body = plainValue(record.body);
  return el("tr", { class: `log-row ${severityClass(record.severityNumber)}`, "data-key": recordKey(record),
    "data-time": String(timeNanos) },
  el("td", { class: "nowrap" }, formatTime(nanosToMicros(timeNanos))),
  el("td", { class: "severity" }, record.severityText || String(record.severityNumber)),
  withService ? el("td", {}, record.service) : null,
  el("td", { class: "message" }, body ? el("span", { class: "log-body" }, textBlock(body)) :
    el("span", { class: "muted" }, "(no message)"),
  stack ? el("pre", { class: "stack" }, plainValue(stack[1])) : null,
  attributes.length ? el("details", {}, el("summary", {}, `${attributes.length} attributes`),
    el("table", { class: "kv" }, attributes.map(([k, v]) => el("tr", {}, el("th", {}, k),
      el("td", {}, k.endsWith("stacktrace") ? el("pre", { class: "stack" }, plainValue(v)) : textBlock(plainValue(v))))))) : null),
  el("td", {}, record.traceID
    ? el("a", { class: "log-span-link", href: `#/trace/${record.traceID}${record.spanID ? `?span=${record.spanID}` : ""}` },
      record.spanID || record.traceID)
    : el("span", { class: "muted" }, "—")));
}

export function logTable(records, withService) {
  return el("table", { class: "logs", id: withService ? "log-table" : null },
    el("thead", {}, el("tr", {}, el("th", {}, "Time"), el("th", {}, "Severity"), withService ? el("th", {}, "Service") : null,
      el("th", {}, "Message"), el("th", {}, "Span"))),
    el("tbody", {}, records.map((record) => logRow(record, withService))));
}
