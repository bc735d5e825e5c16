// The API client: every call carries the access token; every non-2xx answer becomes an ApiError with the
// status and the JSON error body (the callers show it); 401 sends the user back to sign in.

import { forget, tokens } from "./auth.js";

export class ApiError extends Error {
  constructor(status, statusText, body) {
    super(`${status} ${statusText}`);
    this.status = status;
    this.statusText = statusText;
    this.body = body;
  }
}

let onUnauthorized = () => {};

/** What to do on a 401 (the app shows the sign-in screen). */
export function whenUnauthorized(callback) {
  onUnauthorized = callback;
}

async function bodyOf(response) {
  const text = await response.text();
  try {
    return text ? JSON.parse(text) : null;
  } catch {
    return text;
  }
}

/** Call the API (path relative to the origin, e.g. "/api/movies"); the decoded JSON body and the response. */
export async function api(path, { method = "GET", json, headers = {} } = {}) {
  const current = tokens();
  const request = { method, headers: { Accept: "application/json", ...headers } };
  if (current) request.headers.Authorization = `Bearer ${current.access_token}`;
  if (json !== undefined) {
    request.headers["Content-Type"] = "application/json";
    request.body = JSON.stringify(json);
  }
  const response = await fetch(path, request);
  const body = await bodyOf(response);
  if (response.status === 401) {
    forget();
    onUnauthorized(new ApiError(response.status, response.statusText, body));
  }
  if (!response.ok) throw new ApiError(response.status, response.statusText, body);
  return { body, response };
}

/** Upload a file with a presigned POST (the valet key): every field of `fields`, then the file, last. */
export async function uploadWithValetKey(grant, file) {
  const form = new FormData();
  for (const [name, value] of Object.entries(grant.fields)) form.append(name, value);
  form.append("file", file);
  // No Authorization header: the signed policy in the fields is the only permission S3 needs.
  const response = await fetch(grant.url, { method: "POST", body: form });
  if (!response.ok) throw new ApiError(response.status, response.statusText, await response.text());
}
