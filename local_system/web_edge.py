"""The local web edge: what CloudFront does on AWS, for ``make up`` (standard library only).

One process, two ports (both on 127.0.0.1):

* the site (dev 8000, test 18000): the files of ``web/`` with contract.web's cache rules, security headers and
  Content-Security-Policy; ``/config.json`` built at start (the sign-in endpoints and the SPA client id);
  ``/api/*`` and ``/health`` proxied to the gateway (bodies streamed, status and headers kept, 502 JSON when
  the gateway does not answer, 504 when it is slow); ``/posters/*`` from the emulator's ``movies-local-web``
  bucket; any other path without a file extension is a route of the single-page app and gets index.html.
* the emulated Cognito managed login (dev 8001, test 18001): ``local_system.identity.managed_login``.

Run by the local system (``local_system.web_part``): ``python -m local_system.web_edge --profile dev``.
(A little over 250 lines: one request handler whose three kinds of answer, file, config and proxy, share the
headers; the login is in its own modules.)
"""

from __future__ import annotations

import argparse
import http.client
import json
import mimetypes
import posixpath
import sys
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from contract import web
from local_system.emulator_api import DUMMY_KEY, REGION
from local_system.identity.cognito import CognitoApi
from local_system.identity.emulator import IdentityEmulator
from local_system.identity.managed_login import ManagedLogin
from local_system.identity.managed_login_http import LoginHandler
from local_system.identity.web_client import WEB_SCOPES, web_origin
from local_system.profiles import REPO_ROOT, Profile, get_profile

WEB_ROOT = REPO_ROOT / "web"
#: The web content bucket in the emulator (published posters under posters/).
WEB_BUCKET = "movies-local-web"
#: How the edge signs its reads of the web bucket: the emulator checks no signature, but refuses anonymous reads.
BUCKET_READ = (
    f"AWS4-HMAC-SHA256 Credential={DUMMY_KEY}/20260101/{REGION}/s3/aws4_request, SignedHeaders=host, Signature=local"
)
#: Seconds the edge waits for the gateway's answer (CloudFront's origin response timeout is 30 s too).
ORIGIN_TIMEOUT = 30
CHUNK = 64 * 1024
#: Headers of one hop only (RFC 9110): never forwarded in either direction.
HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
    "transfer-encoding", "upgrade", "host",
})


class EdgeSettings:
    """What the site handler needs: where the gateway and the emulator are, the CSP, config.json."""

    def __init__(self, profile: Profile, client_id: str):
        login = web_origin(profile.web_login_port)
        self.site_origin = web_origin(profile.web_port)
        self.gateway = ("127.0.0.1", profile.service_ports["gateway"])
        self.emulator = ("127.0.0.1", profile.cognito_port)
        emulator_origin = f"http://127.0.0.1:{profile.cognito_port}"
        # fetch() goes to the token endpoint (login origin) and the presigned POST (the emulator's S3).
        self.csp = web.content_security_policy([login, emulator_origin])
        self.config = json.dumps({
            "auth": {
                "authorize_url": f"{login}/oauth2/authorize",
                "token_url": f"{login}/oauth2/token",
                "logout_url": f"{login}/logout",
                "client_id": client_id,
                "scopes": list(WEB_SCOPES),
            },
            "api": "/api",
        }).encode()


