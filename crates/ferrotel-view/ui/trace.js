// One trace: a timeline (waterfall) that stays fluid with thousands of spans (only the rows in
// view are in the page), its statistics per operation, a flame graph, and the selected span's
// details in a panel beside them.

import {
  api, attributeTable, el, formatDuration, formatTime, main, nanosToMicros, parseTagFilter, serviceColor, spanKind,
  statusCode,
} from "./dom.js";
import { logTable } from "./logs.js";
import {
  computeCriticalPath, computeSelfTimes, operationStatistics, spanTree, traceNodes, visibleRows,
} from "./analysis.js";
import { keys, onLeave } from "./keys.js";

const ROW_HEIGHT = 24;
const OVERSCAN = 12;
const NAME_WIDTH_KEY = "ferrotel.view.nameWidth";

export async function tracePage(params, traceId) {
  const started = performance.now();
  const otlp = await api(`/api/traces/${encodeURIComponent(traceId)}/otlp`);
  const nodes = traceNodes(otlp);
  const tree = spanTree(nodes);
  computeSelfTimes(tree.order);
  computeCriticalPath(tree.roots);
  const total = Math.max(1, tree.end - tree.start);

  const filter = new URLSearchParams();
  for (const key of ["service", "operation", "status", "minDuration", "maxDuration", "match"]) {
    if (params.get(key)) filter.set(key, params.get(key));
  }
  if (params.get("tags")) filter.set("tags", JSON.stringify(parseTagFilter(params.get("tags"))));
  const matched = new Set(filter.toString() ? (await api(`/api/traces/${traceId}/matches?${filter}`)).data : []);

  const state = {
    traceId, tree, total, matched,
    collapsed: new Set(),
    selected: params.get("span") && tree.byId.has(params.get("span")) ? params.get("span") : null,
    showCritical: params.get("critical") === "1",
    found: [],
    foundAt: -1,
    view: params.get("view") || "timeline",
  };
  // Opened from a search, the first matching span's details are what the user came for.
  if (!state.selected && matched.size) state.selected = [...matched][0];

  const root = tree.roots[0];
  const errors = nodes.filter((n) => n.error);
  const services = [...new Set(nodes.map((n) => n.service))].sort();
  const back = new URLSearchParams([...params].filter(([k]) => !["span", "view", "critical"].includes(k)));
  const legend = el("span", { class: "service-legend" }, services.map((s) =>
    el("span", { class: "legend-item" }, el("span", { class: "swatch", style: `background:${serviceColor(s)}` }), s)));
  main.append(
    el("p", { class: "back" }, el("a", { href: `#/traces${back.toString() ? `?${back}` : ""}` }, "← traces")),
    el("h1", { class: "trace-title" }, el("span", { class: "service" }, root.service), " ", root.span.name),
    el("p", { class: "trace-meta" },
      `Trace ${traceId} · started ${formatTime(tree.start)} · ${formatDuration(total)} · ${nodes.length} spans`,
      errors.length ? el("span", { class: "errors" }, ` · ${errors.length} with errors`) : null,
      matched.size ? el("span", { class: "matched-note" }, ` · ${matched.size} matching the search`) : null,
      " · ", el("a", { href: `#/logs?traceID=${traceId}`, id: "trace-logs" }, "logs of this trace"),
      " · ", el("a", { href: `/api/traces/${traceId}/otlp`, download: `trace-${traceId}.json` }, "OTLP JSON"),
      " · ", legend));

  const tabs = el("div", { class: "tabs", role: "tablist" });
  const tools = el("div", { class: "trace-tools" });
  const view = el("div", { class: "trace-view" });
  const details = el("aside", { class: "side-panel", id: "span-details" });
  main.append(el("div", { class: "trace-toolbar" }, tabs, tools), el("div", { class: "trace-body" }, view, details));

  const views = { timeline: "Timeline", statistics: "Statistics", flame: "Flame graph" };
  const showView = (name) => {
    state.view = name;
    tabs.replaceChildren(...Object.entries(views).map(([key, label]) => el("button", {
      type: "button", role: "tab", class: "tab", id: `tab-${key}`, "aria-selected": String(key === name),
      onclick: () => showView(key),
    }, label)));
    view.replaceChildren();
    tools.replaceChildren();
    // Statistics are about the whole trace; the span panel would only narrow the table.
    details.hidden = name === "statistics";
    const switched = performance.now();
    if (name === "statistics") statisticsView(view, state);
    else if (name === "flame") flameView(view, state, selectSpan);
    else timelineView(view, tools, state, selectSpan, errors);
    painted().then(() => { document.body.dataset[`${name}RenderMs`] = String(Math.round(performance.now() - switched)); });
  };

  const selectSpan = async (id) => {
    state.selected = id;
    if (state.onSelect) state.onSelect();
    await renderDetails(details, state);
  };
  state.details = () => renderDetails(details, state);

  showView(state.view);
  await renderDetails(details, state);
  await painted();
  // Read by bench/view.py: from the route's start to the rows on screen.
  document.body.dataset.traceRenderMs = String(Math.round(performance.now() - started));
}

