// The rollouts screen: #/rollouts?page=N lists /v1/parameter_rollouts (newest first, counts as a
// stacked bar); #/rollouts/<id>?page=N shows one rollout (state, reason, phase, counts per phase,
// events) and its units, with pause / resume / cancel. Who may press them is the API's decision:
// its refusal is shown as it answers. Both views refresh themselves while a rollout runs.

import * as api from "./api.js";
import { hashFor } from "./app.js";
import { clear, h, message, shortTime, table } from "./dom.js";

const STATES = [
  ["confirmed", "Confirmed", "#067647"],
  ["pending", "Pending", "#0b6bcb"],
  ["queued", "Queued", "#b9c0cc"],
  ["failed", "Failed", "#b42318"],
  ["superseded", "Superseded", "#b54708"],
  ["out_of_scope", "Out of scope", "#6b4fbb"],
];
const REFRESH_MS = 5000;
const PER_PAGE = 25;

let typeNames = null; // parameter_type_id -> name, read once per page load
async function parameterTypes() {
  if (!typeNames) {
    const answer = await api.list("parameter_types", { perPage: 1000 }).catch(() => ({ objects: [] }));
    typeNames = new Map(answer.objects.map((t) => [t.parameter_type_id, t.name]));
  }
  return typeNames;
}

function typeText(r, types) {
  const name = types.get(r.parameter_type_id);
  const type = name ? `${name} (${r.parameter_type_id})` : `type ${r.parameter_type_id}`;
  return r.part_type_id ? `${type} on part type ${r.part_type_id}` : type;
}

const pageOf = (params) => Math.max(1, parseInt(params.get("page") || "1", 10) || 1);

// The counts as one bar: a segment per state, its width the state's share of the targets.
function bar(counts, targets) {
  const said = STATES.map(([key, label]) => `${label} ${counts[key] ?? 0}`).join(", ");
  return h("div", { class: "stack", role: "img", "aria-label": `${targets} units: ${said}` },
    STATES.filter(([key]) => counts[key] > 0).map(([key, label, color]) =>
      h("span", { class: "seg", dataset: { state: key }, title: `${label}: ${counts[key]}`,
        style: `width:${(100 * counts[key]) / Math.max(targets, 1)}%;background:${color}` })));
}

function legend() {
  return h("p", { class: "legend", "aria-hidden": "true" },
    STATES.map(([, label, color]) => h("span", {}, h("span", { class: "swatch", style: `background:${color}` }), label)));
}

function stateText(r) {
  return h("span", { class: `rollout-state state-${r.state}` }, r.state);
}

function pager(page, current, go, label) {
  return h("nav", { class: "pager", "aria-label": label },
    h("button", { type: "button", disabled: current <= 1, onclick: () => go(current - 1) }, "‹ Previous"),
    h("span", {}, `Page ${page.page} of ${Math.max(page.total_pages, 1)} · ${page.num_results} in all`),
    h("button", { type: "button", disabled: current >= page.total_pages, onclick: () => go(current + 1) }, "Next ›"));
}

// Re-runs load() every REFRESH_MS while it answers true and the screen is still shown; the
// returned start() resumes a stopped loop (a rollout resumed from this screen).
function keepFresh(isCurrent, load, note) {
  let running = false;
  const again = async () => {
    if (!isCurrent()) return;
    try {
      running = await load();
      if (running) setTimeout(again, REFRESH_MS);
      else note.textContent = "";
    } catch (err) {
      if (err instanceof api.ApiError && err.status === 401) return;
      note.textContent = `Refresh failed: ${err.message}; retrying.`;
      running = true;
      setTimeout(again, REFRESH_MS);
    }
  };
  const start = () => {
    if (running) return;
    running = true;
    setTimeout(again, REFRESH_MS);
  };
  return { start };
}

export async function render(main, context) {
  if (context.arg) return renderOne(main, context);
  return renderList(main, context);
}

