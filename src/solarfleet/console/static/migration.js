// The migration screen, from product_migration_history: lag (now minus
// latest_migration_timestamp) across the units in scope as a histogram — each bar one count
// through the list endpoint's num_results, so no row is shipped to draw it — the units lagging
// most, when the last pass ran, and how many units carry readings not yet archived.

import * as api from "./api.js";
import { hashFor } from "./app.js";
import { CONFIG, iso, ms, plotly } from "./charts.js";
import { h, message, shortTime, table } from "./dom.js";

const MINUTE = 60000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
const EDGES = [[0, "< 15 min"], [15 * MINUTE, "15 min – 1 h"], [HOUR, "1 – 6 h"], [6 * HOUR, "6 – 24 h"], [DAY, "1 – 7 days"], [7 * DAY, "7 – 30 days"], [30 * DAY, "> 30 days"]];
const HISTORY = "product_migration_history";

function lagText(millis) {
  if (millis < HOUR) return `${Math.round(millis / MINUTE)} min`;
  if (millis < 2 * DAY) return `${(millis / HOUR).toFixed(1)} h`;
  return `${(millis / DAY).toFixed(1)} days`;
}

const count = (resource, filters) => api.list(resource, { q: filters ? { filters } : undefined, perPage: 1 }).then((a) => a.num_results);

export async function render(main) {
  main.append(h("h1", {}, "Telemetry migration"));
  const now = Date.now();
  const bins = EDGES.map(([lo, label], i) => {
    const hi = i + 1 < EDGES.length ? EDGES[i + 1][0] : null;
    // lag in [lo, hi) <=> watermark in (now - hi, now - lo]
    const filters = [];
    if (lo > 0) filters.push({ name: "latest_migration_timestamp", op: "<=", val: iso(now - lo) });
    if (hi !== null) filters.push({ name: "latest_migration_timestamp", op: ">", val: iso(now - hi) });
    return { label, filters };
  });
  const [units, migrated, laggards, last, backlog, ...counts] = await Promise.all([
    count("products"),
    count(HISTORY),
    api.list(HISTORY, { q: { order_by: [{ field: "latest_migration_timestamp", direction: "asc" }] }, perPage: 20 }),
    api.list(HISTORY, { q: { order_by: [{ field: "last_migrated_at", direction: "desc" }] }, perPage: 1 }),
    api.get("migration/backlog").catch((err) => err),
    ...bins.map((b) => count(HISTORY, b.filters)),
  ]);
  const lastPass = last.objects[0]?.last_migrated_at;
  const kpi = (id, value, label) => h("div", { class: "kpi" }, h("div", { class: "value", id }, String(value)), h("div", { class: "label" }, label));
  main.append(h("section", { class: "card", "aria-labelledby": "state-title" },
    h("h2", { id: "state-title" }, "State"),
    h("div", { class: "kpis" },
      kpi("last-pass", lastPass ? shortTime(lastPass) : "never", "last pass ran (UTC)"),
      kpi("units-migrated", `${migrated} / ${units}`, "units with a watermark / units"),
      kpi("never-migrated", units - migrated, "units never migrated"),
      backlog instanceof Error ? null : kpi("late-units", backlog.data.units_with_late_readings, "units with late readings not yet archived (older than their watermark)"),
      backlog instanceof Error ? null : kpi("unarchived-units", backlog.data.units_with_unarchived_readings, "units with any reading not yet archived")),
    backlog instanceof Error ? message("error", `Backlog: ${backlog.message}`) : null));

  const chart = h("div", { class: "chart", id: "lag-histogram", role: "img", "aria-label": "Histogram of migration lag across units" });
  main.append(h("section", { class: "card", "aria-labelledby": "lag-title" },
    h("h2", { id: "lag-title" }, "Lag across the fleet"),
    h("p", { class: "muted small" }, "Lag = now − latest_migration_timestamp (the newest reading of a unit safe in the archive)."),
    chart,
    table([{ label: "Lag", cell: (r) => r.label }, { label: "Units", cell: (r) => String(r.n) }],
      bins.map((b, i) => ({ label: b.label, n: counts[i] })), { className: "sr-only", caption: "Units by lag" })));

  main.append(h("section", { class: "card", "aria-labelledby": "laggards-title" },
    h("h2", { id: "laggards-title" }, "Units lagging most"),
    table([
      { label: "Unit", cell: (r) => h("a", { href: hashFor("unit", r.product_imei) }, r.product_imei) },
      { label: "Safe up to (UTC)", cell: (r) => shortTime(r.latest_migration_timestamp) },
      { label: "Lag", cell: (r) => lagText(now - ms(r.latest_migration_timestamp)) },
      { label: "Last migrated (UTC)", cell: (r) => shortTime(r.last_migrated_at) },
    ], laggards.objects, { className: "laggards" })));

  const Plotly = await plotly();
  await Plotly.react(chart, [{ type: "bar", x: bins.map((b) => b.label), y: counts, text: counts.map(String), textposition: "auto", marker: { color: "#0b6bcb" }, hovertemplate: "%{x}: %{y} units<extra></extra>" }],
    { height: 300, margin: { l: 50, r: 10, t: 10, b: 60 }, yaxis: { title: { text: "units" }, rangemode: "tozero", tickformat: "d", dtick: Math.max(...counts) <= 10 ? 1 : undefined }, xaxis: { type: "category" } }, CONFIG);
  chart.dataset.drawn = performance.now().toFixed(1);
}
