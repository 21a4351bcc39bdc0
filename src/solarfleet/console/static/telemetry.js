// Telemetry charts: /v1/products/<imei>/data over a window, downsampled by the API with an
// interval chosen from the chart's width (about one bucket per two pixels), so a year of
// readings never ships raw; zooming in re-reads the narrower window at a finer interval.

import * as api from "./api.js";
import { CONFIG, iso, ms, plotly } from "./charts.js";
import { field, h, message } from "./dom.js";

const WINDOWS = [["1", "last day"], ["7", "last 7 days"], ["30", "last 30 days"], ["365", "last year"]];
const STEPS = [1, 5, 15, 30, 60, 300, 900, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86400, 7 * 86400, 28 * 86400];

// The smallest "nice" interval giving at most one bucket per two pixels, as the API spells it.
export function dsInterval(spanMs, widthPx) {
  const wanted = spanMs / 1000 / Math.max(widthPx / 2, 1);
  const s = STEPS.find((step) => step >= wanted) ?? STEPS[STEPS.length - 1];
  if (s % (7 * 86400) === 0) return `${s / (7 * 86400)}w`;
  if (s % 86400 === 0) return `${s / 86400}d`;
  if (s % 3600 === 0) return `${s / 3600}h`;
  if (s % 60 === 0) return `${s / 60}m`;
  return `${s}s`;
}

export function telemetry(imei) {
  const windowSelect = h("select", {}, WINDOWS.map(([v, text]) => h("option", { value: v, selected: v === "7" }, text)));
  const fieldsBox = h("fieldset", { class: "checks" }, h("legend", { class: "sr-only" }, "Fields"));
  const chart = h("div", { class: "chart", id: "telemetry", role: "img", "aria-label": `Telemetry of unit ${imei}` });
  const note = h("p", { class: "muted small", id: "telemetry-note", "aria-live": "polite" });
  const card = h("section", { class: "card", "aria-labelledby": "telemetry-title" },
    h("h2", { id: "telemetry-title" }, "Telemetry"),
    h("div", { class: "telemetry-controls" }, field("Window", windowSelect), h("div", { class: "field" }, h("span", { class: "small" }, "Fields"), fieldsBox)),
    chart, note);
  const shown = new Set();
  let known = [];
  let view = null; // [startMs, endMs] of the current read
  let busy = 0;

  const read = async (startMs, endMs) => {
    const ticket = ++busy;
    view = [startMs, endMs];
    const width = chart.clientWidth || 800;
    const interval = dsInterval(endMs - startMs, width);
    note.textContent = "Reading…";
    let answer;
    try {
      answer = await api.get(`products/${encodeURIComponent(imei)}/data`, { start: iso(startMs), end: iso(endMs), ds_interval: interval, ds_function: "mean" });
    } catch (err) {
      if (ticket === busy) note.replaceChildren(message("error", err.message));
      return;
    }
    if (ticket !== busy) return;
    const data = answer.data || {};
    const names = Object.keys(data).filter((k) => k !== "measurement" && k !== "tags" && Array.isArray(data[k])).sort();
    if (!known.length && names.length) names.slice(0, 3).forEach((n) => shown.add(n));
    known = [...new Set([...known, ...names])].sort();
    drawChecks();
    const points = names.reduce((n, k) => n + data[k].length, 0);
    note.textContent = names.length ? `${points} points · ds_interval=${interval} (mean) · ${iso(startMs).slice(0, 16)} → ${iso(endMs).slice(0, 16)} UTC · drag to zoom, double-click to reset` : "No readings in this window.";
    chart.hidden = !names.length;
    if (!names.length) return;
    const Plotly = await plotly();
    const traces = names.filter((n) => shown.has(n)).map((n) => ({ type: "scatter", mode: "lines", name: n, x: data[n].map((p) => p[1]), y: data[n].map((p) => p[0]) }));
    await Plotly.react(chart, traces, {
      height: 320, margin: { l: 50, r: 10, t: 10, b: 40 }, legend: { orientation: "h", y: -0.2 },
      xaxis: { type: "date", range: [iso(startMs), iso(endMs)] }, yaxis: { automargin: true },
    }, CONFIG);
    chart.dataset.drawn = performance.now().toFixed(1);
    Object.assign(chart.dataset, { interval, start: iso(startMs), end: iso(endMs) });
  };

  function drawChecks() {
    fieldsBox.replaceChildren(h("legend", { class: "sr-only" }, "Fields"), ...known.map((name) => {
      const box = h("input", { type: "checkbox", id: `tm-${name}`, checked: shown.has(name) });
      box.addEventListener("change", () => {
        if (box.checked) shown.add(name);
        else shown.delete(name);
        read(...view);
      });
      return h("label", { for: box.id }, box, ` ${name}`);
    }));
  }

  const fromWindow = () => {
    const end = Date.now();
    read(end - Number(windowSelect.value) * 86400000, end);
  };
  windowSelect.addEventListener("change", fromWindow);
  queueMicrotask(async () => {
    fromWindow();
    await plotly();
    // plotly's own event: a zoom gives the new range; a double-click (autorange) the window.
    const attach = () => {
      if (!chart.on) return setTimeout(attach, 100);
      chart.on("plotly_relayout", (ev) => {
        if (ev["xaxis.range[0]"] !== undefined) read(ms(String(ev["xaxis.range[0]"]).replace(" ", "T")), ms(String(ev["xaxis.range[1]"]).replace(" ", "T")));
        else if (ev["xaxis.autorange"]) fromWindow();
      });
    };
    attach();
  });
  return card;
}
