// The fleet screen: /v1/products paginated by the server, sortable, filtered by the builder's q;
// shows the q it sent and the same request as curl; exports the whole filtered set as CSV.

import * as api from "./api.js";
import { hashFor } from "./app.js";
import { clear, h, message, shortTime } from "./dom.js";
import { builder, fromFilters, toFilters } from "./filters.js";

const FIELDS = [
  "product_imei", "serial_number", "product_type_id", "imsi", "iccid", "current_enable_flag",
  "desired_enable_flag", "gps_lat", "gps_lon", "created_at", "created_by", "modified_at",
  "product_type__name", "product_type__erp_code", "entities__name", "entities__entity_id",
  "parts__serial_number", "parts__manufacturer", "parts__part_type_id",
];
const COLUMNS = [
  { field: "product_imei", label: "IMEI", cell: (u) => h("a", { href: hashFor("unit", u.product_imei) }, u.product_imei) },
  { field: "serial_number", label: "Serial", cell: (u) => u.serial_number },
  { field: "product_type_id", label: "Type", cell: (u, types) => types.get(u.product_type_id) ?? u.product_type_id },
  { field: "current_enable_flag", label: "Enabled", cell: (u) => flag(u.current_enable_flag, u.desired_enable_flag) },
  { field: "gps_lat", label: "Lat", cell: (u) => u.gps_lat ?? "–" },
  { field: "gps_lon", label: "Lon", cell: (u) => u.gps_lon ?? "–" },
  { field: "created_at", label: "Created (UTC)", cell: (u) => shortTime(u.created_at) },
];
const CSV_FIELDS = ["product_imei", "serial_number", "product_type_id", "imsi", "iccid", "current_enable_flag", "desired_enable_flag", "gps_lat", "gps_lon", "created_at", "created_by", "modified_at", "modified_by"];
const PAGE_SIZES = [10, 25, 50, 100];

function flag(current, desired) {
  const text = current ? "yes" : "no";
  return current === desired ? text : `${text} → ${desired ? "yes" : "no"}`;
}

let typeNames = null; // product_type_id -> name, read once per page load
async function productTypes() {
  if (!typeNames) {
    const answer = await api.list("product_types", { perPage: 1000 });
    typeNames = new Map(answer.objects.map((t) => [t.product_type_id, t.name]));
  }
  return typeNames;
}

function readState(params) {
  let q = {};
  let problem = null;
  if (params.get("q")) {
    try {
      q = JSON.parse(params.get("q"));
    } catch (err) {
      problem = `The q in the address is not JSON: ${err.message}`;
    }
  }
  const page = Math.max(1, parseInt(params.get("page") || "1", 10) || 1);
  const perPage = parseInt(params.get("per_page") || "25", 10) || 25;
  return { q, page, perPage, problem };
}

function go(q, page, perPage) {
  const params = new URLSearchParams();
  if (q && Object.keys(q).length) params.set("q", JSON.stringify(q));
  if (page > 1) params.set("page", String(page));
  if (perPage !== 25) params.set("per_page", String(perPage));
  location.hash = hashFor("fleet", "", params);
}

export async function render(main, { params }) {
  const state = readState(params);
  const q = state.q && typeof state.q === "object" && !Array.isArray(state.q) ? state.q : {};
  const top = fromFilters(q.filters);
  const preview = h("code", { id: "q-preview" });
  const showPreview = () => { preview.textContent = JSON.stringify(buildQ()); };
  const buildQ = () => {
    const next = { ...q };
    const filters = toFilters(top);
    if (filters.length) next.filters = filters;
    else delete next.filters;
    return next;
  };
  const form = h("form", { class: "card filters", "aria-labelledby": "filter-title" },
    h("h2", { id: "filter-title" }, "Filter"),
    builder(top, FIELDS, showPreview),
    h("p", { class: "muted small" }, "q to send: ", preview),
    h("div", { class: "actions" },
      h("button", { type: "submit" }, "Apply"),
      h("button", { type: "button", onclick: () => go({}, 1, state.perPage) }, "Clear")));
  form.addEventListener("submit", (e) => { e.preventDefault(); go(buildQ(), 1, state.perPage); });
  showPreview();

  const results = h("section", { class: "card", "aria-labelledby": "units-title", "aria-live": "polite" });
  main.append(h("h1", {}, "Fleet"), form, results);
  if (state.problem) return results.append(message("error", state.problem));

  results.append(h("h2", { id: "units-title" }, "Units"), h("p", { class: "muted" }, "Loading…"));
  const requestParams = { q: Object.keys(q).length ? q : undefined, page: state.page, results_per_page: state.perPage };
  let page;
  let types;
  try {
    [page, types] = await Promise.all([api.list("products", { q, page: state.page, perPage: state.perPage }), productTypes()]);
  } catch (err) {
    clear(results, h("h2", { id: "units-title" }, "Units"), message("error", err.message), requestBox(requestParams));
    if (err.status === 401) throw err;
    return;
  }
  const order = (q.order_by && q.order_by[0]) || { field: "product_imei", direction: "asc" };
  const sortBy = (field) => {
    const direction = order.field === field && order.direction === "asc" ? "desc" : "asc";
    go({ ...q, order_by: [{ field, direction }] }, 1, state.perPage);
  };
  const headers = COLUMNS.map((c) => {
    const sorted = order.field === c.field;
    return h("th", { scope: "col", "aria-sort": sorted ? (order.direction === "asc" ? "ascending" : "descending") : "none" },
      h("button", { type: "button", class: "sort", onclick: () => sortBy(c.field) }, c.label, sorted ? (order.direction === "asc" ? " ▲" : " ▼") : ""));
  });
  const body = page.objects.map((u) => h("tr", { dataset: { imei: u.product_imei } }, COLUMNS.map((c) => h("td", { "data-label": c.label }, c.cell(u, types)))));
  clear(results,
    h("h2", { id: "units-title" }, "Units"),
    h("p", { class: "summary" }, h("strong", { id: "num-results" }, String(page.num_results)), ` unit${page.num_results === 1 ? "" : "s"} match · page ${page.page} of ${Math.max(page.total_pages, 1)}`),
    h("div", { class: "table-wrap" }, h("table", { id: "units", class: "units" }, h("thead", {}, h("tr", {}, headers)),
      h("tbody", {}, body.length ? body : h("tr", {}, h("td", { colspan: COLUMNS.length, class: "muted" }, "No unit matches"))))),
    pager(page, state, q),
    exporter(q, page.num_results),
    requestBox(requestParams));
  document.getElementById("units").dataset.shown = performance.now().toFixed(1); // ms since navigation
}

