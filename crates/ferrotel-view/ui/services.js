// Services: each one's rate, errors and latency (RED) from its server spans, and the map of
// calls between them drawn in layers, callers above callees; a service leads to its traces.

import { api, el, formatDuration, liveControl, main, roundNumber, serviceColor, svg } from "./dom.js";

export async function servicesPage(params) {
  const red = el("div", { id: "red-summary" });
  const map = el("div", { id: "service-map-area" });
  let lastAnswer = null;
  const load = async () => {
    const [summary, services, edges] = await Promise.all([
      api("/api/red"), api("/api/services"), api("/api/dependencies"),
    ]);
    // Unchanged figures leave the page alone: what the user opened or selected stays.
    const answer = JSON.stringify([summary, services, edges]);
    if (answer === lastAnswer) return;
    lastAnswer = answer;
    red.replaceChildren(redTable(summary.data));
    map.replaceChildren(...serviceMap(services.data, edges.data));
  };
  main.append(el("div", { class: "page-head" }, el("h1", {}, "Services"),
    liveControl(() => load().catch(() => {}), params.get("live") !== "0")),
  el("p", { class: "muted" }, "Rate, errors and duration of each service's server spans, over what is stored."),
  red, el("h2", {}, "Service map"), map);
  await load();
}

const ms = (value) => (value === null || value === undefined ? "—" : formatDuration(value * 1000));

function redTable(rows) {
  if (!rows.length) {
    return el("p", { class: "empty" }, "No server spans yet: the summary counts spans of kind server.");
  }
  const expanded = new Set();
  const table = el("table", { class: "red", id: "red-table" });
  const render = () => {
    table.replaceChildren(
      el("thead", {}, el("tr", {}, ["Service", "Requests/s", "Requests", "Errors", "Error rate", "p50", "p95", "p99"]
        .map((label) => el("th", {}, label)))),
      el("tbody", {}, rows.flatMap((row) => {
        const open = expanded.has(row.service);
        const line = el("tr", { class: "service-row", "data-service": row.service },
          el("td", {}, el("button", { type: "button", class: "toggle", "aria-expanded": String(open),
            title: open ? "hide operations" : "show operations",
            onclick: () => { if (open) expanded.delete(row.service); else expanded.add(row.service); render(); } },
          open ? "▾" : "▸"),
          el("span", { class: "swatch", style: `background:${serviceColor(row.service)}` }),
          el("a", { href: `#/traces?service=${encodeURIComponent(row.service)}` }, row.service)),
          ...figures(row));
        const operations = open ? row.operations.map((op) => el("tr", { class: "operation-row" },
          el("td", { class: "operation" }, el("a", {
            href: `#/traces?service=${encodeURIComponent(row.service)}&operation=${encodeURIComponent(op.operation)}`,
          }, op.operation)), ...figures(op))) : [];
        return [line, ...operations];
      })));
  };
  render();
  return el("div", { class: "table-scroll" }, table);
}

function figures(row) {
  const rate = row.errorRate === null ? "—" : `${roundNumber(row.errorRate * 100)}%`;
  return [
    el("td", { class: "num" }, roundNumber(row.ratePerSecond)),
    el("td", { class: "num" }, row.calls),
    el("td", { class: `num ${row.errors ? "errors" : ""}` }, row.errors),
    el("td", { class: `num ${row.errors ? "errors" : ""}` }, rate),
    el("td", { class: "num" }, ms(row.p50Ms)), el("td", { class: "num" }, ms(row.p95Ms)),
    el("td", { class: "num" }, ms(row.p99Ms)),
  ];
}

// ---- layered map --------------------------------------------------------------------------

/** Layers by the longest call path from a service nobody calls (loops broken where they
 * close), then within a layer ordered by the mean position of their callers. */
export function layerServices(names, edges) {
  const callees = new Map(names.map((n) => [n, []]));
  for (const edge of edges) if (edge.parent !== edge.child) callees.get(edge.parent).push(edge.child);
  // Depth-first, iterative: an edge back to a service on the current path closes a loop.
  const state = new Map();
  const acyclic = new Map(names.map((n) => [n, []]));
  for (const start of names) {
    if (state.has(start)) continue;
    const stack = [[start, 0]];
    state.set(start, "open");
    while (stack.length) {
      const frame = stack[stack.length - 1];
      const [node, index] = frame;
      const next = callees.get(node)[index];
      if (next === undefined) {
        state.set(node, "done");
        stack.pop();
        continue;
      }
      frame[1] += 1;
      if (state.get(next) === "open") continue;
      acyclic.get(node).push(next);
      if (!state.has(next)) {
        state.set(next, "open");
        stack.push([next, 0]);
      }
    }
  }
  const layer = new Map(names.map((n) => [n, 0]));
  // Longest path by relaxing in a topological order (Kahn).
  const incoming = new Map(names.map((n) => [n, 0]));
  for (const list of acyclic.values()) for (const child of list) incoming.set(child, incoming.get(child) + 1);
  const queue = names.filter((n) => incoming.get(n) === 0);
  while (queue.length) {
    const node = queue.shift();
    for (const child of acyclic.get(node)) {
      layer.set(child, Math.max(layer.get(child), layer.get(node) + 1));
      incoming.set(child, incoming.get(child) - 1);
      if (incoming.get(child) === 0) queue.push(child);
    }
  }
  const layers = [];
  for (const name of names) {
    const at = layer.get(name);
    (layers[at] = layers[at] || []).push(name);
  }
  // Barycentre ordering, two sweeps down: callees sit under their callers.
  const position = new Map();
  layers.forEach((list) => list.forEach((n, i) => position.set(n, i)));
  const callers = new Map(names.map((n) => [n, []]));
  for (const [parent, list] of acyclic) for (const child of list) callers.get(child).push(parent);
  for (let sweep = 0; sweep < 2; sweep++) {
    for (const list of layers.slice(1)) {
      const weight = (n) => {
        const from = callers.get(n);
        return from.length ? from.reduce((s, p) => s + position.get(p), 0) / from.length : position.get(n);
      };
      list.sort((a, b) => weight(a) - weight(b));
      list.forEach((n, i) => position.set(n, i));
    }
  }
  return layers.filter(Boolean);
}

