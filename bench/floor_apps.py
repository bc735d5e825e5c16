"""Bare WSGI apps for ``bench.floors``: what the gateway's and inventory's hot paths cost without Flask.

Each is served by gunicorn with the services' own settings (``common.gunicorn_config``: gthread, the same
workers and threads); ``FLOOR_APP`` picks the app. No auth, metrics or error handling beyond what is named:
these are floors to compare with, never services.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from urllib.parse import urlsplit

from common.log import configure_logging
from common.web import new_request_id

log = logging.getLogger("floor")
_BODY = b'{"id": 1, "title": "floor", "description": "a fixed body"}'
_local = threading.local()


def bare(environ, start_response):
    """(a) A fixed JSON body: gunicorn gthread and the kernel's HTTP exchange, nothing else."""
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(_BODY)))])
    return [_BODY]


def _upstream():
    from gateway.upstream import UpstreamConnection

    connection = getattr(_local, "upstream", None)
    if connection is None:
        target = urlsplit(os.environ["FLOOR_INVENTORY_URL"])
        connection = _local.upstream = UpstreamConnection(target.hostname, target.port, 2.0, 10.0)
    return connection


def _authenticator():
    from gateway.auth import Authenticator, AuthSettings

    if not hasattr(_local, "auth"):
        _local.auth = Authenticator(AuthSettings.from_env())
    return _local.auth


def proxy(environ, start_response, check_token: bool = False):
    """(b) GET forwarded to inventory with the gateway's own upstream client, one JSON log line per request;
    (c) with ``check_token``, the verified-token cache's check first."""
    started = time.perf_counter()
    request_id = new_request_id()
    if check_token:
        _authenticator().verify_access_token(environ.get("HTTP_AUTHORIZATION", "")[7:])
    status, _headers, body, must_close = _upstream().exchange(
        "GET", environ["PATH_INFO"], {"X-Request-Id": request_id}, None
    )
    if must_close:
        _local.upstream.close()
        _local.upstream = None
    start_response(f"{status} OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    log.info("request", extra={"request_id": request_id, "method": "GET", "path": environ["PATH_INFO"],
                               "status": status, "duration_ms": round((time.perf_counter() - started) * 1000, 2)})
    return [body]


def proxy_auth(environ, start_response):
    """(c) :func:`proxy` with the token-cache check."""
    return proxy(environ, start_response, check_token=True)


def database(environ, start_response):
    """(d) One psycopg2 query by primary key on inventory's pool (what inventory's GET by id does in SQL)."""
    from common.config import DatabaseSettings
    from common.db import ConnectionPool

    pool = getattr(_local, "pool", None) or _pool(DatabaseSettings, ConnectionPool)
    movie_id = int(environ["PATH_INFO"].rsplit("/", 1)[1])
    with pool.connection() as conn, conn.cursor() as cursor:
        cursor.execute("SELECT id, title, description FROM movies WHERE id = %s", (movie_id,))
        row = cursor.fetchone()
    body = json.dumps({"id": row[0], "title": row[1], "description": row[2]}).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


_pool_lock = threading.Lock()


def _pool(settings_type, pool_type):
    with _pool_lock:
        if not hasattr(_pool, "shared"):
            _pool.shared = pool_type(settings_type.from_env("movies_db"), "floor")
    _local.pool = _pool.shared
    return _pool.shared


configure_logging("floor", "INFO")
#: The apps by name; ``app`` is what gunicorn serves: ``bench.floor_apps:app``.
APPS = {"bare": bare, "proxy": proxy, "proxy_auth": proxy_auth, "database": database}
app = APPS[os.environ.get("FLOOR_APP", "bare")]