function pager(page, state, q) {
  const sizeId = "page-size";
  const size = h("select", { id: sizeId, onchange: (e) => go(q, 1, parseInt(e.target.value, 10)) },
    PAGE_SIZES.map((n) => h("option", { value: n, selected: n === state.perPage }, n)));
  return h("nav", { class: "pager", "aria-label": "Pages" },
    h("button", { type: "button", disabled: state.page <= 1, onclick: () => go(q, state.page - 1, state.perPage) }, "‹ Previous"),
    h("span", {}, `Page ${page.page} of ${Math.max(page.total_pages, 1)}`),
    h("button", { type: "button", disabled: state.page >= page.total_pages, onclick: () => go(q, state.page + 1, state.perPage) }, "Next ›"),
    h("label", { for: sizeId }, "Per page"), size);
}

function requestBox(params) {
  const command = api.curl("products", params);
  const copied = h("span", { class: "muted small", role: "status" });
  const copy = async (withToken) => {
    try {
      await navigator.clipboard.writeText(api.curl("products", params, withToken));
      copied.textContent = "Copied";
    } catch {
      copied.textContent = "Select the text and copy it";
    }
  };
  return h("details", { class: "request", open: true },
    h("summary", {}, "The request"),
    h("p", { class: "small" }, "q sent: ", h("code", { id: "q-sent" }, params.q ? JSON.stringify(params.q) : "(none)")),
    h("pre", { id: "curl" }, command),
    h("div", { class: "actions" },
      h("button", { type: "button", onclick: () => copy(false) }, "Copy curl"),
      h("button", { type: "button", onclick: () => copy(true) }, "Copy with my token"),
      copied));
}

function csvCell(value) {
  if (value === null || value === undefined) return "";
  const text = typeof value === "object" ? JSON.stringify(value) : String(value);
  return /[",\n\r]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

// Every page of the filtered set (1000 rows a request), kept as Blob parts, then saved.
function exporter(q, total) {
  const progress = h("progress", { id: "export-progress", max: Math.max(total, 1), value: 0, hidden: true });
  const status = h("span", { id: "export-status", class: "small", role: "status" });
  const button = h("button", { type: "button", id: "export" }, "Export CSV");
  button.addEventListener("click", async () => {
    button.disabled = true;
    progress.hidden = false;
    const parts = [CSV_FIELDS.join(",") + "\n"];
    let rows = 0;
    try {
      const { order_by: orderBy, ...rest } = q;
      const stable = { ...rest, order_by: orderBy || [{ field: "product_imei", direction: "asc" }] };
      for await (const answer of api.pages("products", stable)) {
        parts.push(answer.objects.map((u) => CSV_FIELDS.map((f) => csvCell(u[f])).join(",")).join("\n") + (answer.objects.length ? "\n" : ""));
        rows += answer.objects.length;
        progress.max = Math.max(answer.num_results, 1);
        progress.value = rows;
        status.textContent = `${rows} of ${answer.num_results} rows (page ${answer.page} of ${answer.total_pages})`;
      }
      const link = h("a", { href: URL.createObjectURL(new Blob(parts, { type: "text/csv" })), download: "units.csv" });
      document.body.append(link);
      link.click();
      link.remove();
      status.textContent = `${rows} rows exported`;
    } catch (err) {
      status.textContent = `Export stopped: ${err.message}`;
    } finally {
      button.disabled = false;
    }
  });
  return h("div", { class: "actions export" }, button, progress, status);
}