function serviceMap(names, edges) {
  const all = [...new Set([...names, ...edges.flatMap((e) => [e.parent, e.child])])].sort();
  if (all.length === 0) return [el("p", { class: "empty" }, "No services yet.")];
  const layers = layerServices(all, edges);
  const nodeWidth = 150;
  const nodeHeight = 34;
  const columnGap = 36;
  const rowGap = 90;
  const widest = Math.max(...layers.map((l) => l.length));
  const width = Math.max(520, widest * (nodeWidth + columnGap) + columnGap);
  const height = layers.length * (nodeHeight + rowGap) + 30;
  const position = new Map();
  layers.forEach((list, row) => {
    const span = list.length * (nodeWidth + columnGap) - columnGap;
    list.forEach((name, i) => {
      position.set(name, [(width - span) / 2 + i * (nodeWidth + columnGap), 20 + row * (nodeHeight + rowGap)]);
    });
  });
  const marker = (id, color) => svg("marker", { id, viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 8,
    markerHeight: 8, orient: "auto-start-reverse" }, svg("path", { d: "M 0 0 L 10 5 L 0 10 z", fill: color }));
  const edgeShapes = edges.map((edge) => {
    const [px, py] = position.get(edge.parent);
    const [cx, cy] = position.get(edge.child);
    const failing = edge.errorCount > 0;
    let path;
    let label;
    if (edge.parent === edge.child) {
      path = `M ${px + nodeWidth} ${py + 8} c 40 -30, 40 50, 0 20`;
      label = [px + nodeWidth + 44, py + 20];
    } else {
      const [x1, y1] = [px + nodeWidth / 2, cy > py ? py + nodeHeight : py];
      const [x2, y2] = [cx + nodeWidth / 2, cy > py ? cy : cy + nodeHeight];
      const bend = Math.max(30, Math.abs(y2 - y1) / 2);
      const direction = y2 >= y1 ? 1 : -1;
      path = `M ${x1} ${y1} C ${x1} ${y1 + bend * direction}, ${x2} ${y2 - bend * direction}, ${x2} ${y2}`;
      label = [(x1 + x2) / 2, (y1 + y2) / 2];
    }
    return svg("g", { class: `edge ${failing ? "failing" : ""}` },
      svg("path", { d: path, fill: "none", "marker-end": `url(#${failing ? "arrow-red" : "arrow"})` }),
      svg("text", { x: label[0], y: label[1], "text-anchor": "middle" },
        `${edge.callCount} calls${failing ? `, ${edge.errorCount} errors` : ""}`));
  });
  const nodes = all.map((name) => {
    const [x, y] = position.get(name);
    return svg("a", { href: `#/traces?service=${encodeURIComponent(name)}`, class: "node", "data-service": name },
      svg("rect", { x, y, width: nodeWidth, height: nodeHeight, rx: 6, style: `stroke:${serviceColor(name)}` }),
      svg("title", {}, `${name}: open its traces`),
      svg("text", { x: x + nodeWidth / 2, y: y + nodeHeight / 2 + 4, "text-anchor": "middle" },
        name.length > 20 ? `${name.slice(0, 19)}…` : name));
  });
  const map = svg("svg", { class: "service-map", viewBox: `0 0 ${width} ${height}`, width, height,
    "data-layers": layers.length },
  svg("defs", {}, marker("arrow", "#778"), marker("arrow-red", "#d6336c")), edgeShapes, nodes);
  const table = el("table", { class: "edges", id: "edge-table" },
    el("thead", {}, el("tr", {}, el("th", {}, "Caller"), el("th", {}, "Callee"), el("th", {}, "Calls"),
      el("th", {}, "Errors"))),
    el("tbody", {}, edges.map((edge) => el("tr", {},
      el("td", {}, edge.parent), el("td", {}, edge.child), el("td", { class: "num" }, edge.callCount),
      el("td", { class: `num ${edge.errorCount ? "errors" : ""}` }, edge.errorCount)))));
  return [el("div", { class: "map-scroll" }, map), table];
}
