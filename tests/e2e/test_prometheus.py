"""The test profile's own Prometheus: it scrapes every part, and a CloudWatch-mirroring alert fires locally.

The test profile evaluates the rules every second and shortens each ``for:`` to 2 s (``Profile.alert_for``);
the thresholds are the CloudWatch alarms' (monitoring/prometheus/rules.yml, generated from the alarm table).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
import yaml

from contract.messaging import BILLING_QUEUE
from tests.e2e.e2e_support import new_marker, order
from tests.waiting import poll

RULES = Path(__file__).resolve().parents[2] / "monitoring" / "prometheus" / "rules.yml"
#: Every scrape job of the local Prometheus (the services come from targets/services.json).
pytestmark = pytest.mark.e2e

JOBS = {"gateway", "inventory", "billing", "rabbitmq", "postgres", "prometheus"}


def _api(local_system, path: str, **params) -> dict:
    response = requests.get(f"{local_system.prometheus.url}/api/v1/{path}", params=params, timeout=5)
    response.raise_for_status()
    return response.json()["data"]


def _threshold(alert: str) -> int:
    for group in yaml.safe_load(RULES.read_text())["groups"]:
        for rule in group["rules"]:
            if rule.get("alert") == alert:
                return int(rule["annotations"]["threshold"])
    raise AssertionError(f"no alert rule {alert} in {RULES}")


def test_prometheus_scrapes_every_part(local_system):
    """Each service, the broker's plugin and the PostgreSQL exporter is a target whose last scrape succeeded."""

    def up_jobs() -> set[str]:
        samples = _api(local_system, "query", query="up == 1")["result"]
        return {sample["metric"]["job"] for sample in samples}

    assert poll(lambda: JOBS <= up_jobs(), 20), f"up == 1 only for {sorted(up_jobs())}"
    down = _api(local_system, "query", query="up == 0")["result"]
    assert down == [], f"targets down: {[sample['metric'] for sample in down]}"


def test_backlog_alert_fires_when_billing_stops_while_orders_arrive(local_system, http, gateway, rabbitmq):
    """Billing stopped, threshold+10 orders posted: QueueBacklog (the CloudWatch alarm's name and threshold) fires."""
    threshold = _threshold("QueueBacklog")
    marker = new_marker()
    local_system.stop_service("billing")
    try:
        with ThreadPoolExecutor(max_workers=8) as pool:
            codes = list(pool.map(lambda i: http.post(f"{gateway}/api/billing", data=order(marker, 1),
                                                      headers={"Content-Type": "application/json"}).status_code,
                                  range(threshold + 10)))
        assert set(codes) == {200}

        def backlog_firing() -> bool:
            alerts = _api(local_system, "alerts")["alerts"]
            return any(a["labels"]["alertname"] == "QueueBacklog" and a["state"] == "firing" for a in alerts)

        assert poll(backlog_firing, 30), f"QueueBacklog not firing: {_api(local_system, 'alerts')['alerts']}"
    finally:
        local_system.start_service("billing")
    # Leave an empty queue behind for the next tests (billing stores the orders in batches).
    assert poll(lambda: rabbitmq.message_count(BILLING_QUEUE.name) == 0, 60)


@pytest.fixture
def scaled_billing(local_system):
    """A second billing copy for the test; back to one afterwards."""
    local_system.scale("billing", 2)
    try:
        yield local_system
    finally:
        local_system.scale("billing", 1)


def test_prometheus_follows_make_scale(scaled_billing):
    """A billing copy started with ``scale`` becomes a scrape target of its own, and is up."""
    copy = scaled_billing.replicas("billing")[1]

    def copy_up() -> bool:
        samples = _api(scaled_billing, "query", query='up{job="billing"} == 1')["result"]
        return f"127.0.0.1:{copy.port}" in {sample["metric"]["instance"] for sample in samples}

    assert poll(copy_up, 20)