/** Resolves once the browser has painted what was just put in the page. */
function painted() {
  return new Promise((resolve) => requestAnimationFrame(() => requestAnimationFrame(resolve)));
}

// ---- timeline -----------------------------------------------------------------------------

function timelineView(view, tools, state, selectSpan, errors) {
  const { tree, total } = state;
  let rows = [];
  const nameWidth = Number(localStorage.getItem(NAME_WIDTH_KEY)) || Math.round(Math.min(600, window.innerWidth * 0.36));
  // Deep traces keep their names on screen: the indent per level shrinks with the depth, and
  // past what the column can hold levels stop indenting (the depth is in the tooltip).
  const step = Math.max(2, Math.min(14, Math.floor((nameWidth - 280) / Math.max(1, tree.maxDepth))));
  const indentLevels = Math.max(1, Math.floor((nameWidth - 240) / step));
  const wrap = el("div", { class: "waterfall-wrap", style: `--name-width:${nameWidth}px;--indent:${step}px` });
  const resizer = el("span", { class: "resizer", title: "drag to resize", role: "separator" });
  const head = el("div", { class: "waterfall-head" },
    el("div", { class: "name-col" }, "Service · span", resizer),
    el("div", { class: "bar-col ruler" }, rulerTicks(total).map((micros) =>
      el("span", { style: `left:${(micros / total) * 100}%` }, formatDuration(micros)))));
  const spacer = el("div", { class: "waterfall-spacer" });
  const scroller = el("div", { class: "waterfall", id: "waterfall", tabindex: "0" }, spacer);
  const minimap = el("canvas", { class: "minimap", id: "minimap", title: "the whole trace; click to go there" });
  wrap.append(head, el("div", { class: "waterfall-body" }, scroller, minimap));
  view.append(wrap);

  const fitHeight = () => {
    const top = scroller.getBoundingClientRect().top + window.scrollY;
    scroller.style.height = `${Math.max(240, window.innerHeight - top - 48)}px`;
  };

  const ruler = head.querySelector(".ruler");
  const relayout = () => {
    rows = visibleRows(tree.roots, state.collapsed);
    scroller.dataset.rows = String(rows.length);
    spacer.style.height = `${rows.length * ROW_HEIGHT}px`;
    drawMinimap();
    // The ruler ends where the bars end: before the scroll bar and the minimap, if shown.
    const gutter = wrap.getBoundingClientRect().right - scroller.getBoundingClientRect().left - scroller.clientWidth;
    ruler.style.marginRight = `${Math.max(0, gutter) + 8}px`;
    paint();
  };

  let painting = false;
  const paint = () => {
    painting = false;
    const first = Math.max(0, Math.floor(scroller.scrollTop / ROW_HEIGHT) - OVERSCAN);
    const last = Math.min(rows.length, Math.ceil((scroller.scrollTop + scroller.clientHeight) / ROW_HEIGHT) + OVERSCAN);
    const shown = [];
    for (let i = first; i < last; i++) shown.push(spanRow(rows[i], i));
    spacer.replaceChildren(...shown);
    drawViewport();
  };
  const schedulePaint = () => {
    if (!painting) {
      painting = true;
      requestAnimationFrame(paint);
    }
  };

  const spanRow = (node, index) => {
    const hasChildren = node.children.length > 0;
    const isCollapsed = state.collapsed.has(node.id);
    const left = ((node.start - tree.start) / total) * 100;
    const width = Math.max(0.15, (node.duration / total) * 100);
    const color = serviceColor(node.service);
    const classes = ["span-row", node.error && "error", state.matched.has(node.id) && "matched",
      state.selected === node.id && "selected", node.cycle && "cycle", node.orphan && "orphan",
      state.found.includes(node) && "found", state.showCritical && node.critical && "on-critical-path"]
      .filter(Boolean).join(" ");
    const criticalMicros = (node.critical || []).reduce((sum, [a, b]) => sum + b - a, 0);
    return el("div", {
      class: classes, style: `top:${index * ROW_HEIGHT}px`, "data-span-id": node.id, "data-name": node.span.name,
      "data-depth": node.depth, "data-critical-us": node.critical ? criticalMicros : null,
      onclick: () => selectSpan(node.id).then(schedulePaint),
    },
    el("div", { class: "name-col", style: `--depth:${Math.min(node.depth, indentLevels)}`,
      title: `${node.service}: ${node.span.name} (depth ${node.depth})` },
      hasChildren
        ? el("button", {
          class: "toggle", title: isCollapsed ? "expand" : "collapse", "aria-expanded": String(!isCollapsed),
          onclick: (event) => {
            event.stopPropagation();
            toggle(node);
          },
        }, isCollapsed ? "▸" : "▾")
        : el("span", { class: "toggle-space" }),
      el("span", { class: "swatch", style: `background:${color}` }),
      el("span", { class: "service" }, node.service), " ", el("span", { class: "span-name" }, node.span.name),
      node.orphan ? el("span", { class: "badge orphan-badge", title: `parent ${node.parent} was not received` },
        "parent missing") : null,
      node.cycle ? el("span", { class: "badge cycle-badge", title: `parent ${node.parent} is its own descendant` },
        "parent link loops") : null,
      node.duplicate ? el("span", { class: "badge cycle-badge", title: "another span has the same id" },
        "duplicate id") : null,
      isCollapsed ? el("span", { class: "badge" }, `+${node.descendants}`) : null),
    el("div", { class: "bar-col" },
      el("div", { class: "bar", style: `left:${left}%;width:${width}%;background:${color}` }),
      state.showCritical ? (node.critical || []).map(([a, b]) => el("div", {
        class: "critical-segment",
        style: `left:${((a - tree.start) / total) * 100}%;width:${Math.max(0.15, ((b - a) / total) * 100)}%`,
      })) : null,
      (node.span.events || []).map((event) => {
        const at = ((nanosToMicros(event.timeUnixNano) - tree.start) / total) * 100;
        const exception = event.name === "exception";
        return el("span", { class: `event-mark ${exception ? "exception" : ""}`, style: `left:${at}%`,
          title: `${event.name} at +${formatDuration(nanosToMicros(event.timeUnixNano) - node.start)}` });
      }),
      durationLabel(node, left, width)));
  };

  const toggle = (node) => {
    if (state.collapsed.has(node.id)) state.collapsed.delete(node.id);
    else state.collapsed.add(node.id);
    relayout();
  };

  /** Expands every collapsed ancestor of `node` so it shows, then selects and scrolls to it. */
  const reveal = (node) => {
    const seen = new Set();
    let ancestor = node.parent && tree.byId.get(node.parent);
    while (ancestor && !seen.has(ancestor)) {
      seen.add(ancestor);
      state.collapsed.delete(ancestor.id);
      ancestor = ancestor.parent && tree.byId.get(ancestor.parent);
    }
    relayout();
    const index = rows.indexOf(node);
    if (index >= 0) scrollToRow(index);
    selectSpan(node.id).then(schedulePaint);
  };

  const scrollToRow = (index) => {
    const top = index * ROW_HEIGHT;
    if (top < scroller.scrollTop || top + ROW_HEIGHT > scroller.scrollTop + scroller.clientHeight) {
      scroller.scrollTop = Math.max(0, top - scroller.clientHeight / 3);
    }
    schedulePaint();
  };

  // ---- minimap: every row a line at its bar's place, errors red, the view outlined ----
  const drawMinimap = () => {
    const height = scroller.clientHeight;
    minimap.hidden = rows.length * ROW_HEIGHT <= height;
    if (minimap.hidden) return;
    const ratio = window.devicePixelRatio || 1;
    minimap.width = 56 * ratio;
    minimap.height = height * ratio;
    minimap.style.height = `${height}px`;
    minimap.dataset.rows = String(rows.length);
    const context = minimap.getContext("2d");
    context.scale(ratio, ratio);
    context.clearRect(0, 0, 56, height);
    const perRow = height / rows.length;
    rows.forEach((node, i) => {
      const x = ((node.start - tree.start) / total) * 52 + 2;
      const w = Math.max(1, (node.duration / total) * 52);
      context.fillStyle = node.error ? "#e03131" : serviceColor(node.service);
      context.fillRect(x, i * perRow, w, Math.max(1, perRow));
    });
    minimap.dataset.errors = String(rows.filter((n) => n.error).length);
  };
  const viewport = el("div", { class: "minimap-viewport" });
  wrap.querySelector(".waterfall-body").append(viewport);
  const drawViewport = () => {
    if (minimap.hidden) {
      viewport.hidden = true;
      return;
    }
    viewport.hidden = false;
    const height = scroller.clientHeight;
    const fraction = height / (rows.length * ROW_HEIGHT);
    viewport.style.top = `${(scroller.scrollTop / (rows.length * ROW_HEIGHT)) * height}px`;
    viewport.style.height = `${Math.max(4, fraction * height)}px`;
  };
  const jumpFromMinimap = (event) => {
    const box = minimap.getBoundingClientRect();
    const fraction = (event.clientY - box.top) / box.height;
    scroller.scrollTop = fraction * rows.length * ROW_HEIGHT - scroller.clientHeight / 2;
  };
  minimap.addEventListener("mousedown", (event) => {
    jumpFromMinimap(event);
    const move = (e) => jumpFromMinimap(e);
    const up = () => {
      window.removeEventListener("mousemove", move);
      window.removeEventListener("mouseup", up);
    };
    window.addEventListener("mousemove", move);
    window.addEventListener("mouseup", up);
  });

  // ---- name column resizing ----
  resizer.addEventListener("mousedown", (event) => {
    event.preventDefault();
    const startX = event.clientX;
    const startWidth = wrap.querySelector(".name-col").getBoundingClientRect().width;
    const move = (e) => {
      const width = Math.max(160, Math.min(window.innerWidth * 0.7, startWidth + e.clientX - startX));
      wrap.style.setProperty("--name-width", `${Math.round(width)}px`);
    };
    const up = () => {
      const width = parseInt(wrap.style.getPropertyValue("--name-width"), 10);
      localStorage.setItem(NAME_WIDTH_KEY, String(width));
      window.removeEventListener("mousemove", move);
      window.removeEventListener("mouseup", up);
    };
    window.addEventListener("mousemove", move);
    window.addEventListener("mouseup", up);
  });

  // ---- tools: expand/collapse all, errors, find, critical path ----
  const counter = el("span", { class: "find-count", id: "find-count" });
  const find = el("input", { type: "search", id: "find-in-trace", placeholder: "find in trace", size: 18 });
  const runFind = () => {
    const text = find.value.trim().toLowerCase();
    state.found = text ? tree.order.filter((node) => spanText(node).includes(text)) : [];
    state.foundAt = -1;
    counter.textContent = text ? `${state.found.length} found` : "";
    schedulePaint();
  };
  const stepFind = (delta) => {
    if (!state.found.length) return;
    state.foundAt = (state.foundAt + delta + state.found.length) % state.found.length;
    counter.textContent = `${state.foundAt + 1} of ${state.found.length}`;
    reveal(state.found[state.foundAt]);
  };
  find.addEventListener("input", runFind);
  find.addEventListener("keydown", (event) => {
    if (event.key === "Enter") stepFind(event.shiftKey ? -1 : 1);
  });
  let errorAt = -1;
  const errorsInOrder = [...errors].sort((a, b) => a.order - b.order);
  const stepError = (delta) => {
    if (!errorsInOrder.length) return;
    errorAt = (errorAt + delta + errorsInOrder.length) % errorsInOrder.length;
    reveal(errorsInOrder[errorAt]);
  };
  const button = (id, label, onclick, title) => el("button", { type: "button", id, onclick, title }, label);
  tools.append(...[
    button("expand-all", "Expand all", () => { state.collapsed.clear(); relayout(); }),
    button("collapse-all", "Collapse all", () => {
      for (const node of tree.order) if (node.children.length) state.collapsed.add(node.id);
      relayout();
    }),
    errorsInOrder.length ? el("span", { class: "tool-group" },
      button("previous-error", "◀", () => stepError(-1), "previous error"),
      el("span", { class: "errors" }, `${errorsInOrder.length} error${errorsInOrder.length > 1 ? "s" : ""}`),
      button("next-error", "▶", () => stepError(1), "next error")) : null,
    el("span", { class: "tool-group" }, find,
      button("find-previous", "◀", () => stepFind(-1), "previous match"),
      button("find-next", "▶", () => stepFind(1), "next match"), counter),
    el("label", { class: "check" }, el("input", { type: "checkbox", id: "critical-path", checked: state.showCritical,
      onchange: (event) => { state.showCritical = event.target.checked; schedulePaint(); } }), "Critical path"),
    compareBox(state.traceId)].filter(Boolean));

  scroller.addEventListener("scroll", schedulePaint);
  const onResize = () => {
    fitHeight();
    relayout();
  };
  window.addEventListener("resize", onResize);
  onLeave(() => window.removeEventListener("resize", onResize));
  state.onSelect = schedulePaint;

  // Keyboard: j/k move the selection, Enter folds it, Esc lets go of it.
  keys.page = {
    j: () => moveSelection(1),
    k: () => moveSelection(-1),
    Enter: () => {
      const node = state.selected && tree.byId.get(state.selected);
      if (node && node.children.length) toggle(node);
    },
    Escape: () => selectSpan(null).then(schedulePaint),
    "/": () => find.focus(),
  };
  const moveSelection = (delta) => {
    const index = rows.findIndex((n) => n.id === state.selected);
    const next = rows[Math.max(0, Math.min(rows.length - 1, index + delta))];
    if (next) {
      scrollToRow(rows.indexOf(next));
      selectSpan(next.id).then(schedulePaint);
    }
  };

  fitHeight();
  relayout();
  const selectedIndex = rows.findIndex((n) => n.id === state.selected);
  if (selectedIndex >= 0) scrollToRow(selectedIndex);
}

