// The unit screen: fields, entity history, parts and their swaps, the parameter timeline with a
// time cursor (the API's as-of answer) and a diff of two instants, a set-parameter form, and
// telemetry charts. State (the instant, the two instants) lives in the URL.

import * as api from "./api.js";
import { replaceState } from "./app.js";
import { clear, field, h, message, shortTime, table, toInput } from "./dom.js";
import { laneLabel, lanes, draw as drawTimeline, moveCursor } from "./timeline.js";
import { telemetry } from "./telemetry.js";
import { setForm } from "./setparam.js";

const HIDDEN = new Set(["device_key"]);

export async function render(main, { arg: imei, params }) {
  main.append(h("h1", {}, `Unit ${imei}`));
  let unit;
  try {
    unit = await api.get(`products/${encodeURIComponent(imei)}`);
  } catch (err) {
    if (err.status === 401) throw err;
    main.append(message("error", err.status === 404 ? `No unit ${imei} that you can see. (${err.message})` : err.message),
      h("p", {}, h("a", { href: "#/fleet" }, "Back to the fleet")));
    return;
  }
  const byImei = { filters: [{ name: "product_imei", op: "==", val: imei }] };
  const [entityLinks, parts, partLinks, types, productType] = await Promise.all([
    api.list("product_entity_linker", { q: { ...byImei, order_by: [{ field: "date_added", direction: "desc" }] }, perPage: 1000 }),
    api.get(`products/${encodeURIComponent(imei)}/parts`),
    api.list("part_product_linker", { q: { ...byImei, order_by: [{ field: "date_added", direction: "desc" }] }, perPage: 1000 }),
    api.list("parameter_types", { perPage: 1000 }),
    api.get(`product_types/${unit.product_type_id}`).catch(() => null),
  ]);
  const typeById = new Map(types.objects.map((t) => [t.parameter_type_id, t]));
  const typeNames = new Map(types.objects.map((t) => [t.parameter_type_id, t.name]));
  const partLabels = new Map(parts.data.map((p) => [String(p.part_id), p.serial_number]));
  const ctx = { imei, unit, parts: parts.data, typeById, typeNames, partLabels, productType, params };

  main.append(h("p", { class: "muted" }, `${unit.serial_number ?? ""} · ${productType ? productType.name : `type ${unit.product_type_id}`}`));
  const entityIds = [...new Set(entityLinks.objects.map((l) => l.entity_id))];
  const entities = entityIds.length
    ? await api.list("entities", { q: { filters: [{ name: "entity_id", op: "in", val: entityIds }] }, perPage: 1000 }).catch(() => ({ objects: [] }))
    : { objects: [] };
  const entityNames = new Map(entities.objects.map((e) => [e.entity_id, e.name]));
  main.append(h("div", { class: "grid" }, fieldsCard(unit, productType), entityCard(entityLinks.objects, entityNames), partsCard(parts.data, partLinks.objects)));
  const timelineCard = h("section", { class: "card", id: "timeline-card", "aria-labelledby": "timeline-title" });
  main.append(timelineCard);
  await timelineSection(timelineCard, ctx);
  main.append(setForm(ctx, () => timelineSection(timelineCard, ctx)));
  main.append(telemetry(imei));
}

function fieldsCard(unit, productType) {
  const entries = Object.entries(unit).filter(([k]) => !HIDDEN.has(k));
  return h("section", { class: "card", "aria-labelledby": "fields-title" },
    h("h2", { id: "fields-title" }, "Fields"),
    h("dl", { class: "fields", id: "unit-fields" }, entries.map(([k, v]) => [h("dt", {}, k), h("dd", {}, k === "product_type_id" && productType ? `${v} (${productType.name})` : v === null ? "–" : String(v))])));
}

function entityCard(links, names) {
  return h("section", { class: "card", "aria-labelledby": "entities-title" },
    h("h2", { id: "entities-title" }, "Entity history"),
    table([
      { label: "Entity", cell: (l) => (names.has(l.entity_id) ? `${names.get(l.entity_id)} (${l.entity_id})` : String(l.entity_id)) },
      { label: "Added", cell: (l) => shortTime(l.date_added) },
      { label: "Removed", cell: (l) => (l.date_removed ? shortTime(l.date_removed) : "current") },
    ], links));
}

function partsCard(parts, links) {
  const serial = new Map(parts.map((p) => [p.part_id, p.serial_number]));
  return h("section", { class: "card", "aria-labelledby": "parts-title" },
    h("h2", { id: "parts-title" }, "Parts"),
    table([
      { label: "Serial", cell: (p) => p.serial_number },
      { label: "Type", cell: (p) => p.part_type?.name ?? p.part_type_id },
      { label: "Maker", cell: (p) => p.manufacturer ?? "–" },
      { label: "Since", cell: (p) => shortTime(p.date_added) },
    ], parts),
    h("h3", {}, "Swap history"),
    table([
      { label: "Part", cell: (l) => serial.get(l.part_id) ?? `part ${l.part_id}` },
      { label: "Attached", cell: (l) => shortTime(l.date_added) },
      { label: "Detached", cell: (l) => (l.date_removed ? shortTime(l.date_removed) : "on the unit") },
    ], links));
}

