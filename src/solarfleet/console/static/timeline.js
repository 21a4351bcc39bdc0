// The parameter timeline: one lane per parameter type (the unit's, then each part's), a bar per
// interval a value was in force labelled with the value, pending values from the moment they
// were set, expired ones as crosses. Drawn with plotly; the API's rows are drawn as they are.

import { CONFIG, clickedTime, iso, ms, plotly } from "./charts.js";

const COLORS = { active: "#12b76a", removed: "#7a9cc6", pending: "#f79009", expired: "#98a2b3" };

// Lanes in order: [{key, label, rows}] from /parameters/history's data.
export function lanes(history, typeNames, partLabels) {
  const out = [];
  const byType = (rows) => {
    const groups = new Map();
    for (const row of rows) {
      if (!groups.has(row.parameter_type_id)) groups.set(row.parameter_type_id, []);
      groups.get(row.parameter_type_id).push(row);
    }
    const name = (id) => typeNames.get(id) ?? `type ${id}`;
    return [...groups.entries()].sort((a, b) => name(a[0]).localeCompare(name(b[0])));
  };
  for (const [typeId, rows] of byType(history.product_parameters)) {
    out.push({ key: `unit:${typeId}`, label: laneLabel(null, typeId, typeNames, partLabels), rows });
  }
  const partIds = Object.keys(history.part_parameters).sort((a, b) => Number(a) - Number(b));
  for (const partId of partIds) {
    for (const [typeId, rows] of byType(history.part_parameters[partId])) {
      out.push({ key: `part:${partId}:${typeId}`, label: laneLabel(partId, typeId, typeNames, partLabels), rows });
    }
  }
  return out;
}

export function laneLabel(partId, typeId, typeNames, partLabels) {
  const type = typeNames.get(Number(typeId)) ?? `type ${typeId}`;
  return partId === null || partId === undefined ? type : `${partLabels.get(String(partId)) ?? `part ${partId}`} · ${type}`;
}

// Labels are a text trace of their own, one per bar wide enough to hold its value (about 7 px a
// character) within the visible range: plotly lays out per-bar text in time quadratic in the
// bars of a trace, and thousands of labels too narrow to read would cost the browser seconds.
// Recomputed when the user zooms.
const LABEL_DY = -0.125; // the middle of an in-force bar (offset -0.4, width 0.55)
const CHUNK = 400;

function labels(bars, lo, hi, msPerPx) {
  const out = { x: [], y: [], text: [] };
  for (let i = 0; i < bars.values.length; i++) {
    const start = bars.start[i];
    const end = start + bars.x[i];
    if (end < lo || start > hi) continue;
    const visible = Math.min(end, hi) - Math.max(start, lo);
    if (visible / msPerPx < 7 * String(bars.values[i]).length + 10) continue;
    out.x.push(iso((Math.max(start, lo) + Math.min(end, hi)) / 2));
    out.y.push(bars.y[i] + LABEL_DY);
    out.text.push(bars.values[i]);
  }
  return out;
}

function traces(laneList, now) {
  const inForce = { x: [], base: [], start: [], y: [], values: [], hover: [], color: [] };
  const pending = { x: [], base: [], y: [], text: [], hover: [] };
  const expired = { x: [], y: [], text: [], hover: [] };
  laneList.forEach((lane, index) => {
    for (const row of lane.rows) {
      if ((row.status === "active" || row.status === "removed") && row.date_added) {
        const start = ms(row.date_added);
        const end = row.date_removed ? ms(row.date_removed) : now;
        inForce.base.push(row.date_added);
        inForce.start.push(start);
        inForce.x.push(Math.max(end - start, 1));
        inForce.y.push(index);
        inForce.values.push(row.value);
        inForce.color.push(COLORS[row.date_removed ? "removed" : "active"]);
        inForce.hover.push(`${lane.label}<br><b>${row.value}</b> in force<br>from ${row.date_added}<br>to ${row.date_removed ?? "now"}`);
      } else if (row.status === "pending") {
        pending.base.push(row.created_at);
        pending.x.push(Math.max(now - ms(row.created_at), 1));
        pending.y.push(index);
        pending.text.push(`pending ${row.value}`);
        pending.hover.push(`${lane.label}<br><b>${row.value}</b> pending<br>set ${row.created_at} by ${row.created_by ?? "?"}`);
      } else if (row.status === "expired") {
        expired.x.push(row.date_removed ?? row.created_at);
        expired.y.push(index + LABEL_DY);
        expired.text.push(row.value);
        expired.hover.push(`${lane.label}<br><b>${row.value}</b> expired (never on the unit)<br>set ${row.created_at}<br>superseded ${row.date_removed ?? "?"}`);
      }
    }
  });
  const bar = (t, name, color, extra) => ({
    type: "bar", orientation: "h", name, x: t.x, base: t.base, y: t.y,
    hovertext: t.hover, hoverinfo: "text",
    marker: { color, line: { color: "#fff", width: 1 }, ...extra },
  });
  // In-force bars fill the upper part of a lane, pending ones a thinner strip below them, so a
  // value waiting for the unit never hides the one still in force.
  // plotly's bar drawing costs time quadratic in the bars of one trace: chunks of CHUNK bars.
  const chunks = [];
  for (let i = 0; i < inForce.x.length; i += CHUNK) {
    const part = Object.fromEntries(Object.entries(inForce).map(([k, v]) => [k, v.slice(i, i + CHUNK)]));
    chunks.push({ ...bar(part, "in force", part.color), width: 0.55, offset: -0.4 });
  }
  return {
    bars: inForce,
    data: [
      ...chunks,
      { ...bar(pending, "pending", COLORS.pending, { opacity: 0.8 }), width: 0.28, offset: 0.17, text: pending.text, textposition: "outside", cliponaxis: false, textfont: { color: "#b54708", size: 11 } },
      { type: "scatter", mode: "text", name: "values", x: [], y: [], text: [], hoverinfo: "skip", textfont: { size: 11, color: "#1d2430" } },
      { type: "scatter", mode: "markers", name: "expired", x: expired.x, y: expired.y, text: expired.text, hovertext: expired.hover, hoverinfo: "text", marker: { symbol: "x-thin-open", size: 12, color: "#b42318", line: { width: 2, color: "#b42318" } } },
    ],
  };
}

