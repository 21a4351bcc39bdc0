// The filter builder: rows of field / operator / value in AND/OR groups, to and from the
// `filters` of SPEC §3's q. Values are sent as typed; the API coerces them to the column's type
// and answers a 400 naming anything it cannot use.

import { h, uid } from "./dom.js";

export const OPERATORS = [
  ["==", "equals"], ["!=", "differs"], [">", ">"], ["<", "<"], [">=", "≥"], ["<=", "≤"],
  ["like", "like"], ["ilike", "ilike (any case)"], ["in", "in list"], ["not_in", "not in list"],
  ["is_null", "is empty"], ["is_not_null", "is set"], ["has", "has (to-one)"], ["any", "any (to-many)"],
];
const NO_VALUE = new Set(["is_null", "is_not_null"]);
const LISTS = new Set(["in", "not_in"]);

export const row = (name = "", op = "==", val = "") => ({ type: "row", name, op, val });
export const group = (join = "and", items = []) => ({ type: "group", join, items });

function parseVal(op, text) {
  if (LISTS.has(op)) return text.split(",").map((s) => s.trim()).filter((s) => s !== "");
  if ((op === "has" || op === "any") && text.trim().startsWith("{")) {
    try {
      return JSON.parse(text);
    } catch {
      return text;
    }
  }
  return text;
}

function showVal(val) {
  if (Array.isArray(val)) return val.join(", ");
  if (val !== null && typeof val === "object") return JSON.stringify(val);
  return val === undefined || val === null ? "" : String(val);
}

function toFilter(item) {
  if (item.type === "row") {
    if (!item.name.trim()) return null;
    const f = { name: item.name.trim(), op: item.op };
    if (!NO_VALUE.has(item.op)) f.val = parseVal(item.op, item.val);
    return f;
  }
  const items = item.items.map(toFilter).filter(Boolean);
  return items.length ? { [item.join]: items } : null;
}

// The top group as q.filters: a list (AND) or a one-element list holding {"or": […]}.
export function toFilters(top) {
  const items = top.items.map(toFilter).filter(Boolean);
  if (!items.length) return [];
  return top.join === "and" ? items : [{ or: items }];
}

function fromFilter(f) {
  if (Array.isArray(f)) return group("and", f.map(fromFilter));
  if (f && Array.isArray(f.or)) return group("or", f.or.map(fromFilter));
  if (f && Array.isArray(f.and)) return group("and", f.and.map(fromFilter));
  return row(f.name ?? "", f.op ?? "==", showVal(f.val ?? f.field ?? ""));
}

export function fromFilters(filters) {
  if (!filters || (Array.isArray(filters) && !filters.length)) return group("and", [row()]);
  const top = fromFilter(Array.isArray(filters) ? filters : [filters]);
  // A lone OR group at the top is shown as the top group itself.
  if (top.join === "and" && top.items.length === 1 && top.items[0].type === "group") return top.items[0];
  return top;
}

// The builder's DOM; `onChange()` after every edit (the model is edited in place).
export function builder(top, fields, onChange) {
  const listId = uid("fields");
  const datalist = h("datalist", { id: listId }, fields.map((f) => h("option", { value: f })));
  const root = h("div", { class: "builder" }, datalist);
  const redraw = () => {
    root.replaceChildren(datalist, drawGroup(top, null));
    onChange();
  };

  function drawRow(item, parent) {
    const name = h("input", { value: item.name, list: listId, placeholder: "field, e.g. serial_number", oninput: (e) => { item.name = e.target.value; onChange(); } });
    const op = h("select", { onchange: (e) => { item.op = e.target.value; value.disabled = NO_VALUE.has(item.op); onChange(); } },
      OPERATORS.map(([v, text]) => h("option", { value: v, selected: v === item.op }, text)));
    op.value = OPERATORS.some(([v]) => v === item.op) ? item.op : "==";
    const value = h("input", { value: item.val, placeholder: "value", disabled: NO_VALUE.has(item.op), oninput: (e) => { item.val = e.target.value; onChange(); } });
    const ids = [uid("field"), uid("op"), uid("val")];
    [name.id, op.id, value.id] = ids;
    return h("div", { class: "filter-row" },
      h("label", { for: ids[0], class: "sr-only" }, "Field"), name,
      h("label", { for: ids[1], class: "sr-only" }, "Operator"), op,
      h("label", { for: ids[2], class: "sr-only" }, "Value"), value,
      h("button", { type: "button", class: "icon", "aria-label": "Remove this condition", onclick: () => { parent.items.splice(parent.items.indexOf(item), 1); redraw(); } }, "×"));
  }

  function drawGroup(g, parent) {
    const joinId = uid("join");
    const join = h("select", { id: joinId, onchange: (e) => { g.join = e.target.value; onChange(); } },
      h("option", { value: "and", selected: g.join === "and" }, "all of (AND)"),
      h("option", { value: "or", selected: g.join === "or" }, "any of (OR)"));
    return h("fieldset", { class: "group" },
      h("legend", {}, h("label", { for: joinId }, "Match "), join),
      g.items.map((item) => (item.type === "row" ? drawRow(item, g) : drawGroup(item, g))),
      h("div", { class: "group-actions" },
        h("button", { type: "button", onclick: () => { g.items.push(row()); redraw(); } }, "+ condition"),
        h("button", { type: "button", onclick: () => { g.items.push(group(g.join === "and" ? "or" : "and", [row()])); redraw(); } }, "+ group"),
        parent ? h("button", { type: "button", onclick: () => { parent.items.splice(parent.items.indexOf(g), 1); redraw(); } }, "remove group") : null));
  }

  root.append(drawGroup(top, null));
  return root;
}
