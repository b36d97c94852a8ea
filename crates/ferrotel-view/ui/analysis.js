// What the trace views compute from a trace: its span tree, self times, the critical path,
// per-operation statistics and the structure two traces are compared by. Every walk is
// iterative (traces can be tens of thousands of levels deep) and tolerates any parent links.

import { anyValue, nanosToMicros, statusCode } from "./dom.js";

/** The spans of an OTLP/JSON trace as nodes: times in µs since the epoch, ids, service. */
export function traceNodes(otlp) {
  const nodes = [];
  for (const resourceSpans of otlp.resourceSpans || []) {
    const resource = (resourceSpans.resource && resourceSpans.resource.attributes) || [];
    const serviceAttribute = resource.find((kv) => kv.key === "service.name");
    const service = serviceAttribute ? anyValue(serviceAttribute.value) : "unknown_service";
    for (const scopeSpans of resourceSpans.scopeSpans || []) {
      for (const span of scopeSpans.spans || []) {
        const start = nanosToMicros(span.startTimeUnixNano);
        const end = nanosToMicros(span.endTimeUnixNano);
        nodes.push({
          span, service, resource, scope: scopeSpans.scope || {}, start, duration: Math.max(0, end - start),
          id: span.spanId, parent: span.parentSpanId || "", children: [], error: statusCode(span.status) === "error",
        });
      }
    }
  }
  return nodes;
}

/** Parent links → a forest. A span whose parent was not received is a root marked `orphan`;
 * a group whose links loop back never reaches a root, so its earliest span becomes one,
 * marked `cycle`; a second span with a taken id is shown on its own, marked `duplicate`.
 * Every span appears exactly once. Children are in start order; each node gets its depth,
 * its number of descendants and its position in tree order (`order`). */
