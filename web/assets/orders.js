// Orders: place one or buy a movie, follow its status (asynchronous request-reply: GET order_url until stored,
// confirmed or rejected), and list the caller's own orders.

import { api } from "./api.js";
import { $, fail, h, say, sleep } from "./ui.js";

const WATCH_MS = 60000;
let nextCursor = null;

async function placeOrder(event) {
  event.preventDefault();
  const json = {
    user_id: $("order-user").value.trim(),
    number_of_items: $("order-items").value.trim(),
    total_amount: $("order-amount").value.trim(),
    priority: $("order-priority").value,
  };
  const { body } = await api("/api/billing", { method: "POST", json });
  showOrder(`Order accepted (id ${body.message_id}); status: queued`, "queued");
  say("Order accepted; waiting for billing to store it…");
  await watch(body.order_url, body.message_id);
}

/** Buy one copy of `movie` at its listed price (a purchase: the saga reserves the stock, then billing confirms
 * or rejects it); resolves when the purchase is settled. */
export async function buy(movie) {
  const json = {
    user_id: $("order-user").value.trim() || "web", movie_id: movie.id, quantity: 1, total_amount: movie.price,
  };
  const { body } = await api("/api/billing", { method: "POST", json });
  showOrder(`Purchase of “${movie.title}” accepted (id ${body.message_id}); status: pending`, "pending");
  say(`Buying “${movie.title}”…`);
  await watch(body.order_url, body.message_id);
}

function showOrder(text, state) {
  const result = $("order-result");
  result.textContent = text;
  result.dataset.state = state;
}

async function watch(orderUrl, id) {
  const deadline = Date.now() + WATCH_MS;
  while (Date.now() < deadline) {
    const { body, response } = await api(orderUrl);
    if (body.status === "stored") {
      showOrder(`Order ${id}: stored (${body.number_of_items} items, ${body.total_amount}) at ${when(body.stored_at)}`,
        "stored");
      say("Order stored.");
      await loadOrders();
      return;
    }
    if (body.status === "confirmed") {
      showOrder(`Order ${id}: confirmed (${body.quantity} × ${body.unit_price} = ${body.total_amount})`, "confirmed");
      say("Purchase confirmed.");
      await loadOrders();
      return;
    }
    if (body.status === "rejected") {
      showOrder(`Order ${id}: rejected: ${body.reason}`, "rejected");
      fail(`Order rejected: ${body.reason}`);
      return;
    }
    const retry = Number(response.headers.get("Retry-After")) || 1;
    await sleep(Math.min(retry, 5) * 1000);
  }
  showOrder(`Order ${id}: still not settled after ${WATCH_MS / 1000} s (see My orders later)`, "queued");
}

/** A timestamp of the API (ISO 8601) in the reader's own locale and time zone. */
function when(timestamp) {
  return timestamp ? new Date(timestamp).toLocaleString() : "";
}

function orderRow(order) {
  return h("tr", {},
    h("td", {}, when(order.stored_at || order.rejected_at)),
    h("td", {}, String(order.number_of_items ?? order.quantity ?? "")),
    h("td", {}, order.total_amount ?? ""),
    h("td", {}, order.user_id ?? ""),
    h("td", {}, order.status),
    h("td", {}, order.invoice_url ? invoiceButton(order) : ""),
  );
}

/** "Invoice link": asks the API for a presigned download (valid a few minutes) and puts a link in its place.
 * The API is asked for JSON: a fetch cannot follow its redirect to the bucket (another origin, no CORS). */
function invoiceButton(order) {
  const button = h("button", { type: "button" }, "Invoice link",
    h("span", { class: "visually-hidden" }, ` for order ${order.order_id}`));
  button.addEventListener("click", () => api(order.invoice_url).then(({ body }) => {
    const minutes = Math.round(body.expires_in / 60);
    button.replaceWith(h("a", { href: body.url, target: "_blank", rel: "noopener" },
      `Invoice PDF (link valid ${minutes} min)`));
    say(`Invoice link for order ${order.order_id} ready.`);
  }).catch(fail));
  return button;
}

/** First page of the caller's orders (or the next one, with `more`). */
export async function loadOrders(more = false) {
  const query = new URLSearchParams({ limit: "10" });
  if (more && nextCursor) query.set("cursor", nextCursor);
  const { body } = await api(`/api/orders?${query}`);
  const rows = body.orders.map(orderRow);
  if (more) $("orders-body").append(...rows);
  else $("orders-body").replaceChildren(...rows);
  nextCursor = body.next_cursor;
  $("orders-more").hidden = !nextCursor;
}

/** Wire the order forms; `customer` prefills the customer id (the signed-in user's). */
export function setUpOrders(customer) {
  if (customer && !$("order-user").value) $("order-user").value = customer;
  const run = (action) => action().catch(fail);
  $("order-form").addEventListener("submit", (event) => run(() => placeOrder(event)));
  $("orders-refresh").addEventListener("click", () => run(() => loadOrders()));
  $("orders-more").addEventListener("click", () => run(() => loadOrders(true)));
}
