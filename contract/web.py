"""The web front end's origin: paths routed to the API, security headers, cache rules.

Shared by the CloudFront distribution (stacks) and the local web edge (local_system), so both serve the
static files with the same headers and route the same paths to the same places.
"""

from __future__ import annotations

#: Paths the edge forwards to the gateway (everything else is a static file or a poster).
API_PATH_PATTERN = "/api/*"
HEALTH_PATH = "/health"
#: The API's reference (the gateway's, no token needed), forwarded to the gateway like /health.
API_DOCS_PATHS = ("/docs", "/openapi.json")
#: Published posters (contract.posters.PUBLISHED_PREFIX), served from the web content bucket.
POSTERS_PATH_PATTERN = "/posters/*"
#: The page every route of the single-page app loads, always revalidated.
INDEX_DOCUMENT = "index.html"
#: The front end's runtime settings (sign-in endpoints, client id), written at deploy time.
CONFIG_DOCUMENT = "config.json"
#: Hashed or versioned assets, cached for a year.
ASSETS_PREFIX = "assets/"

#: Cache-Control of index.html and config.json: cached, but revalidated on every use.
REVALIDATE = "no-cache"
#: Cache-Control of assets/ and posters/ (their names change when their content does).
IMMUTABLE = "public, max-age=31536000, immutable"

#: Header CloudFront adds to every request it forwards to the ALB; the ALB refuses requests without it.
ORIGIN_VERIFY_HEADER = "X-Origin-Verify"


def content_security_policy(connect_sources: list[str], form_sources: list[str] | None = None) -> str:
    """The Content-Security-Policy of every response of the web origin.

    No inline script or style anywhere (``'self'`` only); ``connect_sources`` are the other origins the app
    calls with fetch (the Cognito token endpoint, the uploads bucket), ``form_sources`` where forms may post.
    """
    connect = " ".join(["'self'", *connect_sources])
    forms = " ".join(["'self'", *(form_sources or [])])
    return (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
        f"connect-src {connect}; form-action {forms}; frame-ancestors 'none'; base-uri 'self'; object-src 'none'"
    )


#: Headers of every response besides the CSP (CloudFront's response headers policy sets the same).
SECURITY_HEADERS: dict[str, str] = {
    "Strict-Transport-Security": "max-age=63072000; includeSubDomains",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "strict-origin-when-cross-origin",
}
