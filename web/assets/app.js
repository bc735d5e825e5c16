// The web front end: reads /config.json, completes or starts the sign-in, then shows movies and orders.

import { whenUnauthorized } from "./api.js";
import { claims, completeSignIn, forget, signIn, signOut, tokens } from "./auth.js";
import { loadMovies, setUpMovies } from "./movies.js";
import { loadOrders, setUpOrders } from "./orders.js";
import { $, fail, say } from "./ui.js";

let config = null;

function showSignedOut(message) {
  $("app").hidden = true;
  $("signed-out").hidden = false;
  $("sign-in").hidden = false;
  $("sign-out").hidden = true;
  $("who").textContent = "";
  if (message) fail(message);
}

async function showSignedIn(current) {
  const idClaims = claims(current.id_token || "");
  const accessClaims = claims(current.access_token);
  const name = idClaims["cognito:username"] || accessClaims.username || accessClaims.sub || "signed in";
  $("who").textContent = `Signed in as ${name}`;
  $("signed-out").hidden = true;
  $("app").hidden = false;
  $("sign-in").hidden = true;
  $("sign-out").hidden = false;
  setUpMovies();
  setUpOrders(name);
  const main = $("main");
  main.setAttribute("aria-busy", "true");
  try {
    await loadMovies("");
    await loadOrders();
  } catch (error) {
    if (error.status !== 403 || !error.body || !String(error.body.error).includes("billing")) throw error;
    // Not a customer (no billing.write): no order forms, and say why once.
    document.body.classList.add("no-orders");
    say(`Signed in; orders are not available to you (${error.status}: ${JSON.stringify(error.body)}).`);
  } finally {
    main.setAttribute("aria-busy", "false");
  }
}

async function start() {
  const response = await fetch("/config.json");
  if (!response.ok) throw new Error(`cannot load /config.json: ${response.status}`);
  config = await response.json();
  const begin = () => signIn(config).catch(fail);
  $("sign-in").addEventListener("click", begin);
  $("sign-in-main").addEventListener("click", begin);
  $("sign-out").addEventListener("click", () => signOut(config));
  whenUnauthorized((error) => {
    forget();
    showSignedOut(`Your session has ended (${error.status}: ${JSON.stringify(error.body)}). Sign in again.`);
  });

  let current = null;
  try {
    current = (await completeSignIn(config)) || tokens();
  } catch (error) {
    showSignedOut(error.message);
    return;
  }
  if (!current) {
    showSignedOut();
    return;
  }
  say("Signed in.");
  await showSignedIn(current);
}

start().catch(fail);
