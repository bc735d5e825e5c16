"""PostgreSQL access: a small bounded connection pool and idempotent schema migrations.

Why not psycopg2.pool.ThreadedConnectionPool: it raises instead of waiting when exhausted, opens ``minconn``
connections eagerly (failing start-up when the database is down) and closes returned connections above
``minconn``, which turns every request into a new TLS handshake under load.
"""

from __future__ import annotations

import logging
import queue
import select
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import psycopg2
import psycopg2.extensions

from common.config import DatabaseSettings
from common.errors import DependencyUnavailable
from common.secrets import Login, SecretUnavailable, connect_with_login

log = logging.getLogger(__name__)

# Errors after which a connection is not worth keeping: the server went away or the socket broke.
CONNECTION_ERRORS = (psycopg2.OperationalError, psycopg2.InterfaceError)
#: SQLSTATE invalid_password: the server refused the login's password.
INVALID_PASSWORD = "28P01"  # noqa: S105 - an error code, not a password


def is_login_refused(exc: BaseException) -> bool:
    """True when a failed ``psycopg2.connect`` means "wrong password" rather than "server away".

    libpq reports connection failures without a SQLSTATE in psycopg2 (``pgcode`` is None), so the server's
    message is checked too; PostgreSQL sends it in English unless lc_messages says otherwise.
    """
    if not isinstance(exc, psycopg2.OperationalError):
        return False
    if getattr(exc, "pgcode", None) == INVALID_PASSWORD:
        return True
    return "password authentication failed" in str(exc)


class DatabaseUnavailable(DependencyUnavailable):
    """PostgreSQL cannot be reached (or no pooled connection became free in time)."""

    dependency = "database"


class ConnectionPool:
    """At most ``size`` connections, opened lazily, reused newest first, discarded when broken.

    Connections are in autocommit mode: one statement is one transaction, which saves a round trip per
    query; use :func:`transaction` where several statements must commit together.
    """

    def __init__(self, settings: DatabaseSettings, application_name: str, acquire_timeout: float = 5.0):
        self._connect_kwargs = settings.connect_kwargs(application_name)
        self._credentials = settings.credentials
        self._idle: queue.LifoQueue[psycopg2.extensions.connection] = queue.LifoQueue()
        self._slots = threading.BoundedSemaphore(settings.pool_size)
        self._acquire_timeout = acquire_timeout
        self.size = settings.pool_size

    def _open(self) -> psycopg2.extensions.connection:
        """A new connection with the current login; a refused login is retried once with a re-read secret
        (its password was rotated since this process read it)."""
        def connect(login: Login) -> psycopg2.extensions.connection:
            return psycopg2.connect(**self._connect_kwargs, user=login.user, password=login.password)

        try:
            conn = connect_with_login(self._credentials, connect, is_login_refused)
        except CONNECTION_ERRORS as exc:
            # The libpq message names host and port but never the password.
            raise DatabaseUnavailable(f"cannot connect to PostgreSQL: {str(exc).strip()}") from exc
        except SecretUnavailable as exc:
            raise DatabaseUnavailable(f"cannot read the database login: {exc}") from exc
        conn.autocommit = True
        return conn

    def dedicated(self) -> psycopg2.extensions.connection:
        """A new autocommit connection outside the pool, the caller's to close: for a long-lived session such as
        a ``LISTEN`` (a pooled connection with a pending notification would look dead to ``_take_idle``)."""
        return self._open()

    @contextmanager
    def connection(self) -> Iterator[psycopg2.extensions.connection]:
        """Lend a connection for the block; a connection broken inside the block is thrown away."""
        if not self._slots.acquire(timeout=self._acquire_timeout):
            raise DatabaseUnavailable("no database connection became free in time")
        conn = None
        try:
            conn = self._take_idle() or self._open()
            yield conn
        except CONNECTION_ERRORS as exc:
            self._discard(conn)
            conn = None
            # One dead connection usually means the server restarted or failed over: the idle ones are dead
            # too, so drop them now rather than fail one request per pooled connection.
            self.close()
            raise DatabaseUnavailable(f"lost the connection to PostgreSQL: {str(exc).strip()}") from exc
        except BaseException:
            if conn is not None and not conn.closed and conn.status != psycopg2.extensions.STATUS_READY:
                self._discard(conn)
                conn = None
            raise
        finally:
            if conn is not None and not conn.closed:
                self._idle.put(conn)
            self._slots.release()

    def _take_idle(self) -> psycopg2.extensions.connection | None:
        """An idle connection that still looks alive, or None.

        An idle connection has nothing to read; if its socket is readable the server has closed it (a restart,
        a failover, an administrator's pg_terminate_backend) or is telling us why it will. Checking costs one
        non-blocking ``select``, no round trip, and spares a request (an INSERT cannot be retried blindly) a
        503 for a connection that died while nobody used it.
        """
        while True:
            try:
                conn = self._idle.get_nowait()
            except queue.Empty:
                return None
            try:
                readable, _, _ = select.select([conn], [], [], 0)
            except (OSError, ValueError):
                readable = [conn]
            if not readable and not conn.closed:
                return conn
            self._discard(conn)

    @staticmethod
    def _discard(conn: psycopg2.extensions.connection | None) -> None:
        if conn is not None and not conn.closed:
            try:
                conn.close()
            except CONNECTION_ERRORS:
                pass

    def ping(self) -> None:
        """Raise DatabaseUnavailable unless a ``SELECT 1`` succeeds (the readiness check)."""
        with self.connection() as conn, conn.cursor() as cur:
            cur.execute("SELECT 1")
            cur.fetchone()

    def close(self) -> None:
        """Close every idle connection (used at shutdown and by tests)."""
        while True:
            try:
                self._discard(self._idle.get_nowait())
            except queue.Empty:
                return