async function renderList(main, { params, isCurrent }) {
  const current = pageOf(params);
  const go = (n) => { location.hash = hashFor("rollouts", "", new URLSearchParams(n > 1 ? { page: String(n) } : {})); };
  const q = { order_by: [{ field: "parameter_rollout_id", direction: "desc" }] };
  main.append(h("h1", {}, "Parameter rollouts"));
  const body = h("div", { id: "rollout-list" });
  const note = h("p", { class: "muted small", id: "refreshed", "aria-live": "polite" });
  main.append(h("section", { class: "card", "aria-labelledby": "list-title" },
    h("h2", { id: "list-title" }, "Newest first"), legend(), body, note));
  let listed = null;
  const load = async () => {
    const [answer, types] = await Promise.all([api.list("parameter_rollouts", { q, page: current, perPage: PER_PAGE }), parameterTypes()]);
    if (!isCurrent()) return false;
    const running = answer.objects.some((r) => r.state === "running");
    if (running) note.textContent = `A rollout is running: refreshed every ${REFRESH_MS / 1000} s (last ${new Date().toISOString().slice(11, 19)} UTC).`;
    const seen = JSON.stringify(answer);
    if (seen === listed) return running; // unchanged: the focused link or button stays focused
    listed = seen;
    clear(body,
      table([
        { label: "Rollout", cell: (r) => h("a", { href: hashFor("rollouts", String(r.parameter_rollout_id)) }, `#${r.parameter_rollout_id}`) },
        { label: "State", cell: stateText },
        { label: "Parameter", cell: (r) => typeText(r, types) },
        { label: "Value", cell: (r) => h("code", {}, r.value) },
        { label: "Targets", cell: (r) => String(r.targets) },
        { label: "Phase", cell: (r) => `${r.phase} / ${r.phases_total}` },
        { label: "Progress", cell: (r) => bar(r.counts, r.targets) },
        { label: "Created (UTC)", cell: (r) => `${shortTime(r.created_at)} · ${r.created_by ?? "–"}` },
      ], answer.objects, { className: "rollouts cards" }),
      pager(answer, current, go, "Rollout pages"));
    return running;
  };
  if (await load()) keepFresh(isCurrent, load, note).start();
}

const ACTIONS = [
  ["pause", "Pause", (s) => s === "running"],
  ["resume", "Resume", (s) => s === "paused"],
  ["cancel", "Cancel rollout", (s) => s === "running" || s === "paused"],
];