/** Round times from the start, at most five, none so close to the end that labels collide. */
function rulerTicks(total) {
  const rough = total / 5;
  const power = 10 ** Math.floor(Math.log10(rough));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * power).find((s) => s >= rough);
  const ticks = [];
  for (let t = 0; t <= total * 0.9; t += step) ticks.push(t);
  return ticks;
}

/** The duration beside its bar: after the bar when there is room, before it otherwise, and
 * inside a bar that fills the row; always dark on the row's background or light on the bar. */
function durationLabel(node, left, width) {
  const text = formatDuration(node.duration);
  if (left + width < 80) return el("span", { class: "bar-label after", style: `left:${left + width}%` }, text);
  if (left > 20) return el("span", { class: "bar-label before", style: `right:${100 - left}%` }, text);
  return el("span", { class: "bar-label inside", style: `right:${Math.max(0, 100 - left - width)}%` }, text);
}

function spanText(node) {
  const values = (node.span.attributes || []).map((kv) => `${kv.key}=${kvText(kv.value)}`);
  return `${node.service} ${node.span.name} ${node.id} ${values.join(" ")}`.toLowerCase();
}

function kvText(value) {
  if (!value) return "";
  const [first] = Object.values(value);
  return typeof first === "object" ? JSON.stringify(first) : String(first);
}

