// Sign-in: OAuth 2.0 authorization code with PKCE (S256) against Cognito's managed login (locally: its
// emulation), a public client without secret, the state parameter checked on return.
//
// Tokens live in sessionStorage, not localStorage: they end with the tab, are not shared with other tabs,
// and do not outlive the browser session on a shared machine. (Any script of this origin could read either;
// the strict CSP, which allows no inline or foreign script, is what keeps other scripts out.)

const TOKENS = "movies.tokens";
const PENDING = "movies.pending-sign-in";

function base64url(bytes) {
  let text = "";
  for (const byte of new Uint8Array(bytes)) text += String.fromCharCode(byte);
  return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function randomString(bytes = 32) {
  return base64url(crypto.getRandomValues(new Uint8Array(bytes)));
}

async function challengeOf(verifier) {
  return base64url(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier)));
}

/** Where the login sends the browser back to (registered on the app client: the site's root). */
export const redirectUri = () => `${location.origin}/`;

/** Go to the managed login (a full page navigation). */
export async function signIn(config) {
  const verifier = randomString(48);
  const state = randomString(24);
  sessionStorage.setItem(PENDING, JSON.stringify({ verifier, state }));
  const query = new URLSearchParams({
    response_type: "code",
    client_id: config.auth.client_id,
    redirect_uri: redirectUri(),
    scope: config.auth.scopes.join(" "),
    state,
    code_challenge: await challengeOf(verifier),
    code_challenge_method: "S256",
  });
  location.assign(`${config.auth.authorize_url}?${query}`);
}

/** On return from the login (?code=...&state=...): check the state, trade the code. Null when not a return. */
export async function completeSignIn(config) {
  const params = new URLSearchParams(location.search);
  if (!params.has("code") && !params.has("error")) return null;
  const pending = JSON.parse(sessionStorage.getItem(PENDING) || "null");
  sessionStorage.removeItem(PENDING);
  history.replaceState(null, "", location.pathname); // the code is single-use: keep it out of history
  if (params.has("error")) throw new Error(`sign-in failed: ${params.get("error")} ${params.get("error_description") || ""}`);
  if (!pending || params.get("state") !== pending.state) {
    throw new Error("sign-in refused: the state parameter does not match this tab's request (try again)");
  }
  const response = await fetch(config.auth.token_url, {
    method: "POST",
    headers: { "Content-Type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({
      grant_type: "authorization_code",
      client_id: config.auth.client_id,
      code: params.get("code"),
      redirect_uri: redirectUri(),
      code_verifier: pending.verifier,
    }),
  });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(`sign-in failed: ${response.status} ${JSON.stringify(body)}`);
  const tokens = { ...body, expires_at: Date.now() + (body.expires_in || 3600) * 1000 };
  sessionStorage.setItem(TOKENS, JSON.stringify(tokens));
  return tokens;
}

/** The stored tokens, or null when signed out or expired. */
export function tokens() {
  const stored = JSON.parse(sessionStorage.getItem(TOKENS) || "null");
  if (!stored || stored.expires_at <= Date.now()) return null;
  return stored;
}

/** Forget the tokens of this tab (local sign-out). */
export function forget() {
  sessionStorage.removeItem(TOKENS);
}

/** Sign out here and at the managed login, which sends the browser back to the site. */
export function signOut(config) {
  forget();
  const query = new URLSearchParams({ client_id: config.auth.client_id, logout_uri: redirectUri() });
  location.assign(`${config.auth.logout_url}?${query}`);
}

/** The claims of a JWT (display only: the gateway verifies the signature, the browser never needs to). */
export function claims(token) {
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(atob(part.padEnd(part.length + ((4 - (part.length % 4)) % 4), "=")));
  } catch {
    return {};
  }
}