export function spanTree(spans) {
  const byId = new Map();
  const roots = [];
  for (const node of spans) {
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
    const stack = [[root, 0]];
    while (stack.length) {
      const [node, depth] = stack.pop();
      if (visited.has(node)) continue;
      visited.add(node);
      node.depth = depth;
      order.push(node);
      for (let i = node.children.length - 1; i >= 0; i--) stack.push([node.children[i], depth + 1]);
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
  order.forEach((node, index) => { node.order = index; });
  for (let i = order.length - 1; i >= 0; i--) {
    const node = order[i];
    node.descendants = node.children.reduce((sum, child) => sum + 1 + child.descendants, 0);
  }
  let start = Infinity;
  let end = -Infinity;
  let maxDepth = 0;
  for (const node of order) {
    start = Math.min(start, node.start);
    end = Math.max(end, node.start + node.duration);
    maxDepth = Math.max(maxDepth, node.depth);
  }
  return { byId, roots, order, start, end, maxDepth };
}

/** The rows shown, in tree order, skipping what collapsed spans hide. */
export function visibleRows(roots, collapsed) {
  const rows = [];
  const stack = [...roots].reverse();
  while (stack.length) {
    const node = stack.pop();
    rows.push(node);
    if (collapsed.has(node.id)) continue;
    for (let i = node.children.length - 1; i >= 0; i--) stack.push(node.children[i]);
  }
  return rows;
}

/** Each span's self time: its duration less the time some child (clipped to it) was running. */
export function computeSelfTimes(order) {
  for (const node of order) {
    const end = node.start + node.duration;
    const intervals = node.children
      .map((c) => [Math.max(node.start, c.start), Math.min(end, c.start + c.duration)])
      .filter(([a, b]) => b > a)
      .sort((x, y) => x[0] - y[0]);
    let covered = 0;
    let reach = node.start;
    for (const [a, b] of intervals) {
      if (b <= reach) continue;
      covered += b - Math.max(a, reach);
      reach = b;
    }
    node.selfTime = Math.max(0, node.duration - covered);
  }
}

/** The critical path: the chain of work the trace's end waited on. From each root's end,
 * the last child to finish before the current point is followed, the gap after it belongs
 * to the parent; then the search resumes from that child's start. Sets `node.critical`
 * (segments [start, end] in µs) on every span it passes through. */
export function computeCriticalPath(roots) {
  const add = (node, start, end) => {
    if (end > start) (node.critical = node.critical || []).push([start, end]);
  };
  // Work items: a span and the point its critical part must end by.
  const stack = roots.filter((r) => !r.duplicate).map((root) => [root, root.start + root.duration]);
  while (stack.length) {
    const [node, limit] = stack.pop();
    let cursor = Math.min(limit, node.start + node.duration);
    const children = [...node.children].sort((a, b) => (b.start + b.duration) - (a.start + a.duration));
    const follow = [];
    for (const child of children) {
      if (cursor <= node.start) break;
      const childEnd = Math.min(child.start + child.duration, cursor);
      if (child.start >= cursor || childEnd <= child.start) continue;
      add(node, childEnd, cursor);
      follow.push([child, childEnd]);
      cursor = Math.max(node.start, child.start);
    }
    add(node, node.start, cursor);
    for (let i = follow.length - 1; i >= 0; i--) stack.push(follow[i]);
  }
}

/** Per service and operation: count, total and self time, min, max, errors. */
export function operationStatistics(order) {
  const groups = new Map();
  for (const node of order) {
    const key = `${node.service}\u0000${node.span.name}`;
    let group = groups.get(key);
    if (!group) {
      group = { service: node.service, name: node.span.name, count: 0, total: 0, self: 0, min: Infinity, max: 0,
        errors: 0 };
      groups.set(key, group);
    }
    group.count += 1;
    group.total += node.duration;
    group.self += node.selfTime || 0;
    group.min = Math.min(group.min, node.duration);
    group.max = Math.max(group.max, node.duration);
    group.errors += node.error ? 1 : 0;
  }
  return [...groups.values()];
}

/** A trace as counts and durations per path of service:operation from its root, for
 * comparing two traces' structure: Map(pathKey → {path, depth, count, total}). */
export function pathProfile(order) {
  const keyOf = new Map();
  const profile = new Map();
  for (const node of order) {
    const parentKey = node.parentNodeInTree ? keyOf.get(node.parentNodeInTree) : null;
    const label = `${node.service}: ${node.span.name}`;
    const key = parentKey === null || parentKey === undefined ? label : `${parentKey}\u0000${label}`;
    keyOf.set(node, key);
    let entry = profile.get(key);
    if (!entry) {
      entry = { key, label, depth: key.split("\u0000").length - 1, parent: parentKey || null, count: 0, total: 0,
        errors: 0 };
      profile.set(key, entry);
    }
    entry.count += 1;
    entry.total += node.duration;
    entry.errors += node.error ? 1 : 0;
  }
  return profile;
}

/** Marks each node with the tree parent it hangs from (not the raw parent link). */
export function linkTreeParents(roots) {
  const stack = [...roots];
  for (const root of roots) root.parentNodeInTree = null;
  while (stack.length) {
    const node = stack.pop();
    for (const child of node.children) {
      child.parentNodeInTree = node;
      stack.push(child);
    }
  }
}

/** Two profiles merged in tree order: rows with both sides' figures (absent side null). */
export function compareProfiles(a, b) {
  const children = new Map();
  const all = new Map([...a, ...b]);
  for (const [key, entry] of all) {
    const parent = entry.parent || "";
    if (!children.has(parent)) children.set(parent, []);
    children.get(parent).push(key);
  }
  for (const list of children.values()) list.sort();
  const rows = [];
  const stack = [...(children.get("") || [])].reverse();
  while (stack.length) {
    const key = stack.pop();
    const entry = all.get(key);
    rows.push({ key, label: entry.label, depth: entry.depth, a: a.get(key) || null, b: b.get(key) || null });
    for (const child of [...(children.get(key) || [])].reverse()) stack.push(child);
  }
  return rows;
}