function compareBox(traceId) {
  const input = el("input", { id: "compare-with", placeholder: "compare with trace id", size: 20 });
  const form = el("form", { class: "compare-form", onsubmit: (event) => {
    event.preventDefault();
    const other = input.value.trim();
    if (other) location.hash = `#/compare/${traceId}/${encodeURIComponent(other)}`;
  } }, input, el("button", { type: "submit" }, "Compare"));
  return form;
}

// ---- details ------------------------------------------------------------------------------

async function renderDetails(details, state) {
  const node = state.selected && state.tree.byId.get(state.selected);
  if (!node) {
    details.replaceChildren(el("p", { class: "muted" }, "Select a span to see its details."));
    return;
  }
  details.replaceChildren(spanDetails(node, state));
  const logs = details.querySelector(".span-logs");
  try {
    const records = (await api(`/api/logs?traceID=${state.traceId}&spanID=${node.id}&limit=50&order=time`)).data;
    logs.replaceChildren(records.length ? logTable(records, false) : el("p", { class: "muted" }, "none"));
  } catch (error) {
    logs.replaceChildren(el("p", { class: "error-box" }, String(error.message || error)));
  }
}

function spanDetails(node, state) {
  const span = node.span;
  const status = statusCode(span.status);
  const parent = state.tree.byId.get(node.parent);
  const events = (span.events || []).map((event) => el("div", { class: `event ${event.name === "exception" ? "exception" : ""}` },
    el("div", { class: "event-head" }, el("strong", {}, event.name), " ",
      el("span", { class: "muted" }, `+${formatDuration(nanosToMicros(event.timeUnixNano) - node.start)}`)),
    attributeTable(event.attributes, "event-attributes")));
  const links = (span.links || []).map((link) => el("div", { class: "link" },
    el("a", { href: `#/trace/${link.traceId}?span=${link.spanId}` }, `${link.traceId} / ${link.spanId}`),
    attributeTable(link.attributes)));
  const scope = node.scope.name ? `${node.scope.name}${node.scope.version ? ` ${node.scope.version}` : ""}` : "(none)";
  const criticalMicros = (node.critical || []).reduce((sum, [a, b]) => sum + b - a, 0);
  return el("div", {},
    el("div", { class: "panel-head" }, el("h2", { title: span.name }, span.name),
      el("button", { type: "button", class: "close", title: "close (Esc)", onclick: () => {
        state.selected = null;
        state.details();
        if (state.onSelect) state.onSelect();
      } }, "×")),
    el("table", { class: "kv summary" },
      el("tr", {}, el("th", {}, "Service"), el("td", {}, el("span", { class: "swatch",
        style: `background:${serviceColor(node.service)}` }), node.service)),
      el("tr", {}, el("th", {}, "Span ID"), el("td", {}, node.id)),
      el("tr", {}, el("th", {}, "Parent"), el("td", {}, parent ? `${parent.span.name} (${node.parent})`
        : node.parent ? `${node.parent} (not received)` : "none, root span")),
      el("tr", {}, el("th", {}, "Kind"), el("td", {}, spanKind(span.kind))),
      el("tr", {}, el("th", {}, "Start"), el("td", {}, `${formatTime(node.start)} (+${formatDuration(node.start - state.tree.start)})`)),
      el("tr", {}, el("th", {}, "Duration"), el("td", {}, formatDuration(node.duration))),
      el("tr", {}, el("th", {}, "Self time"), el("td", { class: "self-time" }, formatDuration(node.selfTime || 0))),
      el("tr", {}, el("th", {}, "Critical path"), el("td", {}, node.critical ? formatDuration(criticalMicros) : "not on it")),
      el("tr", {}, el("th", {}, "Status"), el("td", { class: `status-${status}` },
        status, span.status && span.status.message ? `: ${span.status.message}` : "")),
      el("tr", {}, el("th", {}, "Scope"), el("td", {}, scope))),
    el("h3", {}, "Attributes"), attributeTable(span.attributes, "span-attributes"),
    el("h3", {}, `Events (${events.length})`), events.length ? events : el("p", { class: "muted" }, "none"),
    el("h3", {}, `Links (${links.length})`), links.length ? links : el("p", { class: "muted" }, "none"),
    el("h3", {}, "Logs ", el("a", { href: `#/logs?traceID=${state.traceId}&spanID=${node.id}`, class: "span-logs-link" },
      "open in Logs")),
    el("div", { class: "span-logs" }, el("p", { class: "muted" }, "loading…")),
    el("h3", {}, "Resource"), attributeTable(node.resource, "resource-attributes"));
}

