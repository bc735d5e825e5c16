"""The I/O thread behind the gateway's publisher: one AMQP connection per worker process, many confirms in flight.

pika connections are not thread-safe, so one thread owns the connection: a ``pika.SelectConnection`` on an
``IOLoop`` that only this thread runs. Request threads hand it an :class:`Outgoing` with :meth:`ConfirmLink.send`
(``add_callback_threadsafe`` wakes the loop) and wait on their own event. The thread publishes whatever is
queued without waiting and resolves each message when its Basic.Ack (also with ``multiple``) or Basic.Nack
arrives; a Basic.Return before the Ack marks it unroutable. A connection that closes fails every unconfirmed
message with the reason, which the caller retries once (same message id).

States of the thread: *idle* (no connection, waits on a condition for work), *connecting* (runs the loop until
the connection, its channel and confirm mode are ready), *operating* (runs the loop until the connection
closes). The login is read at every connect, so a rotated broker password is picked up.

(Over 250 lines: one state machine owned by one thread; split, its states would have to be shared across
modules.)
"""

from __future__ import annotations

import collections
import logging
import os
import threading
import time
from collections.abc import Callable

import pika
import pika.exceptions
from pika.adapters.select_connection import IOLoop

from common.amqp import connection_parameters, declare_topology, is_login_refused, open_connection
from common.config import RabbitSettings
from common.secrets import Login, connect_with_login
from contract import messaging

log = logging.getLogger(__name__)


class Refused(Exception):
    """The broker answered but refused the message (Basic.Nack, or Basic.Return before the Basic.Ack)."""


class LinkClosed(pika.exceptions.AMQPError):
    """The publisher is shutting down and takes no new messages."""


class Outgoing:
    """One message (or, with ``body`` None, a readiness probe) waiting for the I/O thread's verdict."""

    __slots__ = ("body", "cancelled", "done", "error", "properties", "returned", "routing_key")

    def __init__(self, routing_key: str, body: bytes | None, properties: pika.BasicProperties | None):
        self.routing_key = routing_key
        self.body = body
        self.properties = properties
        self.done = threading.Event()
        self.error: BaseException | None = None
        self.returned = False
        self.cancelled = False

    def resolve(self, error: BaseException | None = None) -> None:
        """Record the outcome (None = confirmed) and wake the waiting request thread."""
        self.error = error
        self.done.set()

    def reset(self) -> None:
        """Ready to be sent again (the single retry, same message id)."""
        self.done.clear()
        self.error = None
        self.returned = False


