// Metric series as cards: a line per attribute set for sums and gauges, percentiles over time
// and the latest buckets for histograms, axes with round ticks and units, and the spans the
// measurements were made in (exemplars), from every point stored.

import {
  api, el, errorBox, formatDuration, formatTime, liveControl, main, nanosToMicros, plainValue, roundNumber, svg,
} from "./dom.js";

const CHART = { width: 440, height: 200, left: 64, right: 12, top: 12, bottom: 30 };
const PALETTE = ["#2f6fdf", "#d9480f", "#2b8a3e", "#9c36b5", "#e67700", "#0b7285", "#c2255c"];
const PERCENTILES = [[0.5, "p50"], [0.95, "p95"], [0.99, "p99"]];

export async function metricsPage(params) {
  const grid = el("div", { class: "metric-grid" });
  let lastListing = null;
  const load = async () => {
    const metrics = (await api("/api/metrics")).data;
    // No new points anywhere: the cards stay as they are (and what is selected in them).
    const listing = JSON.stringify(metrics);
    if (listing === lastListing) return;
    lastListing = listing;
    if (metrics.length === 0) {
      grid.replaceChildren(el("p", { class: "empty" }, "No metrics received yet."));
      return;
    }
    const cards = await Promise.all(metrics.map(metricCard));
    grid.replaceChildren(...cards);
  };
  main.append(el("div", { class: "page-head" }, el("h1", {}, "Metrics"),
    liveControl(() => load().catch(() => {}), params.get("live") !== "0")), grid);
  await load();
}

async function metricCard(metric) {
  const card = el("section", { class: "metric", "data-metric": metric.name },
    el("h2", {}, metric.name, " ", el("span", { class: "badge" }, metric.type),
      metric.temporality ? el("span", { class: "badge" }, metric.temporality) : null),
    el("p", { class: "muted" }, `${metric.service}${metric.unit ? ` · ${metric.unit}` : ""}` +
      `${metric.description ? ` · ${metric.description}` : ""}`));
  try {
    const query = `?service=${encodeURIComponent(metric.service)}`;
    const [series] = (await api(`/api/metrics/${encodeURIComponent(metric.name)}${query}`)).data;
    card.append(...metricCharts(series).filter(Boolean));
  } catch (error) {
    card.append(errorBox(error));
  }
  return card;
}

function metricCharts(series) {
  if (series.type === "histogram") return histogramCharts(series);
  const valueOf = series.type === "sum" || series.type === "gauge" ? (p) => Number(p.value) : (p) => Number(p.count);
  const lines = new Map();
  for (const point of series.points) {
    const key = attributeKey(point);
    if (!lines.has(key)) lines.set(key, []);
    lines.get(key).push([nanosToMicros(point.timeUnixNano), valueOf(point)]);
  }
  const unit = series.type === "sum" || series.type === "gauge" ? series.unit : "";
  const chart = lineChart([...lines.values()], unit, series.type);
  const latest = series.points[series.points.length - 1];
  return [chart, legend([...lines.keys()]),
    el("p", { class: "latest" }, `latest: ${latest ? formatValue(valueOf(latest), unit) : "—"} (${series.points.length} points)`),
    exemplarLinks(series.points, unit)];
}

function attributeKey(point) {
  return Object.entries(point.attributes || {}).map(([k, v]) => `${k}=${plainValue(v)}`).join(" ") || "(no attributes)";
}

// ---- histograms ---------------------------------------------------------------------------

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

/** The value below which `q` of the measurements fell, interpolated within its bucket. */
export function bucketQuantile(q, counts, bounds, min, max) {
  const total = counts.reduce((a, b) => a + b, 0);
  if (!total) return null;
  const rank = q * total;
  let seen = 0;
  for (let i = 0; i < counts.length; i++) {
    if (counts[i] === 0) continue;
    if (seen + counts[i] >= rank) {
      const low = i === 0 ? Math.min(min ?? 0, bounds[0] ?? 0) : bounds[i - 1];
      const high = i < bounds.length ? bounds[i] : Math.max(max ?? low, low);
      return low + (high - low) * ((rank - seen) / counts[i]);
    }
    seen += counts[i];
  }
  return bounds[bounds.length - 1] ?? null;
}

/** Percentiles per export over time: each attribute set's increment since its previous
 * point (cumulative series) or the point itself (delta), folded across sets per time. */