class SiteHandler(BaseHTTPRequestHandler):
    """Static files, config.json and the two proxies; ``server.settings`` is the :class:`EdgeSettings`."""

    server_version = "web-edge"
    sys_version = ""
    protocol_version = "HTTP/1.1"

    @property
    def settings(self) -> EdgeSettings:
        return self.server.settings  # type: ignore[attr-defined]

    def log_message(self, format: str, *args) -> None:
        # The query string may hold an authorization code (the sign-in callback): log the path only.
        path = self.path.split("?", 1)[0]
        print(f"site {self.command} {path} {args[1] if len(args) > 1 else ''}", flush=True)

    def _route(self) -> None:
        """Every method goes through one router, as CloudFront's behaviours match paths, not methods."""
        path = urllib.parse.urlsplit(self.path).path
        if path.startswith(web.API_PATH_PATTERN.rstrip("*")) or path in ("/api", web.HEALTH_PATH, *web.API_DOCS_PATHS):
            self._proxy(self.settings.gateway, self.path)
        elif path.startswith(web.POSTERS_PATH_PATTERN.rstrip("*")):
            if self.command not in ("GET", "HEAD"):
                self._json(405, {"error": "posters are read-only"})
                return
            # Signed as the edge (moto refuses anonymous reads), as CloudFront's origin access control signs its
            # reads of the bucket; the browser's own Authorization header never goes to the bucket.
            self._proxy(self.settings.emulator, f"/{WEB_BUCKET}{path}", cache=web.IMMUTABLE, authorization=BUCKET_READ)
        elif self.command not in ("GET", "HEAD"):
            self._json(405, {"error": f"{self.command} is not allowed on static files"})
        elif path == f"/{web.CONFIG_DOCUMENT}":
            self._send(200, self.settings.config, "application/json", web.REVALIDATE)
        else:
            self._static(path)

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _route

    # -- static files ------------------------------------------------------------------------------------
    def _static(self, path: str) -> None:
        relative = posixpath.normpath(urllib.parse.unquote(path)).lstrip("/")
        target = (WEB_ROOT / relative).resolve() if relative not in ("", ".") else WEB_ROOT / web.INDEX_DOCUMENT
        if not target.is_relative_to(WEB_ROOT.resolve()):
            self._json(404, {"error": "not found"})
            return
        if target.is_dir():
            target = target / web.INDEX_DOCUMENT
        if not target.is_file():
            if "." in Path(relative).name or relative.startswith(web.ASSETS_PREFIX):
                self._json(404, {"error": "not found"})
                return
            target = WEB_ROOT / web.INDEX_DOCUMENT  # a route of the single-page app
        cache = web.IMMUTABLE if relative.startswith(web.ASSETS_PREFIX) else web.REVALIDATE
        content_type = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
        if content_type.startswith("text/") or content_type.endswith(("javascript", "json")):
            content_type += "; charset=utf-8"
        self._send(200, target.read_bytes(), content_type, cache)

    # -- proxy -------------------------------------------------------------------------------------------
    def _proxy(
        self, origin: tuple[str, int], target: str, cache: str | None = None, authorization: str | None = None
    ) -> None:
        """Forward the request to ``origin`` and stream its answer back (``authorization`` replaces the
        client's Authorization header)."""
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        if authorization is not None:
            headers = {k: v for k, v in headers.items() if k.lower() != "authorization"}
            headers["Authorization"] = authorization
        headers["Host"] = f"{origin[0]}:{origin[1]}"
        headers["X-Forwarded-For"] = self.client_address[0]
        headers["X-Forwarded-Proto"] = "http"
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            # Browsers send a Content-Length; a chunked body would reach the gateway cut off, so refuse it.
            self._json(411, {"error": "a request body needs a Content-Length"})
            self.close_connection = True
            return
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            self._json(400, {"error": "Content-Length is not a number"})
            self.close_connection = True
            return
        connection = http.client.HTTPConnection(*origin, timeout=ORIGIN_TIMEOUT)
        try:
            connection.putrequest(self.command, target, skip_host=True, skip_accept_encoding=True)
            for name, value in headers.items():
                connection.putheader(name, value)
            connection.endheaders()
            remaining = length
            while remaining > 0:
                chunk = self.rfile.read(min(CHUNK, remaining))
                if not chunk:
                    break
                connection.send(chunk)
                remaining -= len(chunk)
            response = connection.getresponse()
        except TimeoutError:
            connection.close()
            self._json(504, {"error": "the origin did not answer in time"})
            return
        except OSError:
            connection.close()
            self._json(502, {"error": "the origin is unreachable"})
            return
        try:
            self._relay(response, cache)
        finally:
            connection.close()

    def _relay(self, response: http.client.HTTPResponse, cache: str | None) -> None:
        self.send_response(response.status, response.reason)
        for name, value in response.getheaders():
            if name.lower() in HOP_BY_HOP or name.lower() == "content-length":
                continue
            if cache and name.lower() == "cache-control":
                continue
            self.send_header(name, value)
        if cache and response.status == 200:
            self.send_header("Cache-Control", cache)
        self._security_headers()
        body_length = response.getheader("Content-Length")
        chunked = body_length is None and self.command != "HEAD" and response.status not in (204, 304)
        if body_length is not None:
            self.send_header("Content-Length", body_length)
        elif chunked:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Content-Length", "0")
        self.end_headers()
        if self.command == "HEAD":
            return
        while chunk := response.read1(CHUNK):
            self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk) if chunked else chunk)
        if chunked:
            self.wfile.write(b"0\r\n\r\n")

    # -- answers -----------------------------------------------------------------------------------------
    def _security_headers(self) -> None:
        for name, value in web.SECURITY_HEADERS.items():
            self.send_header(name, value)
        self.send_header("Content-Security-Policy", self.settings.csp)

    def _send(self, status: int, body: bytes, content_type: str, cache: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", cache)
        self._security_headers()
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, body: dict) -> None:
        self._send(status, json.dumps(body).encode(), "application/json", "no-store")


def serve(profile: Profile) -> None:
    """Run the site and the managed login until the process is stopped."""
    identity = IdentityEmulator(profile)
    pool = identity.saved_pool()
    if pool is None or not pool.web_client_id:
        sys.exit("the emulated user pool is not provisioned (start the emulator first: make up)")
    site = ThreadingHTTPServer(("127.0.0.1", profile.web_port), SiteHandler)
    site.settings = EdgeSettings(profile, pool.web_client_id)  # type: ignore[attr-defined]
    login = ThreadingHTTPServer(("127.0.0.1", profile.web_login_port), LoginHandler)
    login.login = ManagedLogin(CognitoApi(identity.url), pool.pool_id, web_origin(profile.web_port))  # type: ignore[attr-defined]
    site.daemon_threads = login.daemon_threads = True
    threading.Thread(target=login.serve_forever, name="managed-login", daemon=True).start()
    print(f"web edge: site {web_origin(profile.web_port)}, login {web_origin(profile.web_login_port)}", flush=True)
    try:
        site.serve_forever()
    finally:
        login.shutdown()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local_system.web_edge", description=__doc__)
    parser.add_argument("--profile", choices=("dev", "test"), required=True)
    args = parser.parse_args(argv)
    try:
        serve(get_profile(args.profile))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
