// The only module that calls fetch(): the user's token, the API's errors, building URLs and q.
// Permissions, scope and validation are the API's; this module only carries its answers.

const KEY = "solarfleet.console.session";
let onExpired = () => {};

export class ApiError extends Error {
  constructor(status, message, body) {
    super(message);
    this.status = status;
    this.body = body;
  }
}

export function session() {
  try {
    return JSON.parse(localStorage.getItem(KEY)) || null;
  } catch {
    return null;
  }
}

function setSession(value) {
  if (value) localStorage.setItem(KEY, JSON.stringify(value));
  else localStorage.removeItem(KEY);
}

// Called with no argument when the API answers 401: the app sends the user to sign-in.
export function whenExpired(callback) {
  onExpired = callback;
}

export function url(path, params = {}) {
  const u = new URL(`/v1/${path}`, location.origin);
  for (const [key, value] of Object.entries(params)) {
    if (value === undefined || value === null || value === "") continue;
    u.searchParams.set(key, typeof value === "string" ? value : JSON.stringify(value));
  }
  return u;
}

export async function request(method, path, { params, body, signal } = {}) {
  const s = session();
  const headers = { Accept: "application/json" };
  if (s) headers.Authorization = `Token token=${s.token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  for (let attempt = 0; ; attempt++) {
    response = await fetch(url(path, params), {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal,
    });
    // The API caps one user's lists in flight (429 with Retry-After): a screen that asks for
    // several at once waits its turn, a few times, rather than showing the refusal.
    if (response.status !== 429 || attempt >= 5 || path === "auth/login") break;
    const wait = Number(response.headers.get("Retry-After")) || 1;
    await new Promise((resolve) => setTimeout(resolve, wait * 1000));
  }
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!response.ok) {
    const msg = (data && typeof data.message === "string" && data.message) || `${response.status} ${response.statusText}`;
    if (response.status === 401 && s && path !== "auth/login") {
      setSession(null);
      onExpired();
    }
    throw new ApiError(response.status, msg, data);
  }
  return data;
}

export const get = (path, params, options = {}) => request("GET", path, { ...options, params });
export const post = (path, body) => request("POST", path, { body });
export const put = (path, body) => request("PUT", path, { body });

export async function signIn(username, password) {
  const answer = await post("auth/login", { username, password });
  const user = answer.message.login_successful;
  setSession({ token: user.API_token, user });
  return user;
}

// Revokes the token at the API, then forgets it (forgotten even if the API cannot be reached).
export async function signOut() {
  try {
    await post("auth/logout");
  } finally {
    setSession(null);
  }
}

// A list endpoint's page: {num_results, objects, page, total_pages}.
export function list(resource, { q, page = 1, perPage = 10, signal } = {}) {
  return get(resource, { q: q && Object.keys(q).length ? q : undefined, page, results_per_page: perPage }, { signal });
}

// Every row of a list, page by page (at most 1000 a page); onPage(pageNo, totalPages, rows).
export async function* pages(resource, q, perPage = 1000) {
  let page = 1;
  for (;;) {
    const answer = await list(resource, { q, page, perPage });
    yield answer;
    if (page >= answer.total_pages) return;
    page += 1;
  }
}

// The same request as a curl command; the token shown as $TOKEN unless withToken.
export function curl(path, params, withToken = false) {
  const token = withToken && session() ? session().token : "$TOKEN";
  const parts = [`curl -s -G '${new URL(`/v1/${path}`, location.origin)}'`, `-H 'Authorization: Token token=${token}'`];
  for (const [key, value] of Object.entries(params)) {
    if (value === undefined || value === null || value === "") continue;
    const text = typeof value === "string" ? value : JSON.stringify(value);
    parts.push(`--data-urlencode '${key}=${text.replaceAll("'", "'\\''")}'`);
  }
  return parts.join(" \\\n     ");
}
