// The shell: a hash router (#/fleet?…, #/unit/<imei>?…, #/migration, #/rollouts[/<id>]?…,
// #/login?next=…); every screen's state lives in the URL, so a view can be bookmarked, shared
// and reloaded.

import * as api from "./api.js";
import { clear, message } from "./dom.js";

const screens = {
  login: () => import("./login.js"),
  fleet: () => import("./fleet.js"),
  unit: () => import("./unit.js"),
  migration: () => import("./migration.js"),
  rollouts: () => import("./rollouts.js"),
};

export function parseHash(hash = location.hash) {
  const raw = hash.replace(/^#\/?/, "");
  const [path, query = ""] = raw.split("?");
  const [name, ...rest] = path.split("/");
  return { name: name || "fleet", arg: rest.map(decodeURIComponent).join("/"), params: new URLSearchParams(query) };
}

export function hashFor(name, arg, params) {
  const query = params && params.toString();
  return `#/${name}${arg ? `/${encodeURIComponent(arg)}` : ""}${query ? `?${query}` : ""}`;
}

// Replace the URL's state without re-rendering (the screen already shows it).
export function replaceState(name, arg, params) {
  history.replaceState(null, "", hashFor(name, arg, params));
}

function toSignIn(expired = false) {
  const here = location.hash && !location.hash.startsWith("#/login") ? location.hash : "#/fleet";
  const params = new URLSearchParams({ next: here });
  if (expired) params.set("expired", "1");
  location.hash = hashFor("login", "", params);
}

let rendering = 0;
async function route() {
  const main = document.getElementById("main");
  const { name, arg, params } = parseHash();
  const s = api.session();
  showUser(s);
  if (!s && name !== "login") return toSignIn();
  const load = screens[name] || screens.fleet;
  const ticket = ++rendering;
  document.querySelectorAll("#nav a").forEach((a) => a.setAttribute("aria-current", a.dataset.screen === name ? "page" : "false"));
  try {
    const module = await load();
    if (ticket !== rendering) return;
    clear(main);
    main.dataset.screen = name;
    await module.render(main, { arg, params, isCurrent: () => ticket === rendering });
  } catch (err) {
    if (err instanceof api.ApiError && err.status === 401) return;
    if (ticket === rendering) main.append(message("error", err.message));
    console.error(err);
  }
}

function showUser(s) {
  document.getElementById("nav").hidden = !s;
  document.getElementById("who").hidden = !s;
  document.getElementById("who-name").textContent = s ? `${s.user.username} · ${s.user.permissions} · ${s.user.user_product_visibility}` : "";
}

api.whenExpired(() => toSignIn(true));
document.getElementById("sign-out").addEventListener("click", async () => {
  try {
    await api.signOut();
  } catch (err) {
    console.warn("logout", err);
  }
  location.hash = "#/login";
});
window.addEventListener("hashchange", route);
route();