class ConfirmLink:
    """The connection-owning I/O thread, started lazily in the process that uses it (again after a fork)."""

    def __init__(self, settings: RabbitSettings):
        self._settings = settings
        # pika's own stack_timeout (connect_timeout * 2) normally ends a connect first; this is the backstop.
        self._connect_deadline = settings.connect_timeout * 2 + 1
        self._init_state()

    def _init_state(self) -> None:
        self._lock = threading.Condition()
        self._submitted: collections.deque[Outgoing] = collections.deque()
        self._resets: list[threading.Event] = []
        self._stopping = False
        self._operating = False  # True while the loop serves an open connection: wake it, not the condition
        self._wake_pending = False
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()
        # Touched by the I/O thread only:
        self._ioloop: IOLoop | None = None
        self._connection: pika.SelectConnection | None = None
        self._channel = None
        self._closed_reason: BaseException | None = None
        self._opening: pika.SelectConnection | None = None  # being opened
        self._candidate: pika.SelectConnection | None = None  # open, its channel being set up
        self._in_flight: collections.OrderedDict[int, Outgoing] = collections.OrderedDict()
        self._by_message_id: dict[str, Outgoing] = {}
        self._next_tag = 1

    # -- request threads ------------------------------------------------------------------------------------

    def send(self, item: Outgoing, timeout: float) -> BaseException | None:
        """Hand ``item`` to the I/O thread and wait up to ``timeout`` s: None when confirmed, else the error."""
        with self._lock:
            if self._pid != os.getpid():
                self._init_state()  # a fork: the parent's thread and connection do not exist here
            if self._stopping:
                return LinkClosed("publisher is shutting down")
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="billing-publisher", daemon=True)
                self._thread.start()
            self._submitted.append(item)
            self._wake()
        if item.done.wait(timeout):
            return item.error
        with self._lock:
            if item.done.is_set():
                return item.error
            # Not sent yet: withdrawn, never published after its 503. Sent but unconfirmed: it may still reach the
            # queue (at-least-once, as after any lost confirm; billing's idempotency absorbs a retry).
            item.cancelled = True
        return TimeoutError(f"no confirm within {timeout:.1f} s")

    def reset(self, timeout: float) -> None:
        """Close the current connection (unconfirmed messages go to their retry); the next send opens a new one."""
        with self._lock:
            if self._thread is None or not self._thread.is_alive() or self._pid != os.getpid():
                return
            done = threading.Event()
            self._resets.append(done)
            self._wake()
        done.wait(timeout)

    def stop(self, timeout: float) -> None:
        """Take no new messages, wait (up to ``timeout`` s) for the outstanding confirms, close the connection."""
        with self._lock:
            self._stopping = True
            thread = self._thread if self._pid == os.getpid() else None
            self._wake()
        if thread is not None:
            thread.join(timeout)

    def _wake(self) -> None:
        """(Lock held.) An operating thread is woken through its loop, once per batch; an idle one by the
        condition."""
        if self._operating:
            if not self._wake_pending:
                self._wake_pending = True
                self._ioloop.add_callback_threadsafe(self._flush)
        else:
            self._lock.notify()

    # -- the I/O thread: connection life cycle -------------------------------------------------------------

    def _run(self) -> None:
        self._ioloop = IOLoop()
        try:
            while self._wait_for_work():
                try:
                    self._connect()
                except Exception as exc:  # noqa: BLE001 - whatever failed the connect fails the waiting messages
                    self._fail_submitted(exc)
                    continue
                with self._lock:
                    self._operating = True
                    self._wake_pending = True
                    self._ioloop.add_callback_threadsafe(self._flush)
                try:
                    while self._connection is not None:
                        self._ioloop.start()  # until _on_connection_closed stops it
                except Exception as exc:  # the thread must not die with requests waiting
                    log.exception("publisher I/O loop error")
                    connection = self._connection
                    self._lost(exc)
                    if connection is not None:
                        self._abandon(connection)
        finally:
            with self._lock:
                self._operating = False
            self._ioloop.close()

    def _wait_for_work(self) -> bool:
        """Idle: release reset requests (there is no connection), wait for messages; False once stopping."""
        with self._lock:
            self._operating = False
            while True:
                for done in self._resets:
                    done.set()
                self._resets.clear()
                if self._submitted:
                    return True
                if self._stopping:
                    return False
                self._lock.wait()

    def _fail_submitted(self, error: BaseException) -> None:
        with self._lock:
            waiting, self._submitted = list(self._submitted), collections.deque()
        for item in waiting:
            item.resolve(error)

    def _connect(self) -> None:
        # The topology is declared with the one blocking helper every publisher and consumer uses, on a short
        # connection of its own; both connections read the login when they open (a rotation is picked up).
        blocking = open_connection(self._settings)
        try:
            declare_topology(blocking.channel(), self._settings)
        finally:
            _quietly(blocking.close)
        self._closed_reason = None
        connection = self._candidate = connect_with_login(self._settings.credentials, self._open, is_login_refused)
        try:
            opened: list = []
            connection.channel(on_open_callback=lambda channel: self._done(opened, channel))
            self._run_until(lambda: opened, "channel")
            channel = opened[0]
            channel.add_on_close_callback(self._on_channel_closed)
            # Both on the same channel, so a Basic.Return is seen before its message's Basic.Ack (wire order).
            channel.add_on_return_callback(self._on_return)
            selected: list = []
            channel.confirm_delivery(ack_nack_callback=self._on_confirm, callback=lambda f: self._done(selected, f))
            self._run_until(lambda: selected, "Confirm.SelectOk")
        except BaseException:
            self._candidate = None  # its close callback is ignored from here on
            self._abandon(connection)
            raise
        self._connection, self._channel, self._next_tag = connection, channel, 1
        self._candidate = None

    def _open(self, login: Login) -> pika.SelectConnection:
        outcome: list = []

        def opened(connection: pika.SelectConnection) -> None:
            if connection is self._opening:
                self._done(outcome, connection)
            else:  # an attempt given up on (deadline) that opened after all
                _quietly(connection.close)

        def failed(connection: pika.SelectConnection, error: BaseException) -> None:
            if connection is self._opening:
                self._done(outcome, error)

        connection = self._opening = pika.SelectConnection(
            connection_parameters(self._settings, login),
            on_open_callback=opened,
            on_open_error_callback=failed,
            on_close_callback=self._on_connection_closed,
            custom_ioloop=self._ioloop,
        )
        try:
            self._run_until(lambda: outcome, "connection")
        except BaseException:
            self._abandon(connection)
            raise
        finally:
            self._opening = None
        if isinstance(outcome[0], BaseException):
            raise outcome[0]
        return connection

    def _done(self, outcome: list, value: object) -> None:
        outcome.append(value)
        self._ioloop.stop()

    def _run_until(self, ready: Callable[[], object], what: str) -> None:
        """Run the loop until ``ready()`` (callbacks stop it) or the connection closed or the deadline passed."""
        deadline = time.monotonic() + self._connect_deadline
        while not ready():
            if self._closed_reason is not None:
                raise self._closed_reason
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise pika.exceptions.AMQPConnectionError(f"broker did not open the {what} in time")
            timer = self._ioloop.call_later(remaining, self._ioloop.stop)
            self._ioloop.start()
            self._ioloop.remove_timeout(timer)

    def _abandon(self, connection: pika.SelectConnection) -> None:
        """A connection that failed half-way is closed; whatever it still reports is ignored."""
        if connection.is_open:
            _quietly(connection.close)

    # -- the I/O thread: callbacks of the loop --------------------------------------------------------------

    def _flush(self) -> None:
        """Publish every queued message; act on reset and stop requests."""
        with self._lock:
            batch, self._submitted = self._submitted, collections.deque()
            self._wake_pending = False
            reset = bool(self._resets)
            finish = self._stopping and not batch and not self._in_flight
        channel = self._channel
        for index, item in enumerate(batch):
            if item.cancelled:
                continue
            if channel is None or not channel.is_open:
                with self._lock:  # not sent: sent on the next connection (or failed by its connect)
                    self._submitted.extendleft(reversed(list(batch)[index:]))
                return
            if item.body is None:
                item.resolve()  # a readiness probe: the connection is open and being served
                continue
            try:
                channel.basic_publish(
                    exchange=messaging.DEFAULT_EXCHANGE,
                    routing_key=item.routing_key,
                    body=item.body,
                    properties=item.properties,
                    mandatory=True,
                )
            except Exception as exc:  # noqa: BLE001 - a channel that cannot publish is replaced
                item.resolve(exc)
                with self._lock:
                    self._submitted.extendleft(reversed(list(batch)[index + 1 :]))
                self._close_connection()
                return
            self._in_flight[self._next_tag] = item
            self._by_message_id[item.properties.message_id] = item
            self._next_tag += 1
        if reset or finish:
            self._close_connection()

    def _on_return(self, _channel, _method, properties: pika.BasicProperties, _body: bytes) -> None:
        # Basic.Return precedes the message's Basic.Ack: remember it, the ack then resolves it as refused.
        item = self._by_message_id.get(properties.message_id)
        if item is not None:
            item.returned = True

    def _on_confirm(self, frame: pika.frame.Method) -> None:
        method = frame.method
        nack = isinstance(method, pika.spec.Basic.Nack)
        if method.multiple:
            confirmed = []
            while self._in_flight and next(iter(self._in_flight)) <= method.delivery_tag:
                confirmed.append(self._in_flight.popitem(last=False)[1])
        else:
            confirmed = [self._in_flight.pop(method.delivery_tag)] if method.delivery_tag in self._in_flight else []
        for item in confirmed:
            self._by_message_id.pop(item.properties.message_id, None)
            if nack:
                item.resolve(Refused("Basic.Nack"))
            elif item.returned:
                item.resolve(Refused("unroutable (Basic.Return)"))
            else:
                item.resolve()
        with self._lock:
            finish = self._stopping and not self._submitted and not self._in_flight
        if finish:
            self._close_connection()

    def _on_channel_closed(self, _channel, reason: BaseException) -> None:
        # Its unconfirmed messages will never be confirmed: close the connection, which fails them.
        if self._connection is not None and self._connection.is_open:
            log.warning("publisher channel closed", extra={"reason": str(reason)})
            self._connection.close()

    def _on_connection_closed(self, connection: pika.SelectConnection, reason: BaseException) -> None:
        if connection is not self._connection and connection is not self._candidate:
            return  # an abandoned attempt
        if not isinstance(reason, pika.exceptions.ConnectionClosedByClient):
            log.warning("broker connection lost", extra={"reason": type(reason).__name__})
        self._closed_reason = reason
        self._lost(reason)
        self._ioloop.stop()

    def _close_connection(self) -> None:
        if self._connection is not None and self._connection.is_open:
            self._connection.close()

    def _lost(self, error: BaseException) -> None:
        """Forget the connection; every unconfirmed message fails with ``error`` (into its caller's retry)."""
        with self._lock:
            self._operating = False
        self._connection, self._channel = None, None
        in_flight, self._in_flight = self._in_flight, collections.OrderedDict()
        self._by_message_id.clear()
        for item in in_flight.values():
            item.resolve(error)


def _quietly(close: Callable[[], object]) -> None:
    try:
        close()
    except Exception:  # noqa: BLE001, S110 - the connection is already broken; nothing to do
        pass