function percentilesOverTime(series) {
  const cumulative = series.temporality !== "delta";
  const previous = new Map();
  const byTime = new Map();
  for (const point of series.points) {
    const key = attributeKey(point);
    const counts = (point.bucketCounts || []).map(Number);
    const before = previous.get(key);
    previous.set(key, point);
    let increment = counts;
    if (cumulative && before && Number(before.count) <= Number(point.count)) {
      const old = (before.bucketCounts || []).map(Number);
      increment = counts.map((c, i) => c - (old[i] || 0));
    }
    const time = nanosToMicros(point.timeUnixNano);
    const slot = byTime.get(time) || { counts: counts.map(() => 0), bounds: point.explicitBounds || [], min: null, max: null };
    if (JSON.stringify(slot.bounds) !== JSON.stringify(point.explicitBounds || [])) continue;
    increment.forEach((c, i) => { slot.counts[i] += Math.max(0, c); });
    if (point.min !== null && point.min !== undefined) slot.min = Math.min(slot.min ?? Infinity, Number(point.min));
    if (point.max !== null && point.max !== undefined) slot.max = Math.max(slot.max ?? -Infinity, Number(point.max));
    byTime.set(time, slot);
  }
  const times = [...byTime.keys()].sort((a, b) => a - b);
  return PERCENTILES.map(([q]) => times
    .map((t) => {
      const slot = byTime.get(t);
      return [t, bucketQuantile(q, slot.counts, slot.bounds, slot.min, slot.max)];
    })
    .filter(([, v]) => v !== null));
}

function histogramCharts(series) {
  const folded = latestHistogram(series.points);
  const unit = series.unit;
  const percentiles = percentilesOverTime(series);
  const overTime = lineChart(percentiles, unit, "percentiles");
  const { counts, bounds } = folded;
  const labels = counts.map((_, i) => (i < bounds.length ? `≤${formatValue(bounds[i], unit)}`
    : `>${formatValue(bounds[bounds.length - 1] ?? 0, unit)}`));
  const buckets = barChart(counts, labels);
  const mean = folded.count ? folded.sum / folded.count : 0;
  const perSet = folded.latest.size > 1
    ? el("table", { class: "kv per-set" }, [...folded.latest].map(([key, p]) => el("tr", {},
      el("th", {}, key), el("td", {}, `count ${p.count}, mean ${formatValue(Number(p.count) ? Number(p.sum) / Number(p.count) : 0, unit)}`))))
    : null;
  const latestPercentiles = PERCENTILES.map(([q, label]) => {
    const value = bucketQuantile(q, counts, bounds, folded.min, folded.max);
    return `${label} ${value === null ? "—" : formatValue(value, unit)}`;
  }).join(", ");
  return [
    el("h3", {}, "Percentiles over time"), overTime, legend(PERCENTILES.map(([, label]) => label)),
    el("h3", {}, "Latest buckets"), buckets,
    el("p", { class: "latest" }, `latest: count ${folded.count}, sum ${formatValue(folded.sum, unit)}, ` +
      `mean ${formatValue(mean, unit)}, ${latestPercentiles}` +
      `${folded.min !== null ? `, min ${formatValue(folded.min, unit)}, max ${formatValue(folded.max, unit)}` : ""}` +
      `${folded.latest.size > 1 ? ` over ${folded.latest.size} attribute sets` : ""}`),
    perSet, exemplarLinks(series.points, unit),
  ];
}

/** Links from measurements to the spans they were made in, from every stored point: the
 * newest eight, so they stay when traffic stops. */
function exemplarLinks(points, unit) {
  const seen = new Set();
  const linked = [];
  for (let i = points.length - 1; i >= 0 && linked.length < 8; i--) {
    for (const exemplar of points[i].exemplars || []) {
      if (!exemplar.traceID || seen.has(exemplar.spanID)) continue;
      seen.add(exemplar.spanID);
      linked.push(exemplar);
    }
  }
  if (linked.length === 0) return null;
  return el("p", { class: "exemplars" }, "exemplars: ", linked.slice(0, 8).map((e, i) => [i ? " · " : "",
    el("a", { href: `#/trace/${e.traceID}?span=${e.spanID}`, class: "exemplar-link",
      title: `measured ${formatTime(nanosToMicros(e.timeUnixNano))}` }, formatValue(Number(e.value), unit))]));
}

// ---- charts -------------------------------------------------------------------------------

/** Round steps (1, 2, 5 × 10ⁿ) from `low` to `high`, about `count` of them. */
export function niceTicks(low, high, count = 5, whole = false) {
  if (!(high > low)) high = low + (Math.abs(low) || 1);
  const rough = (high - low) / count;
  const power = 10 ** Math.floor(Math.log10(rough));
  // Counts step by whole numbers: no "1.5 measurements".
  const step = Math.max(whole ? 1 : 0, [1, 2, 5, 10].map((m) => m * power).find((s) => s >= rough));
  const ticks = [];
  for (let v = Math.floor(low / step) * step; v <= high + step * 1e-9; v += step) ticks.push(Number(v.toPrecision(12)));
  if (ticks[ticks.length - 1] < high) ticks.push(Number((ticks[ticks.length - 1] + step).toPrecision(12)));
  return ticks;
}

const TIME_STEPS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 43200, 86400]
  .map((s) => s * 1e6);

function timeTicks(from, to) {
  const step = TIME_STEPS.find((s) => (to - from) / s <= 5) || TIME_STEPS[TIME_STEPS.length - 1];
  const ticks = [];
  for (let t = Math.ceil(from / step) * step; t <= to; t += step) ticks.push(t);
  return ticks;
}

