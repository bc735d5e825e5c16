"""The gateway's pipelined publisher against the test RabbitMQ: many request threads on one connection, refused
messages, a connection closed by the broker with confirms in flight, graceful close and confirm timeouts."""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
import uuid
from pathlib import Path

import pytest

from common.config import RabbitSettings
from common.web import new_request_id
from gateway.publisher import BillingPublisher, BrokerUnavailable


@pytest.fixture
def queue_name(test_infrastructure, rabbitmq, monkeypatch):
    """A billing queue of the test's own, with the gateway's broker settings from the local system."""
    for key, value in test_infrastructure.service_env("gateway").items():
        if key.startswith(("RABBITMQ_", "AWS_")):
            monkeypatch.setenv(key, value)
    queue = f"publisher_it_{uuid.uuid4().hex[:10]}"
    monkeypatch.setenv("BILLING_QUEUE", queue)
    yield queue
    rabbitmq.delete(queue, f"{queue}.dlq")


@pytest.fixture
def publisher(queue_name):
    """A publisher on the test's queue, closed (gracefully) after the test."""
    publisher = BillingPublisher(RabbitSettings.from_env())
    yield publisher
    publisher.close()


def _drain(rabbitmq, queue: str) -> list[str]:
    """The message ids of every ready message in ``queue`` (consumed)."""
    ids = []
    with rabbitmq.channel() as channel:
        while True:
            method, properties, _body = channel.basic_get(queue, auto_ack=True)
            if method is None:
                return ids
            ids.append(properties.message_id)


def _publish_from_threads(publisher, threads: int, each: int, results: list, stop: threading.Event | None = None):
    """Start ``threads`` threads publishing ``each`` messages under ids of their own; results get
    ``(outcome, message_id, detail)``."""

    def work(index: int) -> None:
        for n in range(each):
            if stop is not None and stop.is_set():
                return
            message_id = new_request_id()
            try:
                publisher.publish(b'{"n": %d}' % n, f"req-{index}-{n}", message_id=message_id)
                results.append(("ok", message_id, ""))
            except BrokerUnavailable as exc:
                results.append(("503", message_id, str(exc)))

    workers = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    return workers


def _own_broker_ports(amqp_port: int) -> set[int]:
    """Local TCP ports of this process's connections to the broker (from /proc: sockets this process holds)."""
    inodes = set()
    for fd in Path("/proc/self/fd").iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as lines:
            for line in list(lines)[1:]:
                fields = line.split()
                local, remote, state, inode = fields[1], fields[2], fields[3], fields[9]
                if inode in inodes and int(remote.rsplit(":", 1)[1], 16) == amqp_port and state == "01":
                    ports.add(int(local.rsplit(":", 1)[1], 16))
    return ports


def _close_own_connections(system) -> int:
    """Have the broker close this process's AMQP connections (as a broker restart or failover would)."""
    ours = _own_broker_ports(int(system.amqp_params()["port"]))
    listing = system.rabbitmq.ctl("list_connections", "pid", "peer_port", "--no-table-headers").stdout
    closed = 0
    for line in listing.splitlines():
        pid, _, port = line.strip().rpartition("\t")
        if port.isdigit() and int(port) in ours:
            system.rabbitmq.ctl("close_connection", pid.strip(), "test: connection killed mid-flight", check=False)
            closed += 1
    return closed


def test_many_threads_share_one_connection_and_every_message_is_queued_exactly_once(publisher, queue_name, rabbitmq):
    """32 threads x 50 concurrent publishes: every one confirmed, each queued exactly once."""
    results: list = []
    for worker in _publish_from_threads(publisher, threads=32, each=50, results=results):
        worker.join(120)
    assert len(results) == 32 * 50
    assert all(outcome == "ok" for outcome, _, _ in results), [r for r in results if r[0] != "ok"][:3]
    confirmed = [message_id for _, message_id, _ in results]
    assert sorted(_drain(rabbitmq, queue_name)) == sorted(confirmed)


