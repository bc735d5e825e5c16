"""The local Prometheus's configuration (no servers): ports, scrape jobs, targets file, rules copy."""

from __future__ import annotations

import dataclasses
import json

import pytest

from local_system.profiles import SERVICES, get_profile
from local_system.prometheus import RULES_SOURCE, PrometheusServer


def _ports(profile) -> list[int]:
    ports = [value for field, value in dataclasses.asdict(profile).items() if field.endswith("_port") and value]
    return ports + list(profile.service_ports.values())


def test_monitoring_ports_are_distinct_across_both_profiles():
    """Prometheus, the exporter and the broker's plugin collide with no other port of either profile."""
    ports = _ports(get_profile("dev")) + _ports(get_profile("test"))
    assert len(ports) == len(set(ports))
    test = get_profile("test")
    assert (test.prometheus_port, test.postgres_exporter_port, test.rabbitmq_prometheus_port) == (29190, 29287, 26692)


@pytest.mark.parametrize("profile_name", ["dev", "test"])
def test_config_scrapes_every_part_on_loopback_only(profile_name):
    """prometheus.yml has the broker, exporter and itself on 127.0.0.1, and the services from the targets file."""
    profile = get_profile(profile_name)
    server = PrometheusServer(profile)
    config = server.config()
    for port in (profile.rabbitmq_prometheus_port, profile.postgres_exporter_port, profile.prometheus_port):
        assert f'"127.0.0.1:{port}"' in config
    assert str(server.targets_file) in config and str(server.rules_file) in config
    assert f"evaluation_interval: {profile.prometheus_interval}" in config


def test_targets_file_lists_every_copy_under_its_service(tmp_path, monkeypatch):
    """write_targets gives each service one group, labelled with its name, with one target per copy."""
    server = PrometheusServer(get_profile("test"))
    monkeypatch.setattr(server, "targets_file", tmp_path / "services.json")
    server.write_targets({"billing": [18081, 18082], "gateway": [13000]})
    groups = json.loads(server.targets_file.read_text())
    assert groups == [
        {"targets": ["127.0.0.1:18081", "127.0.0.1:18082"], "labels": {"service": "billing"}},
        {"targets": ["127.0.0.1:13000"], "labels": {"service": "gateway"}},
    ]
    server.write_targets()
    assert {group["labels"]["service"] for group in json.loads(server.targets_file.read_text())} == set(SERVICES)


def test_dev_profile_keeps_the_cloudwatch_for_durations():
    """Without alert_for (dev) the rules are the repository's file unchanged."""
    server = PrometheusServer(get_profile("dev"))
    assert server.rules() == RULES_SOURCE.read_text()