// The timeline, the as-of panel and the diff panel; re-run after a parameter is set.
async function timelineSection(card, ctx) {
  const { imei, params } = ctx;
  const cursor = { at: params.get("at") || "", from: params.get("from") || "", to: params.get("to") || "" };
  const history = await api.get(`products/${encodeURIComponent(imei)}/parameters/history`);
  const laneList = lanes(history.data, ctx.typeNames, ctx.partLabels);
  const at = h("input", { type: "datetime-local", step: "0.001", value: toInput(cursor.at) });
  const from = h("input", { type: "datetime-local", step: "0.001", value: toInput(cursor.from) });
  const to = h("input", { type: "datetime-local", step: "0.001", value: toInput(cursor.to) });
  const chart = h("div", { class: "chart", id: "timeline", role: "img", "aria-label": `Parameter timeline of unit ${imei}: one lane per parameter type` });
  const asOf = h("div", { id: "as-of-panel", "aria-live": "polite" });
  const diff = h("div", { id: "diff-panel", "aria-live": "polite" });
  const rows = laneList.reduce((n, l) => n + l.rows.length, 0);
  const atForm = h("form", { class: "timeline-controls", "aria-label": "Parameter set at an instant" },
    field("As of (UTC)", at, "or click the chart"), h("button", { type: "submit" }, "Show set in force"));
  const diffForm = h("form", { class: "timeline-controls", "aria-label": "Compare two instants" },
    field("From (UTC)", from), field("To (UTC)", to), h("button", { type: "submit" }, "Compare"));
  clear(card,
    h("h2", { id: "timeline-title" }, "Parameter timeline"),
    h("p", { class: "muted small" }, `${rows} rows in ${laneList.length} lanes. Bars: values in force (green: now, blue: replaced); orange strip: pending since set; ×: expired before the unit took it.`),
    chart, h("div", { class: "grid controls" }, atForm, diffForm), asOf, diff);

  const sync = () => {
    const next = new URLSearchParams(params);
    for (const key of ["at", "from", "to"]) {
      if (cursor[key]) next.set(key, cursor[key]);
      else next.delete(key);
    }
    replaceState("unit", imei, next);
  };
  const showAsOf = async () => {
    sync();
    moveCursor(chart, cursor);
    if (!cursor.at) return clear(asOf);
    clear(asOf, h("p", { class: "muted" }, "Asking the API…"));
    try {
      const answer = await api.get(`products/${encodeURIComponent(imei)}/parameters/history`, { date: cursor.at });
      clear(asOf, h("h3", {}, "In force at ", h("time", { id: "as-of-instant" }, cursor.at.replace("T", " "))), h("p", { class: "muted small" }, answer.message), asOfTable(answer.data, ctx));
    } catch (err) {
      clear(asOf, message("error", err.message));
    }
  };
  const showDiff = async () => {
    sync();
    moveCursor(chart, cursor);
    if (!cursor.from || !cursor.to) return clear(diff);
    try {
      const answer = await api.get(`products/${encodeURIComponent(imei)}/parameters/diff`, { from: cursor.from, to: cursor.to });
      clear(diff, h("h3", {}, "Changes"), h("p", { class: "muted small" }, answer.message), diffTable(answer.data, ctx));
    } catch (err) {
      clear(diff, message("error", err.message));
    }
  };
  atForm.addEventListener("submit", (e) => { e.preventDefault(); cursor.at = at.value; showAsOf(); });
  diffForm.addEventListener("submit", (e) => { e.preventDefault(); cursor.from = from.value; cursor.to = to.value; showDiff(); });
  const pick = (instant) => {
    cursor.at = instant;
    at.value = toInput(instant);
    showAsOf();
  };
  if (laneList.length) await drawTimeline(chart, laneList, cursor, pick);
  else clear(chart, h("p", { class: "muted" }, "No parameter has been set on this unit or its parts."));
  await Promise.all([cursor.at ? showAsOf() : null, cursor.from && cursor.to ? showDiff() : null]);
}

function flatten(data, ctx) {
  const out = data.product_parameters.map((r) => ({ lane: laneLabel(null, r.parameter_type_id, ctx.typeNames, ctx.partLabels), row: r }));
  for (const [partId, rows] of Object.entries(data.part_parameters)) {
    for (const r of rows) out.push({ lane: laneLabel(partId, r.parameter_type_id, ctx.typeNames, ctx.partLabels), row: r });
  }
  return out;
}

function asOfTable(data, ctx) {
  const rows = flatten(data, ctx);
  return h("div", { class: "table-wrap" }, h("table", { id: "as-of" },
    h("thead", {}, h("tr", {}, ["Parameter", "Value", "Active since"].map((c) => h("th", { scope: "col" }, c)))),
    h("tbody", {}, rows.length ? rows.map(({ lane, row }) => h("tr", {}, h("td", {}, lane), h("td", {}, row.value), h("td", {}, shortTime(row.date_added))))
      : h("tr", {}, h("td", { colspan: 3, class: "muted" }, "Nothing was in force")))));
}

function diffTable(data, ctx) {
  const rows = [];
  const add = (partId, changes) => {
    const lane = (id) => laneLabel(partId, id, ctx.typeNames, ctx.partLabels);
    for (const r of changes.added) rows.push([lane(r.parameter_type_id), "added", "–", r.value]);
    for (const r of changes.removed) rows.push([lane(r.parameter_type_id), "removed", r.value, "–"]);
    for (const c of changes.changed) rows.push([lane(c.parameter_type_id), "changed", c.from.value, c.to.value]);
  };
  add(null, data.product_parameters);
  for (const [partId, changes] of Object.entries(data.part_parameters)) add(partId, changes);
  return h("div", { class: "table-wrap" }, h("table", { id: "diff" },
    h("thead", {}, h("tr", {}, ["Parameter", "Change", "Before", "After"].map((c) => h("th", { scope: "col" }, c)))),
    h("tbody", {}, rows.length ? rows.map((r) => h("tr", { class: `diff-${r[1]}` }, r.map((c) => h("td", {}, c)))) : h("tr", {}, h("td", { colspan: 4, class: "muted" }, "No change")))));
}

