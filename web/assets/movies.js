// Movies: list and search (with poster thumbnails, price and stock), create, edit, delete, and the poster upload
// (valet key).

import { api, ApiError, uploadWithValetKey } from "./api.js";
import { buy } from "./orders.js";
import { $, fail, h, say, sleep } from "./ui.js";

const POSTER_TYPES = ["image/png", "image/jpeg", "image/webp"];
const POSTER_WAIT_MS = 60000;
let currentSearch = "";

/** Editing refused (403): hide the editing controls and say why. */
function refuseEditing(error) {
  document.body.classList.add("read-only");
  fail(error);
}

async function guarded(action) {
  try {
    await action();
  } catch (error) {
    if (error instanceof ApiError && error.status === 403) refuseEditing(error);
    else fail(error);
  }
}

/** Load the movies (all, or those matching the search) and show them. */
export async function loadMovies(title = currentSearch) {
  currentSearch = title;
  const path = title ? `/api/movies?title=${encodeURIComponent(title)}` : "/api/movies";
  const { body } = await api(path);
  renderMovies(body);
  return body;
}

function renderMovies(movies) {
  const list = $("movie-list");
  list.replaceChildren(...movies.map(movieItem));
  $("movie-count").textContent = `${movies.length} movie${movies.length === 1 ? "" : "s"}${
    currentSearch ? ` matching “${currentSearch}”` : ""}`;
}

function posterOf(movie) {
  if (movie.poster && movie.poster.thumbnail) {
    return h("img", { class: "thumb", src: movie.poster.thumbnail, alt: `Poster of ${movie.title}`, width: 80 });
  }
  return h("div", { class: "thumb empty", "aria-hidden": "true" }, "no poster");
}

function posterState(movie) {
  const status = movie.poster_status;
  if (!status) return null;
  if (status.state === "rejected") return h("p", { class: "poster-state rejected" }, `Poster rejected: ${status.reason}`);
  if (status.state === "pending") return h("p", { class: "poster-state" }, "Poster processing…");
  return null;
}

/** "Price 19.90 · 3 in stock", "Not for sale", ...: price and stock as the API answers them (null: not set). */
function saleText(movie) {
  const price = movie.price === null || movie.price === undefined ? "No price" : `Price ${movie.price}`;
  if (movie.stock === null || movie.stock === undefined) return `${price} · Not for sale`;
  return `${price} · ${movie.stock === 0 ? "Sold out" : `${movie.stock} in stock`}`;
}

/** True when one copy can be bought: a price and at least one in stock. */
function forSale(movie) {
  return movie.price !== null && movie.price !== undefined && Number.isInteger(movie.stock) && movie.stock > 0;
}

async function buyOne(movie) {
  await buy(movie);
  await loadMovies();
}

function movieItem(movie) {
  const fileId = `poster-file-${movie.id}`;
  return h("li", { class: "movie", dataset: { id: movie.id } },
    posterOf(movie),
    h("div", { class: "movie-text" },
      h("h3", {}, movie.title),
      movie.description ? h("p", {}, movie.description) : null,
      h("p", { class: "sale" }, saleText(movie)),
      posterState(movie),
      forSale(movie)
        ? h("div", { class: "row orders-only" },
          h("button", { type: "button", onclick: () => buyOne(movie).catch(fail) },
            "Buy 1", h("span", { class: "visually-hidden" }, ` of ${movie.title}`)))
        : null,
      h("div", { class: "row editor-only" },
        h("button", { type: "button", onclick: () => startEdit(movie) }, "Edit", h("span", { class: "visually-hidden" }, ` ${movie.title}`)),
        h("button", { type: "button", class: "danger", onclick: () => guarded(() => removeMovie(movie)) },
          "Delete", h("span", { class: "visually-hidden" }, ` ${movie.title}`)),
        h("label", { for: fileId, class: "file-label" }, "Upload poster",
          h("span", { class: "visually-hidden" }, ` for ${movie.title}`)),
        h("input", { id: fileId, type: "file", accept: POSTER_TYPES.join(","), class: "file",
          onchange: (event) => guarded(() => uploadPoster(movie, event.target)) }),
      ),
    ),
  );
}