function cursorShapes(cursor) {
  const line = (at, color, dash) => ({ type: "line", xref: "x", yref: "paper", x0: at, x1: at, y0: 0, y1: 1, line: { color, width: 2, dash } });
  const shapes = [];
  if (cursor.at) shapes.push(line(cursor.at, "#d92d20", "solid"));
  if (cursor.from) shapes.push(line(cursor.from, "#6941c6", "dash"));
  if (cursor.to) shapes.push(line(cursor.to, "#6941c6", "dash"));
  return shapes;
}

// Draw into `el`; `onPick(isoInstant)` when the user clicks a moment on the chart.
export async function draw(el, laneList, cursor, onPick) {
  const Plotly = await plotly();
  const now = Date.now();
  const times = laneList.flatMap((l) => l.rows.flatMap((r) => [r.created_at, r.date_added, r.date_removed].filter(Boolean).map(ms)));
  const first = times.length ? Math.min(...times) : now - 86400000;
  const pad = Math.max((now - first) * 0.03, 60000);
  const names = laneList.map((l) => l.label);
  const lo = first - pad;
  const hi = now + 4 * pad; // room on the right for the pending labels
  const layout = {
    height: Math.max(160, 70 + 34 * names.length),
    margin: { l: 10, r: el.clientWidth < 600 ? 70 : 10, t: 10, b: 40 },
    barmode: "overlay",
    showlegend: false,
    xaxis: { type: "date", range: [iso(lo), iso(hi)], gridcolor: "#eef0f3" },
    yaxis: { tickvals: names.map((_, i) => i), ticktext: names, range: [names.length - 0.5, -0.5], automargin: true, tickfont: { size: 11 }, zeroline: false, showgrid: false, fixedrange: true },
    shapes: cursorShapes(cursor),
    hoverlabel: { align: "left" },
    dragmode: "zoom",
  };
  const { bars, data } = traces(laneList, now);
  const plotWidth = Math.max(el.clientWidth - 200, 100); // less the lane names, about
  const labelTrace = data.length - 2;
  Object.assign(data[labelTrace], labels(bars, lo, hi, (hi - lo) / plotWidth));
  await Plotly.react(el, data, layout, { ...CONFIG, responsive: true });
  el.bars = bars;
  el.labelTrace = labelTrace;
  if (!el.dataset.listening) {
    el.dataset.listening = "1";
    el.on("plotly_relayout", (change) => {
      if (change["xaxis.range[0]"] === undefined && !change["xaxis.autorange"]) return;
      const xa = el._fullLayout.xaxis;
      const [a, b] = xa.range.map((t) => ms(String(t).replace(" ", "T")));
      const next = labels(el.bars, a, b, (b - a) / xa._length);
      Plotly.restyle(el, { x: [next.x], y: [next.y], text: [next.text] }, [el.labelTrace]);
    });
    let down = null;
    el.addEventListener("mousedown", (event) => { down = [event.clientX, event.clientY]; });
    el.addEventListener("click", (event) => {
      // A drag (zoom) ends in a click too: only a click that did not move picks an instant.
      if (down && Math.hypot(event.clientX - down[0], event.clientY - down[1]) > 4) return;
      const t = clickedTime(el, event);
      if (t !== null && el.pick) el.pick(iso(t));
    });
  }
  el.pick = onPick;
  el.dataset.drawn = performance.now().toFixed(1); // ms since navigation
}

export async function moveCursor(el, cursor) {
  const Plotly = await plotly();
  await Plotly.relayout(el, { shapes: cursorShapes(cursor) });
}
