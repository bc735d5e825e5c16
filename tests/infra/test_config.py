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
    assert not dataclasses.replace(PROD, hosted_zone_id=None).https_enabled
