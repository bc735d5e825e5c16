"""stacks.config: environment selection and the allowed context overrides."""

from __future__ import annotations

import dataclasses

import pytest

from stacks.config import DEV, PROD, load_config

pytestmark = pytest.mark.infra


def test_default_environment_is_dev():
    """Without -c env=... the dev config is used."""
    assert load_config(None) is DEV


def test_unknown_environment_is_rejected():
    """A typo in -c env=... fails loudly instead of deploying something unexpected."""
    with pytest.raises(ValueError, match="unknown environment"):
        load_config("staging")


def test_context_overrides_apply_only_to_allowed_keys():
    """domain and alarm e-mail can be overridden; sizing keys cannot be changed from the command line."""
    config = load_config("dev", {"domain_name": "api.example.org", "alarm_email": "", "nat_gateways": 9})
    assert config.domain_name == "api.example.org"
    assert config.alarm_email is None
    assert config.nat_gateways == DEV.nat_gateways


def test_configs_are_immutable():
    """Configs are frozen, so a stack cannot change settings seen by another."""
    with pytest.raises(dataclasses.FrozenInstanceError):
        PROD.nat_gateways = 1  # type: ignore[misc]


def test_https_needs_domain_and_hosted_zone():
    """HTTPS (and so ALB authentication) is enabled only with a domain and its hosted zone."""
    assert PROD.https_enabled
    assert not DEV.https_enabled
    assert not dataclasses.replace(PROD, hosted_zone_id=None, geode=None).https_enabled
    with pytest.raises(ValueError, match="geode"):  # the geode edge needs the hosted zone
        dataclasses.replace(PROD, hosted_zone_id=None)


def test_region_is_the_config_s_and_overridable():
    """The config's region is authoritative (eu-west-1, what .cfnlintrc.yaml and the docs say); -c region=... wins."""
    assert DEV.region == PROD.region == "eu-west-1"
    assert load_config("prod", {"region": "eu-central-1"}).region == "eu-central-1"
    assert load_config("prod", {"region": ""}).region == "eu-west-1"


def test_cfn_lint_checks_the_configured_region():
    """.cfnlintrc.yaml lints for the region the environments deploy to."""
    from tests.infra.helpers import REPO_ROOT

    text = (REPO_ROOT / ".cfnlintrc.yaml").read_text()
    assert {line.strip().removeprefix("- ") for line in text.splitlines() if line.startswith("  - ")} == {DEV.region}


def test_alarm_https_endpoint_is_optional_and_overridable():
    """No on-call URL by default; -c alarm_https_endpoint=https://... sets one."""
    assert DEV.alarm_https_endpoint is None and PROD.alarm_https_endpoint is None
    url = "https://api.opsgenie.com/v1/json/amazonsns?apiKey=x"
    assert load_config("prod", {"alarm_https_endpoint": url}).alarm_https_endpoint == url


def test_backup_copy_goes_to_another_region_in_prod_only():
    """prod copies recovery points to a region other than its own; dev keeps them in-region."""
    assert DEV.backup_copy_region is None
    assert PROD.backup_copy_region and PROD.backup_copy_region != PROD.region