def test_the_given_message_id_is_the_published_one(publisher, queue_name, rabbitmq):
    """``message_id=`` is the id the message carries; without it a new id is generated per message."""
    assert publisher.publish(b"{}", "req-given", message_id="given-id") == "given-id"
    generated = publisher.publish(b"{}", "req-new")
    assert generated != "given-id"
    assert _drain(rabbitmq, queue_name) == ["given-id", generated]


def test_a_message_to_a_deleted_queue_is_refused_not_confirmed(publisher, queue_name, rabbitmq):
    """A mandatory message nobody can route (its queue was deleted under the open connection) comes back with
    Basic.Return before its Basic.Ack, and the publisher reports it as refused, not as confirmed."""
    publisher.publish(b"{}", "routable")  # connects and declares the topology
    rabbitmq.delete(queue_name)
    with pytest.raises(BrokerUnavailable, match="unroutable"):
        publisher.publish(b"{}", "unroutable")


def test_a_connection_closed_mid_flight_gives_no_false_200(
    test_infrastructure, publisher, queue_name, rabbitmq, caplog
):
    """The broker closes the publisher's connection three times under 16 publishing threads: every 200 is in the
    queue, everything queued was published by the test (a retry repeats its message id), the cut messages went
    through the single retry, and the publisher recovers."""
    caplog.set_level(logging.WARNING, logger="gateway.publisher")
    publisher.ping()
    results: list = []
    stop = threading.Event()
    workers = _publish_from_threads(publisher, threads=16, each=2000, results=results, stop=stop)
    kills = 0
    deadline = time.monotonic() + 60
    while kills < 3 and time.monotonic() < deadline:
        time.sleep(0.5)
        kills += _close_own_connections(test_infrastructure)
    time.sleep(0.5)
    stop.set()
    for worker in workers:
        worker.join(60)
    assert kills >= 3
    confirmed = {message_id for outcome, message_id, _ in results if outcome == "ok"}
    attempted = {message_id for _, message_id, _ in results}
    queued = _drain(rabbitmq, queue_name)
    assert confirmed <= set(queued)
    assert set(queued) <= attempted
    assert any("retrying" in record.getMessage() for record in caplog.records)
    assert publisher.publish(b"{}", "after")


def test_close_confirms_what_was_sent_and_refuses_new_messages(publisher, queue_name, rabbitmq):
    """A close during a publishing burst lets every message already handed over finish (confirmed, not failed);
    later ones are refused as "shutting down"; every confirmed message is queued."""
    results: list = []
    workers = _publish_from_threads(publisher, threads=8, each=200, results=results)
    while len(results) < 50:
        time.sleep(0.01)
    publisher.close()
    for worker in workers:
        worker.join(60)
    assert {detail for outcome, _, detail in results if outcome == "503"} <= {"broker unreachable: LinkClosed"}
    confirmed = [message_id for outcome, message_id, _ in results if outcome == "ok"]
    assert sorted(_drain(rabbitmq, queue_name)) == sorted(confirmed)
    with pytest.raises(BrokerUnavailable, match="LinkClosed"):
        publisher.publish(b"{}", "after-close")


def test_a_message_the_broker_does_not_confirm_in_time_is_a_503(test_infrastructure, queue_name):
    """With the broker's memory alarm on (publishing connections blocked, no confirm comes), a publish fails
    with a 503 after the publisher's timeout instead of hanging."""
    publisher = BillingPublisher(RabbitSettings.from_env(), timeout=1.0)
    publisher.ping()
    ctl = test_infrastructure.rabbitmq.ctl
    watermark = ctl("eval", "vm_memory_monitor:get_vm_memory_high_watermark().").stdout.strip()
    ctl("set_vm_memory_high_watermark", "0")
    try:
        with pytest.raises(BrokerUnavailable, match="TimeoutError"):
            publisher.publish(b"{}", "blocked")
    finally:
        ctl("set_vm_memory_high_watermark", watermark if watermark.replace(".", "").isdigit() else "0.6")
        publisher.close(timeout=10)
