// Element building without innerHTML: every text from the API is set as text, never parsed.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "value") el.value = value;
    else el.setAttribute(key, value === true ? "" : value);
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
}

export function clear(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

let ids = 0;
export function uid(prefix = "f") {
  ids += 1;
  return `${prefix}-${ids}`;
}

// A labelled form control: <div class="field"><label for>…</label>control<p error></p></div>
export function field(label, control, hint) {
  control.id ||= uid();
  const error = h("p", { class: "field-error", id: `${control.id}-error`, role: "alert" });
  const described = [error.id];
  let hintEl = null;
  if (hint) {
    hintEl = h("p", { class: "hint", id: `${control.id}-hint` }, hint);
    described.push(hintEl.id);
  }
  control.setAttribute("aria-describedby", described.join(" "));
  const wrap = h("div", { class: "field" }, h("label", { for: control.id }, label), control, hintEl, error);
  wrap.error = error;
  return wrap;
}

export function table(columns, rows, { caption, className } = {}) {
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      { class: className },
      caption ? h("caption", {}, caption) : null,
      h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col" }, c.label)))),
      h(
        "tbody",
        {},
        rows.length
          ? rows.map((row) => h("tr", {}, columns.map((c) => h("td", { "data-label": c.label }, c.cell(row)))))
          : h("tr", {}, h("td", { colspan: columns.length, class: "muted" }, "None")),
      ),
    ),
  );
}

export function message(kind, text) {
  return h("p", { class: `message ${kind}`, role: kind === "error" ? "alert" : "status" }, text);
}

// Instants: the API speaks UTC without zone; the console shows and takes UTC.
export function shortTime(iso) {
  return iso ? iso.replace("T", " ").slice(0, 19) : "–";
}

export function utcNowIso() {
  return new Date().toISOString().replace("Z", "");
}

// "2026-11-20T18:30:00" from a datetime-local input (taken as UTC) and back.
export function toInput(iso) {
  return iso ? iso.slice(0, 19) : "";
}
