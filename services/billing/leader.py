"""Leader election: exactly one billing task runs the periodic jobs, through a PostgreSQL advisory lock.

Every billing process runs a :class:`LeaderElection` thread. It holds a dedicated autocommit connection (not
one of the pool's: a pooled connection is lent to others and may be dropped, and the lock belongs to the
session that took it) and tries ``pg_try_advisory_lock`` every ``check_interval`` seconds. Whoever gets the
lock is the leader until its session ends; the others keep trying. The leader checks, at the same interval,
that its session still holds the lock, and steps down the moment the check fails (its jobs stop, see
``billing.jobs``).

Failover budget (15 s from a leader's death to a new leader):

- A leader killed with SIGKILL: the kernel closes its sockets, PostgreSQL ends the session at once and frees
  the lock; a follower gets it at its next try, within ``check_interval``.
- A leader whose host or network vanishes (no FIN ever arrives): the session carries server-side TCP
  keepalives (:data:`SERVER_KEEPALIVE`) and a server-side ``tcp_user_timeout`` (for a reply that is never
  acknowledged, when keepalives do not apply), so PostgreSQL ends the session within 10 s; a follower takes
  over within ``check_interval`` after that (:func:`failover_budget`: 12 s with the defaults).
- The handover goes to a follower: a leader that lost its session sits out ``SIT_OUT_ROUNDS`` rounds before it
  campaigns again, so it does not win the freed lock back from the followers (its own session just failed;
  theirs did not). Alone, it leads again two rounds later.
- No two leaders: a partitioned leader's own check fails (client-side keepalives and ``tcp_user_timeout``, a
  statement timeout) and it steps down *before* the server can free the lock for someone else; and every job
  is idempotent on its own (unique keys, message ids), so even an overlap could not do the work twice.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

import psycopg2
import psycopg2.extensions

from billing.metrics import LEADER
from common.config import DatabaseSettings
from common.db import CONNECTION_ERRORS, is_login_refused
from common.secrets import Login, SecretUnavailable, connect_with_login

log = logging.getLogger(__name__)

#: The two-key advisory lock (classid, objid) of billing's job leader: "bill" in ASCII, then job group 1.
#: Two-key locks cannot clash with ``common.db.Schema``'s one-key (``hashtext``) migration locks.
LEADER_LOCK = (0x62696C6C, 1)


@dataclass(frozen=True)
class Keepalive:
    """TCP keepalive of one side of the leader's connection: first probe after ``idle`` s of silence, then
    every ``interval`` s, dead after ``count`` unanswered probes."""

    idle: int
    interval: int
    count: int

    @property
    def gives_up_after(self) -> int:
        """Seconds after the last packet from the other side when the connection is declared dead."""
        return self.idle + self.interval * self.count


#: PostgreSQL's side (session settings ``tcp_keepalives_*``): how soon it ends a silent leader's session.
SERVER_KEEPALIVE = Keepalive(idle=4, interval=2, count=3)
#: PostgreSQL's side (session setting ``tcp_user_timeout``): a reply the leader never acknowledges ends the
#: session after this many ms (keepalives do not apply while unacknowledged data is being retransmitted: without
#: it the kernel retries for about 15 minutes; measured, see docs/patterns/leader-election.md).
SERVER_TCP_USER_TIMEOUT_MS = 9000
#: The leader's side: a silent server (a lost reply) is given up on after this...
CLIENT_KEEPALIVE = Keepalive(idle=2, interval=1, count=2)
#: ... and data the leader sent that is not acknowledged within this many ms breaks the connection.
CLIENT_TCP_USER_TIMEOUT_MS = 3000
#: The leader's lock check may take this long on the server before it counts as failed.
CHECK_STATEMENT_TIMEOUT_MS = 3000


#: Rounds a deposed leader waits before it campaigns again (see the module docstring).
SIT_OUT_ROUNDS = 2


def failover_budget(check_interval: float) -> tuple[float, float, float]:
    """Seconds after a leader vanishes (host or network gone, no FIN): (it has stepped down at the latest,
    PostgreSQL may free its lock at the earliest, a follower leads at the latest).

    The first must be smaller than the second, so two leaders never overlap. The server's clock starts at the
    leader's last packet, up to one check interval before the partition, hence the earliest release.
    """
    client_gives_up = max(CLIENT_KEEPALIVE.gives_up_after, CLIENT_TCP_USER_TIMEOUT_MS / 1000)
    step_down = check_interval + max(client_gives_up, CHECK_STATEMENT_TIMEOUT_MS / 1000)
    server_gives_up = min(SERVER_KEEPALIVE.gives_up_after, SERVER_TCP_USER_TIMEOUT_MS / 1000)
    earliest_release = server_gives_up - check_interval
    take_over = max(SERVER_KEEPALIVE.gives_up_after, SERVER_TCP_USER_TIMEOUT_MS / 1000) + check_interval
    return step_down, earliest_release, take_over


def _connection_kwargs(database: DatabaseSettings, application_name: str) -> dict[str, object]:
    options = " ".join(
        f"-c {name}={value}"
        for name, value in (
            ("tcp_keepalives_idle", SERVER_KEEPALIVE.idle),
            ("tcp_keepalives_interval", SERVER_KEEPALIVE.interval),
            ("tcp_keepalives_count", SERVER_KEEPALIVE.count),
            ("tcp_user_timeout", SERVER_TCP_USER_TIMEOUT_MS),
            ("statement_timeout", CHECK_STATEMENT_TIMEOUT_MS),
        )
    )
    return {
        **database.connect_kwargs(application_name),
        "keepalives_idle": CLIENT_KEEPALIVE.idle,
        "keepalives_interval": CLIENT_KEEPALIVE.interval,
        "keepalives_count": CLIENT_KEEPALIVE.count,
        "tcp_user_timeout": CLIENT_TCP_USER_TIMEOUT_MS,
        "options": options,
    }


class LeaderElection:
    """Campaigns for :data:`LEADER_LOCK` on its own thread; :attr:`is_leader` says whether this process leads."""

    def __init__(
        self,
        database: DatabaseSettings,
        application_name: str,
        check_interval: float,
        lock: tuple[int, int] = LEADER_LOCK,
    ):
        self._database = database
        self._kwargs = _connection_kwargs(database, f"{application_name}-leader")
        self._interval = check_interval
        self._lock = lock
        self._connection: psycopg2.extensions.connection | None = None
        self._leader = False
        self._sit_out = 0  # rounds left before a deposed leader campaigns again
        self._problem = ""
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        LEADER.set(0)

    @property
    def is_leader(self) -> bool:
        """True while this process holds the leader lock (as of the last check, at most one interval ago)."""
        return self._leader

    def start(self) -> None:
        """Start campaigning on a daemon thread (once)."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="billing-leader", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop campaigning and step down: closing the session frees the lock for a follower at once."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self.step_down("stopping")

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                self.run_once()
            except Exception:  # a bug must neither end the thread nor leave a stale "leader" behind
                log.exception("leader election round failed unexpectedly")
                self.step_down("unexpected error")
            self._stopping.wait(self._interval)

    def run_once(self) -> bool:
        """One round: a follower tries to take the lock, a leader checks it still holds it. Returns is_leader.

        Called by the election thread (tests call it directly); never raises.
        """
        if not self._leader and self._sit_out > 0:
            self._sit_out -= 1
            return False
        try:
            if self._connection is None or self._connection.closed:
                self._connection = self._connect()
            holds = self._holds_lock() if self._leader else self._try_lock()
        except (*CONNECTION_ERRORS, SecretUnavailable, psycopg2.Error) as exc:
            self._trouble(f"{type(exc).__name__}: {str(exc).strip()}")
            return False
        if holds and not self._leader:
            self._leader = True
            self._problem = ""
            LEADER.set(1)
            log.info("became leader: running the periodic jobs", extra={"lock": list(self._lock)})
        elif not holds and self._leader:
            self.step_down("the session no longer holds the leader lock")
        return self._leader

    def step_down(self, reason: str) -> None:
        """Stop leading now (jobs check :attr:`is_leader` before each step) and end the session."""
        was_leader, self._leader = self._leader, False
        LEADER.set(0)
        if was_leader:
            self._sit_out = SIT_OUT_ROUNDS
            log.warning("stepped down as leader", extra={"reason": reason})
        connection, self._connection = self._connection, None
        if connection is None or connection.closed:
            return
        try:
            if was_leader:
                # Released before close() returns: closing alone ends the session a moment later, asynchronously.
                with connection.cursor() as cur:
                    cur.execute("SELECT pg_advisory_unlock(%s, %s)", self._lock)
            connection.close()
        except psycopg2.Error:
            connection.close()  # a broken session: the server ends it (and frees the lock) on its own

    def _trouble(self, problem: str) -> None:
        """The connection failed: a leader steps down; a follower says so once per distinct problem."""
        was_leader = self._leader
        self.step_down(problem)  # also drops the broken connection; the next round reconnects
        if not was_leader and problem != self._problem:
            log.warning("cannot campaign for leader; retrying", extra={"reason": problem})
        self._problem = problem

    def _connect(self) -> psycopg2.extensions.connection:
        def connect(login: Login) -> psycopg2.extensions.connection:
            return psycopg2.connect(**self._kwargs, user=login.user, password=login.password)

        # The same login as the pool's, re-read from the secret when refused (a rotated password).
        connection = connect_with_login(self._database.credentials, connect, is_login_refused)
        connection.autocommit = True
        return connection

    def _try_lock(self) -> bool:
        assert self._connection is not None
        with self._connection.cursor() as cur:
            cur.execute("SELECT pg_try_advisory_lock(%s, %s)", self._lock)
            return bool(cur.fetchone()[0])

    def _holds_lock(self) -> bool:
        assert self._connection is not None
        with self._connection.cursor() as cur:
            # Asks the server, not the client: a session that was ended (or had its locks released) says no.
            cur.execute(
                "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted"
                " AND pid = pg_backend_pid() AND classid = %s AND objid = %s AND objsubid = 2)",
                self._lock,
            )
            return bool(cur.fetchone()[0])