async function renderOne(main, { arg, params, isCurrent }) {
  const id = arg;
  const current = pageOf(params);
  const go = (n) => { location.hash = hashFor("rollouts", id, new URLSearchParams(n > 1 ? { page: String(n) } : {})); };
  main.append(h("p", { class: "small" }, h("a", { href: "#/rollouts" }, "‹ All rollouts")));
  const title = h("h1", {}, `Rollout #${id}`);
  const status = h("div", { id: "rollout-status" });
  const buttons = ACTIONS.map(([action, label]) =>
    h("button", { type: "button", id: `rollout-${action}`, class: action === "cancel" ? "" : "primary", hidden: true, onclick: () => act(action) }, label));
  const kpis = h("div", { class: "kpis", id: "rollout-kpis" });
  const summary = h("div", { id: "rollout-summary" });
  const phases = h("div", { id: "rollout-phases" });
  const events = h("div", { id: "rollout-events" });
  const units = h("div", { id: "rollout-units" });
  const note = h("p", { class: "muted small", id: "refreshed", "aria-live": "polite" });
  main.append(title,
    h("section", { class: "card", "aria-labelledby": "state-title" },
      h("h2", { id: "state-title" }, "State"), kpis,
      h("div", { class: "actions" }, buttons), status, note, summary),
    h("section", { class: "card", "aria-labelledby": "phases-title" }, h("h2", { id: "phases-title" }, "Phases"), phases),
    h("section", { class: "card", "aria-labelledby": "units-title" }, h("h2", { id: "units-title" }, "Units"), units),
    h("section", { class: "card", "aria-labelledby": "events-title" }, h("h2", { id: "events-title" }, "Events"), events));

  let shown = null;
  let fresh = null;
  async function act(action) {
    if (action === "cancel" && !confirm(`Cancel rollout #${id}? Its values still pending are expired; this cannot be undone.`)) return;
    buttons.forEach((b) => { b.disabled = true; });
    clear(status);
    try {
      const answer = await api.put(`parameter_rollouts/${encodeURIComponent(id)}/${action}`);
      show(answer, await parameterTypes());
      status.append(message("ok", `Rollout #${id}: ${answer.state}.`));
      await loadUnits();
      if (answer.state === "running") fresh?.start();
    } catch (err) {
      status.append(message("error", err.message));
    } finally {
      buttons.forEach((b) => { b.disabled = false; });
      if (shown) showButtons(shown.state);
    }
  }

  function showButtons(state) {
    ACTIONS.forEach(([, , allowed], i) => { buttons[i].hidden = !allowed(state); });
  }

  function show(r, types) {
    shown = r;
    showButtons(r.state);
    const kpi = (key, value, label) => h("div", { class: "kpi" }, h("div", { class: "value", id: `rollout-${key}` }, value), h("div", { class: "label" }, label));
    clear(kpis,
      kpi("state", stateText(r), "state"),
      kpi("phase", `${r.phase} / ${r.phases_total}`, "phase / phases"),
      kpi("targets", String(r.targets), "target units"),
      kpi("value", h("code", {}, r.value), typeText(r, types)));
    clear(summary,
      r.reason ? message("info", `Reason: ${r.reason}`) : null,
      h("dl", { class: "fields" },
        h("dt", {}, "Next phase (UTC)"), h("dd", {}, shortTime(r.next_phase_at)),
        h("dt", {}, "Phase started (UTC)"), h("dd", {}, shortTime(r.phase_started_at)),
        h("dt", {}, "Finished (UTC)"), h("dd", {}, shortTime(r.finished_at)),
        h("dt", {}, "Created"), h("dd", {}, `${shortTime(r.created_at)} by ${r.created_by ?? "–"}`),
        h("dt", {}, "Abort rule"), h("dd", {}, `pause when more than ${r.abort_failure_percent} % of the units tried failed (once ${r.abort_min_units} tried)`),
        h("dt", {}, "Target q"), h("dd", {}, h("code", {}, JSON.stringify(r.q)))),
      h("h3", {}, "Counts"), legend(), bar(r.counts, r.targets),
      table([
        { label: "State", cell: (s) => s[1] },
        { label: "Units", cell: (s) => h("span", { dataset: { count: s[0] } }, String(r.counts[s[0]])) },
      ], STATES, { className: "counts" }));
    clear(phases,
      table([
        { label: "Phase", cell: (p) => (p.phase === r.phase ? h("strong", {}, `${p.phase} (current)`) : String(p.phase)) },
        { label: "Units", cell: (p) => String(p.units) },
        ...STATES.map(([key, label]) => ({ label, cell: (p) => String(p.counts[key]) })),
        { label: "Progress", cell: (p) => bar(p.counts, p.units) },
      ], r.phase_counts, { className: "phases cards" }));
    clear(events,
      table([
        { label: "Event", cell: (e) => e.event },
        { label: "Reason", cell: (e) => e.reason ?? "–" },
        { label: "When (UTC)", cell: (e) => shortTime(e.created_at) },
        { label: "By", cell: (e) => e.created_by },
      ], r.events, { className: "events cards" }));
  }

  let unitsShown = null;
  async function loadUnits() {
    const answer = await api.list(`parameter_rollouts/${encodeURIComponent(id)}/units`, {
      q: { order_by: [{ field: "phase", direction: "asc" }, { field: "product_imei", direction: "asc" }] },
      page: current, perPage: PER_PAGE,
    });
    if (!isCurrent()) return;
    const seen = JSON.stringify(answer);
    if (seen === unitsShown) return; // unchanged: the focused link or button stays focused
    unitsShown = seen;
    clear(units,
      table([
        { label: "Unit", cell: (u) => h("a", { href: hashFor("unit", u.product_imei) }, u.product_imei) },
        { label: "Phase", cell: (u) => String(u.phase) },
        { label: "State", cell: (u) => h("span", { class: `target-state state-${u.state}` }, u.state) },
        { label: "Detail", cell: (u) => u.detail ?? "–" },
        { label: "Parameter row", cell: (u) => (u.product_parameter_id ?? u.part_parameter_id ?? "–").toString() },
      ], answer.objects, { className: "targets" }),
      pager(answer, current, go, "Unit pages"));
  }

  const load = async () => {
    const [rollout, types] = await Promise.all([api.get(`parameter_rollouts/${encodeURIComponent(id)}`), parameterTypes(), loadUnits()]);
    if (!isCurrent()) return false;
    show(rollout, types);
    const running = rollout.state === "running";
    if (running) note.textContent = `Running: refreshed every ${REFRESH_MS / 1000} s (last ${new Date().toISOString().slice(11, 19)} UTC).`;
    return running;
  };
  fresh = keepFresh(isCurrent, load, note);
  if (await load()) fresh.start();
}