/** A value in its unit: ms and s as durations, bytes in KiB/MiB, the rest rounded. */
export function formatValue(value, unit) {
  if (value === null || value === undefined || Number.isNaN(value)) return "—";
  if (unit === "ms") return formatDuration(value * 1000);
  if (unit === "s") return formatDuration(value * 1e6);
  if (unit === "us") return formatDuration(value);
  if (unit === "By") {
    const scaled = [["GiB", 2 ** 30], ["MiB", 2 ** 20], ["KiB", 2 ** 10]].find(([, size]) => Math.abs(value) >= size);
    return scaled ? `${roundNumber(value / scaled[1])} ${scaled[0]}` : `${roundNumber(value)} B`;
  }
  const suffix = unit && !unit.startsWith("{") && unit !== "1" ? ` ${unit}` : "";
  return `${roundNumber(value)}${suffix}`;
}

function lineChart(lines, unit, type) {
  const all = lines.flat();
  const xs = all.map((p) => p[0]);
  let [x0, x1] = [Math.min(...xs), Math.max(...xs)];
  if (!all.length) [x0, x1] = [0, 1];
  if (x1 === x0) [x0, x1] = [x0 - 30e6, x1 + 30e6];
  const yTicks = niceTicks(Math.min(0, ...all.map((p) => p[1])), Math.max(0, ...all.map((p) => p[1])));
  const [y0, y1] = [yTicks[0], yTicks[yTicks.length - 1]];
  const plotWidth = CHART.width - CHART.left - CHART.right;
  const plotHeight = CHART.height - CHART.top - CHART.bottom;
  const x = (v) => CHART.left + ((v - x0) / (x1 - x0)) * plotWidth;
  const y = (v) => CHART.top + plotHeight - ((v - y0) / (y1 - y0 || 1)) * plotHeight;
  return svg("svg", { class: "chart", viewBox: `0 0 ${CHART.width} ${CHART.height}`, "data-type": type, role: "img" },
    grid(yTicks.map((v) => [y(v), formatValue(v, unit)]), timeTicks(x0, x1).map((t) => [x(t), clock(t, x1 - x0)])),
    lines.map((points, i) => svg("g", { class: "line" },
      svg("polyline", { points: points.map(([a, b]) => `${x(a)},${y(b)}`).join(" "), fill: "none",
        stroke: PALETTE[i % PALETTE.length], "stroke-width": 2 }),
      points.map(([a, b]) => svg("circle", { cx: x(a), cy: y(b), r: 2.5, fill: PALETTE[i % PALETTE.length] },
        svg("title", {}, `${formatTime(a)}: ${formatValue(b, unit)}`))))));
}

function barChart(counts, labels) {
  const yTicks = niceTicks(0, Math.max(1, ...counts), 4, true);
  const top = yTicks[yTicks.length - 1];
  const plotWidth = CHART.width - CHART.left - CHART.right;
  const plotHeight = CHART.height - CHART.top - CHART.bottom;
  const barWidth = plotWidth / Math.max(1, counts.length);
  const labelEvery = Math.ceil(counts.length / 6);
  const y = (v) => CHART.top + plotHeight - (v / top) * plotHeight;
  return svg("svg", { class: "chart buckets", viewBox: `0 0 ${CHART.width} ${CHART.height}`, "data-type": "histogram",
    role: "img" },
  grid(yTicks.map((v) => [y(v), roundNumber(v)]), []),
  counts.map((count, i) => svg("g", {},
    svg("rect", { x: CHART.left + i * barWidth + 1, y: y(count), width: Math.max(1, barWidth - 2),
      height: CHART.top + plotHeight - y(count), fill: PALETTE[0] }, svg("title", {}, `${labels[i]}: ${count}`)),
    i % labelEvery === 0 ? svg("text", { x: CHART.left + (i + 0.5) * barWidth, y: CHART.height - 12,
      "text-anchor": "middle", class: "tick" }, labels[i]) : null)));
}

/** Axes with gridlines: y ticks [(position, label)], x ticks [(position, label)]. */
function grid(yTicks, xTicks) {
  const bottom = CHART.height - CHART.bottom;
  return svg("g", { class: "axes" },
    yTicks.map(([position, label]) => svg("g", {},
      svg("line", { class: "gridline", x1: CHART.left, y1: position, x2: CHART.width - CHART.right, y2: position }),
      svg("text", { x: CHART.left - 6, y: position + 3, "text-anchor": "end", class: "tick" }, label))),
    xTicks.map(([position, label]) => svg("text", { x: position, y: CHART.height - 10, "text-anchor": "middle",
      class: "tick" }, label)),
    svg("line", { class: "axis", x1: CHART.left, y1: CHART.top, x2: CHART.left, y2: bottom }),
    svg("line", { class: "axis", x1: CHART.left, y1: bottom, x2: CHART.width - CHART.right, y2: bottom }));
}

function clock(micros, range) {
  const text = formatTime(micros).slice(11, 19);
  return range >= 300e6 ? text.slice(0, 5) : text;
}

function legend(keys) {
  return el("ul", { class: "legend" }, keys.map((key, i) =>
    el("li", {}, el("span", { class: "swatch", style: `background:${PALETTE[i % PALETTE.length]}` }), key)));
}