function startEdit(movie) {
  $("movie-id").value = movie.id;
  $("movie-title").value = movie.title;
  $("movie-description").value = movie.description || "";
  $("movie-price").value = movie.price ?? "";
  $("movie-stock").value = movie.stock ?? "";
  $("movie-form-title").textContent = `Edit “${movie.title}”`;
  $("movie-submit").textContent = "Save changes";
  $("movie-cancel").hidden = false;
  $("movie-title").focus();
}

function resetForm() {
  $("movie-form").reset();
  $("movie-id").value = "";
  $("movie-form-title").textContent = "New movie";
  $("movie-submit").textContent = "Create movie";
  $("movie-cancel").hidden = true;
}

/** The stock field as the API wants it: empty = null (not for sale), digits = a JSON number; anything else is
 * sent as typed, so the API's 400 says what is wrong with it. */
function stockValue(text) {
  if (text === "") return null;
  return /^[0-9]+$/.test(text) ? Number(text) : text;
}

async function saveMovie(event) {
  event.preventDefault();
  const id = $("movie-id").value;
  const description = $("movie-description").value.trim();
  const json = {
    title: $("movie-title").value.trim(), description: description || null,
    price: $("movie-price").value.trim() || null, stock: stockValue($("movie-stock").value.trim()),
  };
  const { body } = id
    ? await api(`/api/movies/${id}`, { method: "PUT", json })
    : await api("/api/movies", { method: "POST", json });
  resetForm();
  await loadMovies();
  say(id ? `Saved “${body.title}”.` : `Created “${body.title}” (id ${body.id}).`);
}

async function removeMovie(movie) {
  await api(`/api/movies/${movie.id}`, { method: "DELETE" });
  await loadMovies();
  say(`Deleted “${movie.title}”.`);
}

/** Ask for a valet key, upload straight to the bucket, then follow the movie until the poster is done. */
async function uploadPoster(movie, input) {
  const file = input.files[0];
  input.value = "";
  if (!file) return;
  if (!POSTER_TYPES.includes(file.type)) {
    fail(`A poster must be one of ${POSTER_TYPES.join(", ")} (this file is ${file.type || "of unknown type"}).`);
    return;
  }
  say(`Uploading the poster of “${movie.title}”…`);
  const { body: grant } = await api(`/api/movies/${movie.id}/poster`, {
    method: "POST", json: { content_type: file.type },
  });
  await uploadWithValetKey(grant, file);
  say(`Poster of “${movie.title}” uploaded; processing…`);
  await loadMovies();
  const deadline = Date.now() + POSTER_WAIT_MS;
  while (Date.now() < deadline) {
    const { body: current } = await api(`/api/movies/${movie.id}`);
    const status = current.poster_status;
    if (status && status.upload_id === grant.upload_id && status.state !== "pending") {
      await loadMovies();
      if (status.state === "published") say(`Poster of “${movie.title}” published.`);
      else fail(`Poster of “${movie.title}” rejected: ${status.reason}`);
      return;
    }
    await sleep(1000);
  }
  fail(`The poster of “${movie.title}” is still processing after ${POSTER_WAIT_MS / 1000} s; reload later.`);
}

/** Wire the movie forms. */
export function setUpMovies() {
  $("search-form").addEventListener("submit", (event) => {
    event.preventDefault();
    guarded(async () => {
      const movies = await loadMovies($("search").value.trim());
      say(`${movies.length} movie${movies.length === 1 ? "" : "s"} found.`);
    });
  });
  $("search-clear").addEventListener("click", () => {
    $("search").value = "";
    guarded(() => loadMovies(""));
  });
  $("movie-form").addEventListener("submit", (event) => guarded(() => saveMovie(event)));
  $("movie-cancel").addEventListener("click", resetForm);
}
