// Sign-in with the API's own users (POST /v1/auth/login); back to the page the user came from.
import * as api from "./api.js";
import { field, h, message } from "./dom.js";

export async function render(main, { params }) {
  const next = params.get("next") || "#/fleet";
  const username = h("input", { name: "username", autocomplete: "username", required: true });
  const password = h("input", { name: "password", type: "password", autocomplete: "current-password", required: true });
  const status = h("div", { class: "status" });
  const form = h(
    "form",
    { class: "card narrow", "aria-labelledby": "sign-in-title" },
    h("h1", { id: "sign-in-title" }, "Sign in"),
    params.get("expired") ? h("p", { class: "muted" }, "Your session ended; sign in to go back to where you were.") : null,
    field("Username", username),
    field("Password", password),
    h("button", { type: "submit" }, "Sign in"),
    status,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    status.replaceChildren();
    try {
      await api.signIn(username.value, password.value);
      location.hash = next.startsWith("#/") && !next.startsWith("#/login") ? next : "#/fleet";
    } catch (err) {
      status.append(message("error", err.message));
      password.select();
    }
  });
  main.append(form);
  username.focus();
}