// ---- statistics ---------------------------------------------------------------------------

const STAT_COLUMNS = [
  ["service", "Service"], ["name", "Operation"], ["count", "Count"], ["total", "Total"], ["avg", "Avg"],
  ["min", "Min"], ["max", "Max"], ["self", "Self total"], ["selfAvg", "Self avg"], ["selfShare", "Self %"],
  ["errors", "Errors"],
];

function statisticsView(view, state) {
  const stats = operationStatistics(state.tree.order).map((s) => ({
    ...s, avg: s.total / s.count, selfAvg: s.self / s.count, selfShare: (s.self / state.total) * 100,
  }));
  let sortKey = "self";
  let descending = true;
  const table = el("table", { class: "stats", id: "trace-statistics" });
  const render = () => {
    const sorted = [...stats].sort((a, b) => {
      const order = a[sortKey] < b[sortKey] ? -1 : a[sortKey] > b[sortKey] ? 1 : 0;
      return descending ? -order : order;
    });
    const time = (micros) => formatDuration(micros);
    table.replaceChildren(
      el("thead", {}, el("tr", {}, STAT_COLUMNS.map(([key, label]) => el("th", {
        class: `sortable ${key === sortKey ? (descending ? "sorted-desc" : "sorted-asc") : ""}`, "data-sort": key,
        onclick: () => {
          descending = key === sortKey ? !descending : true;
          sortKey = key;
          render();
        },
      }, label)))),
      el("tbody", {}, sorted.map((s) => el("tr", { "data-operation": `${s.service}: ${s.name}` },
        el("td", { class: "nowrap" }, el("span", { class: "swatch", style: `background:${serviceColor(s.service)}` }),
          s.service),
        el("td", { class: "operation" }, s.name),
        el("td", { class: "num" }, s.count), el("td", { class: "num" }, time(s.total)),
        el("td", { class: "num" }, time(s.avg)), el("td", { class: "num" }, time(s.min)),
        el("td", { class: "num" }, time(s.max)), el("td", { class: "num self-total" }, time(s.self)),
        el("td", { class: "num" }, time(s.selfAvg)), el("td", { class: "num" }, `${s.selfShare.toFixed(1)}%`),
        el("td", { class: `num ${s.errors ? "errors" : ""}` }, s.errors || "")))));
  };
  render();
  view.append(el("p", { class: "muted" }, "Per service and operation. Self time is a span's duration less the time ",
    "its children ran; it adds up to where the trace's time went."), el("div", { class: "table-scroll" }, table));
}

