// Two traces side by side: their span trees merged by path (service: operation from the
// root), each path's span count and time in A and in B, what only one has, what got slower.

import { api, el, formatDuration, main, serviceColor } from "./dom.js";
import { compareProfiles, linkTreeParents, pathProfile, spanTree, traceNodes } from "./analysis.js";

export async function comparePage(params, ids) {
  const [a, b] = ids;
  const load = async (id) => {
    const tree = spanTree(traceNodes(await api(`/api/traces/${encodeURIComponent(id)}/otlp`)));
    linkTreeParents(tree.roots);
    return { id, tree, profile: pathProfile(tree.order), total: Math.max(1, tree.end - tree.start) };
  };
  const [left, right] = await Promise.all([load(a), load(b)]);
  const rows = compareProfiles(left.profile, right.profile);
  const side = (trace, label) => el("div", { class: "compare-side" },
    el("strong", {}, label), " ", el("a", { href: `#/trace/${trace.id}` }, trace.id),
    el("span", { class: "muted" }, ` · ${formatDuration(trace.total)} · ${trace.tree.order.length} spans`));
  const only = { a: 0, b: 0 };
  const table = el("table", { class: "compare", id: "compare-table" },
    el("thead", {}, el("tr", {}, el("th", {}, "Service: operation"), el("th", {}, "A spans"), el("th", {}, "A time"),
      el("th", {}, "B spans"), el("th", {}, "B time"), el("th", {}, "B − A"))),
    el("tbody", {}, rows.map((row) => {
      const state = !row.a ? "only-b" : !row.b ? "only-a" : changeOf(row);
      if (state === "only-a") only.a += 1;
      if (state === "only-b") only.b += 1;
      const delta = row.a && row.b ? row.b.total - row.a.total : null;
      const [service] = row.label.split(": ");
      return el("tr", { class: `compare-row ${state}`, "data-path": row.key.split("\u0000").join(" > ") },
        el("td", { class: "name-col", style: `--depth:${row.depth}`, title: row.key.split("\u0000").join(" › ") },
          el("span", { class: "swatch", style: `background:${serviceColor(service)}` }), row.label),
        el("td", { class: "num" }, row.a ? row.a.count : "—"),
        el("td", { class: "num" }, row.a ? formatDuration(row.a.total) : "—"),
        el("td", { class: "num" }, row.b ? row.b.count : "—"),
        el("td", { class: "num" }, row.b ? formatDuration(row.b.total) : "—"),
        el("td", { class: "num delta" }, delta === null ? (row.a ? "only in A" : "only in B")
          : `${delta >= 0 ? "+" : "−"}${formatDuration(Math.abs(delta))}`));
    })));
  main.append(el("h1", {}, "Compare traces"),
    el("div", { class: "compare-head" }, side(left, "A"), side(right, "B")),
    el("p", { class: "muted", id: "compare-summary" },
      `${rows.length} paths: ${only.a} only in A, ${only.b} only in B; `,
      el("span", { class: "slower-key" }, "slower"), ", ", el("span", { class: "faster-key" }, "faster"),
      " by more than 20% are marked."),
    el("div", { class: "table-scroll" }, table));
}

/** A path present in both: marked when its time or span count changed notably. */
function changeOf(row) {
  if (row.a.count !== row.b.count) return "count-changed";
  if (row.b.total > row.a.total * 1.2) return "slower";
  if (row.b.total < row.a.total / 1.2) return "faster";
  return "same";
}
