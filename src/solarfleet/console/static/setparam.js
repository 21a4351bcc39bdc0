// Setting a parameter: the form knows the type's data_type and validation_rules (shown as hints
// and as the control's kind) but does not refuse anything itself: the API decides, and its 400
// message is shown next to the value.

import * as api from "./api.js";
import { field, h, message } from "./dom.js";

function rulesHint(type) {
  const r = type.validation_rules || {};
  const bits = [type.data_type];
  if (r.min !== undefined) bits.push(`min ${r.min}`);
  if (r.max !== undefined) bits.push(`max ${r.max}`);
  if (r.choices) bits.push(`one of ${r.choices.join(", ")}`);
  if (r.pattern) bits.push(`matches ${r.pattern}`);
  if (r.max_length !== undefined) bits.push(`at most ${r.max_length} characters`);
  if (type.units) bits.push(`in ${type.units}`);
  return bits.join(" · ");
}

function valueControl(type) {
  const rules = (type && type.validation_rules) || {};
  if (type && type.data_type === "bool") {
    return h("select", { name: "value" }, h("option", { value: "true" }, "True"), h("option", { value: "false" }, "False"));
  }
  if (rules.choices) return h("select", { name: "value" }, rules.choices.map((c) => h("option", { value: String(c) }, String(c))));
  const kind = type && (type.data_type === "int" || type.data_type === "float") ? "number" : "text";
  const input = h("input", { name: "value", type: kind, inputmode: kind === "number" ? "decimal" : undefined, autocomplete: "off" });
  if (kind === "number") input.step = type.data_type === "int" ? "1" : "any";
  if (type && type.data_type === "datetime") input.placeholder = "2026-11-30T12:00:00";
  return input;
}

// The value as the API's JSON wants it for the type (numbers as numbers, bools as bools); text
// that is not a number is sent as typed, so the API names what is wrong with it.
function typed(type, raw) {
  if (!type) return raw;
  if (type.data_type === "bool") return raw === "true";
  if ((type.data_type === "int" || type.data_type === "float") && raw.trim() !== "" && Number.isFinite(Number(raw))) return Number(raw);
  return raw;
}

export function setForm(ctx, onSet) {
  const card = h("section", { class: "card", id: "set-parameter", "aria-labelledby": "set-title" });
  const target = h("select", { name: "target" },
    h("option", { value: "unit" }, `This unit (${ctx.imei})`),
    ctx.parts.map((p) => h("option", { value: `part:${p.part_id}` }, `Part ${p.serial_number} (${p.part_type?.name ?? p.part_type_id})`)));
  const typeSelect = h("select", { name: "parameter_type_id" });
  const typeField = field("Parameter", typeSelect);
  let valueField = field("Value", valueControl(null));
  const status = h("div", { class: "status" });
  const submit = h("button", { type: "submit" }, "Set (pending until the unit confirms)");
  const form = h("form", { novalidate: true }, field("Set on", target), typeField, valueField, h("div", { class: "actions" }, submit), status);
  card.append(h("h2", { id: "set-title" }, "Set a parameter"), form);

  let partTypes = null;
  const allowedFor = async (value) => {
    if (value === "unit") return ctx.productType ? ctx.productType.parameter_types : [...ctx.typeById.keys()];
    if (!partTypes) {
      const ids = [...new Set(ctx.parts.map((p) => p.part_type_id))];
      const answer = await api.list("part_types", { q: { filters: [{ name: "part_type_id", op: "in", val: ids }] }, perPage: 1000 });
      partTypes = new Map(answer.objects.map((t) => [t.part_type_id, t]));
    }
    const part = ctx.parts.find((p) => `part:${p.part_id}` === value);
    return partTypes.get(part.part_type_id)?.parameter_types ?? [];
  };
  const chooseType = () => {
    const type = ctx.typeById.get(Number(typeSelect.value));
    const next = field("Value", valueControl(type), type ? rulesHint(type) : undefined);
    valueField.replaceWith(next);
    valueField = next;
  };
  const chooseTarget = async () => {
    const allowed = (await allowedFor(target.value)).map((id) => ctx.typeById.get(id)).filter(Boolean);
    typeSelect.replaceChildren(...allowed.sort((a, b) => a.name.localeCompare(b.name)).map((t) => h("option", { value: t.parameter_type_id }, `${t.name}${t.units ? ` (${t.units})` : ""}`)));
    submit.disabled = !allowed.length;
    if (!allowed.length) typeSelect.append(h("option", { value: "" }, "No parameter type for this target"));
    chooseType();
  };
  target.addEventListener("change", chooseTarget);
  typeSelect.addEventListener("change", chooseType);
  chooseTarget();

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const control = valueField.querySelector("[name=value]");
    const type = ctx.typeById.get(Number(typeSelect.value));
    valueField.classList.remove("invalid");
    valueField.error.textContent = "";
    control.removeAttribute("aria-invalid");
    status.replaceChildren();
    const path = target.value === "unit" ? `products/${encodeURIComponent(ctx.imei)}/parameters` : `parts/${target.value.slice(5)}/parameters`;
    submit.disabled = true;
    try {
      const answer = await api.post(path, { parameter_type_id: Number(typeSelect.value), value: typed(type, control.value) });
      status.append(message("ok", answer.message));
      await onSet();
    } catch (err) {
      if (err.status === 401) throw err;
      valueField.classList.add("invalid");
      valueField.error.textContent = err.message;
      control.setAttribute("aria-invalid", "true");
      control.focus();
    } finally {
      submit.disabled = false;
    }
  });
  return card;
}
