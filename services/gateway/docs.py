"""``/openapi.json`` and a human-readable ``/docs`` page rendered from it (no JavaScript, no CDN)."""

from __future__ import annotations

import json
from html import escape

from flask import Blueprint, Response, jsonify

from gateway.openapi import build_spec

docs = Blueprint("docs", __name__)
_SPEC = build_spec()


@docs.get("/openapi.json")
def openapi_document():
    """The OpenAPI 3.1 document of the public API."""
    return jsonify(_SPEC)


def _render_page(spec: dict) -> str:
    rows = []
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method == "parameters":
                continue
            statuses = ", ".join(sorted(operation["responses"]))
            permission = operation.get("x-required-permission") or "-"
            rows.append(
                f"<tr><td><code>{escape(method.upper())}</code></td><td><code>{escape(path)}</code></td>"
                f"<td>{escape(operation['summary'])}</td><td><code>{escape(permission)}</code></td>"
                f"<td>{escape(statuses)}</td></tr>"
            )
    schemas = "".join(
        f"<h3>{escape(name)}</h3><pre>{escape(json.dumps(schema, indent=2))}</pre>"
        for name, schema in spec["components"]["schemas"].items()
    )
    info = spec["info"]
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{escape(info['title'])}</title>"
        "<style>body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}"
        "table{border-collapse:collapse;width:100%}td,th{border:1px solid #ccc;padding:.4rem;text-align:left}"
        "pre{background:#f6f6f6;padding:.6rem;overflow:auto}</style></head><body>"
        f"<h1>{escape(info['title'])} <small>{escape(info['version'])}</small></h1>"
        f"<p>{escape(info['description'])}</p>"
        "<p>Machine-readable: <a href='/openapi.json'>/openapi.json</a></p>"
        "<p>Authentication: <code>Authorization: Bearer &lt;Cognito access token&gt;</code> on every /api call.</p>"
        "<h2>Operations</h2><table><tr><th>Method</th><th>Path</th><th>What it does</th><th>Permission</th>"
        "<th>Statuses</th></tr>"
        + "".join(rows)
        + "</table><h2>Schemas</h2>"
        + schemas
        + "</body></html>"
    )


_PAGE = _render_page(_SPEC)


@docs.get("/docs")
def docs_page():
    """The API reference for humans."""
    response = Response(_PAGE, content_type="text/html; charset=utf-8")
    # The page is static HTML: forbid scripts and framing outright.
    response.headers["Content-Security-Policy"] = "default-src 'none'; style-src 'unsafe-inline'"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response
