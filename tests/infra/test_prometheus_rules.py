"""The local Prometheus's alert rules are the CloudWatch alarms: same names, thresholds and comparisons.

``monitoring/prometheus/rules.yml`` is generated from ``stacks.alarm_table.alarm_specs`` (dev config) by
``scripts/prometheus_rules.py``; these tests fail when the two drift apart or the file does not load.
"""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
import yaml

from local_system.profiles import get_profile
from local_system.prometheus import PrometheusServer
from stacks.alarm_table import alarm_specs
from stacks.config import DEV
from tests.scripts import load_script

pytestmark = pytest.mark.infra

prometheus_rules = load_script("prometheus_rules")
#: ``(value) OP threshold`` at the end of an alert expression.
_COMPARISON = re.compile(r"\s(>=|<=|>|<)\s(\S+)$")


def _alert_rules(text: str | None = None) -> dict[str, dict]:
    groups = yaml.safe_load(text or prometheus_rules.RULES_FILE.read_text())["groups"]
    return {rule["alert"]: rule for group in groups for rule in group["rules"] if "alert" in rule}


def test_rules_file_is_generated_from_the_alarm_table():
    """The committed rules file is exactly what the generator writes from today's alarm table."""
    assert prometheus_rules.main(["--check"]) == 0, "run: .venv/bin/python scripts/prometheus_rules.py"


def test_every_alert_has_the_name_and_threshold_of_a_cloudwatch_alarm():
    """Each alert rule is named after a CloudWatch alarm and compares against that alarm's threshold."""
    specs = {spec.id: spec for spec in alarm_specs(prometheus_rules.local_config())}
    rules = _alert_rules()
    assert rules, "no alert rules"
    for name, rule in rules.items():
        assert name in specs, f"alert {name} has no CloudWatch alarm of that name"
        spec = specs[name]
        assert float(rule["annotations"]["threshold"]) == spec.threshold, name
        operator, value = _COMPARISON.search(rule["expr"]).groups()
        if prometheus_rules.MIRRORS[spec.metric].above_bucket:
            assert f'le="{float(spec.threshold)!r}"' in rule["expr"], name
        else:
            assert (operator, float(value)) == (prometheus_rules.OPERATORS[spec.comparison.value], spec.threshold)


def test_backlog_and_dead_letter_alarms_are_mirrored():
    """The alarms the local system can reproduce (queues, billing down, 5xx, express age) have a rule."""
    expected = {"QueueBacklog", "DeadLetters", "BillingNotRunning", "Alb5xxRate", "ExpressOrderAge", "ExpressBacklog"}
    assert expected <= set(_alert_rules())


def test_every_local_billing_shard_database_has_the_connections_alert():
    """Locally each billing shard is a database of the one PostgreSQL (billing_db_shard_<k>): each has the
    connections alert of its AWS instance's alarm, on that database's backends, with the dev threshold."""
    rules = _alert_rules()
    threshold = next(spec.threshold for spec in alarm_specs(DEV) if spec.id == "BillingDbConnections")
    for k in range(1, prometheus_rules.LOCAL_BILLING_SHARDS):
        rule = rules[f"BillingShard{k}DbConnections"]
        assert f'pg_stat_database_numbackends{{datname="billing_db_shard_{k}"}}' in rule["expr"]
        assert float(rule["annotations"]["threshold"]) == threshold


def _promtool_check(path) -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool missing: python3 -m local_system prereqs installs Debian's prometheus"
    result = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_accepts_the_rules():
    """`promtool check rules` parses every rule and its PromQL."""
    _promtool_check(prometheus_rules.RULES_FILE)


def test_test_profile_shortens_every_for_and_nothing_else(tmp_path):
    """The test profile's copy differs only in ``for:`` (its own duration) and still passes promtool."""
    profile = get_profile("test")
    text = PrometheusServer(profile).rules()
    target = tmp_path / "rules.yml"
    target.write_text(text)
    _promtool_check(target)
    durations = {rule["for"] for rule in _alert_rules(text).values()}
    assert durations == {profile.alert_for}
    original = prometheus_rules.RULES_FILE.read_text().splitlines()
    changed = [a for a, b in zip(original, text.splitlines(), strict=True) if a != b]
    assert changed and all(line.strip().startswith("for: ") for line in changed)
