// ferrotel view's web UI: a hash-routed page over the viewer's own JSON API, no dependencies.
// This module routes between pages and owns what every page shares: the navigation, the
// store status line and the keyboard shortcuts with their help.

import { api, el, errorBox, main, stopLive } from "./dom.js";
import { HELP, keys, leavePage } from "./keys.js";
import { tracesPage } from "./traces.js";
import { tracePage } from "./trace.js";
import { comparePage } from "./compare.js";
import { logsPage } from "./logs.js";
import { metricsPage } from "./metrics.js";
import { servicesPage } from "./services.js";

function currentRoute() {
  const hash = location.hash.replace(/^#\/?/, "") || "traces";
  const [path, query] = hash.split("?");
  const parts = path.split("/").map((p) => decodeURIComponent(p));
  return { page: parts[0], ids: parts.slice(1), params: new URLSearchParams(query || "") };
}

const PAGES = {
  traces: tracesPage,
  trace: (params, ids) => tracePage(params, ids[0]),
  compare: comparePage,
  logs: logsPage,
  metrics: metricsPage,
  services: servicesPage,
  map: servicesPage,
};
const NAV_OF = { trace: "traces", compare: "traces", map: "services" };

async function route() {
  stopLive();
  leavePage();
  const { page, ids, params } = currentRoute();
  const active = NAV_OF[page] || page;
  for (const link of document.querySelectorAll("nav a")) link.classList.toggle("active", link.dataset.page === active);
  main.replaceChildren();
  document.body.dataset.page = page;
  try {
    await (PAGES[page] || tracesPage)(params, ids);
  } catch (error) {
    main.append(errorBox(error));
  }
  refreshStatus();
}

async function refreshStatus() {
  const line = document.getElementById("store-status");
  try {
    const status = await api("/api/status");
    const evicted = status.evictedSpans ? `, ${status.evictedSpans} evicted` : "";
    line.textContent = `${status.spans} spans${evicted} · ${status.logRecords} logs · ${status.metricSeries} metric series`;
  } catch (error) {
    line.textContent = "viewer unreachable";
  }
}

// ---- keyboard -----------------------------------------------------------------------------

function toggleHelp(show) {
  let help = document.getElementById("help");
  if (!help) {
    help = el("div", { id: "help", class: "help", role: "dialog", "aria-label": "keyboard shortcuts", hidden: true },
      el("div", { class: "help-box" }, el("h2", {}, "Keyboard shortcuts"),
        el("table", { class: "kv" }, HELP.map(([key, what]) => el("tr", {}, el("th", {}, el("kbd", {}, key)),
          el("td", {}, what)))),
        el("p", { class: "muted" }, "Press ? or Esc to close.")));
    help.addEventListener("click", (event) => { if (event.target === help) toggleHelp(false); });
    document.body.append(help);
  }
  help.hidden = show === undefined ? !help.hidden : !show;
}

function typing(target) {
  return target instanceof HTMLInputElement || target instanceof HTMLTextAreaElement ||
    target instanceof HTMLSelectElement || (target && target.isContentEditable);
}

document.addEventListener("keydown", (event) => {
  if (event.ctrlKey || event.metaKey || event.altKey) return;
  const help = document.getElementById("help");
  if (event.key === "Escape" && help && !help.hidden) {
    toggleHelp(false);
    return;
  }
  if (typing(event.target)) {
    if (event.key === "Escape") event.target.blur();
    return;
  }
  if (event.key === "?") {
    toggleHelp();
    event.preventDefault();
    return;
  }
  const action = keys.page[event.key];
  if (action) {
    event.preventDefault();
    action();
  }
});

window.addEventListener("hashchange", route);
route();