// ---- flame graph --------------------------------------------------------------------------

const FLAME_ROW = 20;

function flameView(view, state, selectSpan) {
  const { tree, total } = state;
  const graph = el("div", { class: "flame", id: "flame-graph", style: `height:${(tree.maxDepth + 1) * FLAME_ROW}px` });
  const frames = tree.order.map((node) => {
    const left = ((node.start - tree.start) / total) * 100;
    const width = Math.max(0.05, (node.duration / total) * 100);
    return el("div", {
      class: `frame ${node.error ? "error" : ""} ${state.selected === node.id ? "selected" : ""}`,
      style: `left:${left}%;width:${width}%;top:${node.depth * FLAME_ROW}px;background:${serviceColor(node.service)}`,
      title: `${node.service}: ${node.span.name} · ${formatDuration(node.duration)} (self ${formatDuration(node.selfTime)})`,
      "data-span-id": node.id, "data-depth": node.depth,
      onclick: () => {
        for (const frame of graph.querySelectorAll(".frame.selected")) frame.classList.remove("selected");
        graph.querySelector(`[data-span-id="${node.id}"]`).classList.add("selected");
        selectSpan(node.id);
      },
    }, el("span", { class: "frame-label" }, `${node.span.name}`));
  });
  graph.append(...frames);
  view.append(el("p", { class: "muted" }, "Each span under its parent, as wide as it took; click one for its details."),
    el("div", { class: "flame-scroll" }, graph));
}
