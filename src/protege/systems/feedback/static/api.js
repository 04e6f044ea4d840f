// Shared by the studio's pages: JSON requests with the session cookie and the CSRF header, the
// header bar (user, links, sign out). Text from the server is only ever set with textContent.

let csrfToken = "";

export class HttpError extends Error {
  constructor(method, path, status) {
    super(`${method} ${path}: HTTP ${status}`);
    this.status = status;
  }
}

/** fetch + JSON; 401 sends the person to the sign-in page; null for 204. */
export async function api(path, { method = "GET", body } = {}) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET") headers["X-CSRF-Token"] = csrfToken;
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: "same-origin",
    cache: "no-store",
  });
  if (response.status === 401) {
    window.location.assign("/login");
    throw new HttpError(method, path, 401);
  }
  if (!response.ok) throw new HttpError(method, path, response.status);
  return response.status === 204 ? null : response.json();
}

/** Who is signed in: {user, role, csrf_token}; remembers the CSRF token for later requests. */
export async function whoAmI() {
  const me = await api("/api/me");
  csrfToken = me.csrf_token;
  return me;
}

export function csrf() {
  return csrfToken;
}

/** Fill the header bar: user name, the admin link for admins, the sign-out button. */
export function setupHeader(me) {
  document.getElementById("who").textContent = `${me.user} (${me.role})`;
  document.getElementById("admin-link").hidden = me.role !== "admin";
  document.getElementById("logout").addEventListener("click", async () => {
    try {
      await api("/logout", { method: "POST" });
    } finally {
      window.location.assign("/login");
    }
  });
}

/** Element helper: el("td", {className: "x"}, "text") — children given as strings become text nodes. */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  Object.assign(node, props);
  for (const child of children) node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  return node;
}

/** Does this key event belong to a text field (so hotkeys must not fire)? */
export function typing(event) {
  const target = event.target;
  if (!(target instanceof HTMLElement)) return false;
  if (target.isContentEditable || target.tagName === "TEXTAREA" || target.tagName === "SELECT") return true;
  return target.tagName === "INPUT" && !["range", "button", "checkbox", "radio"].includes(target.type);
}