@contextmanager
def transaction(conn: psycopg2.extensions.connection) -> Iterator[psycopg2.extensions.cursor]:
    """Run the block's statements in one transaction on a pooled (autocommit) connection."""
    conn.autocommit = False
    try:
        with conn.cursor() as cur:
            yield cur
        conn.commit()
    except BaseException:
        if not conn.closed:
            conn.rollback()
        raise
    finally:
        if not conn.closed:
            conn.autocommit = True


class Schema:
    """Applies numbered migrations once, under an advisory lock, at start-up or on first use.

    Several workers and tasks start at the same time: the lock makes exactly one of them migrate. If the
    database is down at start-up the service still starts (so liveness holds) and migrates once it is back.
    """

    def __init__(self, pool: ConnectionPool, service: str, migrations: Sequence[str]):
        self._pool = pool
        self._service = service
        self._migrations = list(migrations)
        self._done = False
        self._lock = threading.Lock()

    def check(self) -> None:
        """Raise ``DatabaseUnavailable`` unless the database answers now and the schema is migrated (a
        readiness check: ``ensure`` alone stops asking the database after its first success)."""
        self._pool.ping()
        self.ensure()

    def ensure(self) -> None:
        """Bring the schema up to date (a no-op after the first success in this process)."""
        if self._done:
            return
        with self._lock:
            if self._done:
                return
            self._migrate()
            self._done = True

    def _migrate(self) -> None:
        with self._pool.connection() as conn, conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_lock(hashtext(%s))", (f"schema:{self._service}",))
            try:
                cur.execute(
                    "CREATE TABLE IF NOT EXISTS schema_migrations ("
                    " service text NOT NULL, version integer NOT NULL,"
                    " applied_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (service, version))"
                )
                cur.execute("SELECT version FROM schema_migrations WHERE service = %s", (self._service,))
                applied = {row[0] for row in cur.fetchall()}
                for version, sql in enumerate(self._migrations, start=1):
                    if version in applied:
                        continue
                    with transaction(conn) as tx:
                        tx.execute(sql)
                        tx.execute(
                            "INSERT INTO schema_migrations (service, version) VALUES (%s, %s)",
                            (self._service, version),
                        )
                    log.info("applied schema migration", extra={"version": version})
            finally:
                cur.execute("SELECT pg_advisory_unlock(hashtext(%s))", (f"schema:{self._service}",))
