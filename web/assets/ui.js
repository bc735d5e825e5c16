// Small DOM helpers: elements are built with createElement/textContent only (no innerHTML: API data is text).

export const $ = (id) => document.getElementById(id);

/** An element with attributes and children (strings become text nodes). */
export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === false || value === null || value === undefined) continue;
    if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
    else if (name === "dataset") Object.assign(element.dataset, value);
    else element.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined && child !== false) {
      element.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
  }
  return element;
}

/** A status message for everyone (the polite live region). */
export function say(message) {
  $("alert").hidden = true;
  $("alert").textContent = "";
  $("status").textContent = message;
}

/** An error message (the assertive alert region): status and the API's JSON error body, never swallowed. */
export function fail(error) {
  const text = error && error.status !== undefined ? describe(error) : String(error && error.message || error);
  $("status").textContent = "";
  const alert = $("alert");
  alert.textContent = text;
  alert.hidden = false;
  return text;
}

function describe(error) {
  const body = typeof error.body === "string" ? error.body : JSON.stringify(error.body);
  return `${error.status} ${error.statusText || ""}: ${body || "(no body)"}`.replace(/\s+:/, ":");
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
