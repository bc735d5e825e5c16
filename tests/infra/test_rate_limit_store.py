"""The gateway's rate-limit store (ElastiCache Serverless for Valkey) and its wiring (issue 13)."""

from __future__ import annotations

import pytest

from contract import environment as var
from contract.limits import RATE_LIMIT_STORE_ACCESS
from stacks.config import load_config
from tests.infra.helpers import container_of, dumps, env_vars

pytestmark = pytest.mark.infra


def test_the_cache_is_valkey_in_private_subnets_behind_its_own_security_group(any_env):
    """Serverless Valkey (always TLS), private subnets, one security group, and a user group (RBAC) on it."""
    cache = any_env.only("Data", "AWS::ElastiCache::ServerlessCache")["Properties"]
    assert cache["Engine"] == "valkey"
    assert len(cache["SecurityGroupIds"]) == 1 and "RateLimitStoreSecurityGroup" in dumps(cache["SecurityGroupIds"])
    # "app": the private subnets with egress (the tasks' own), never the public or the isolated database ones.
    assert all("Vpcapp" in dumps(subnet) for subnet in cache["SubnetIds"])
    assert "RateLimitStoreUserGroup" in dumps(cache["UserGroupId"])
    limits = load_config(any_env.name).rate_limit
    assert cache["CacheUsageLimits"]["ECPUPerSecond"]["Maximum"] == limits.cache_max_ecpu_per_second


def test_only_gateway_tasks_may_connect(any_env):
    """The cache's security group admits port 6379 from the gateway tasks' group and nothing else."""
    rules = [
        rule["Properties"]
        for rule in any_env.resources("Data", "AWS::EC2::SecurityGroupIngress").values()
        if "RateLimitStoreSecurityGroup" in dumps(rule["Properties"]["GroupId"])
    ]
    assert len(rules) == 1
    assert (rules[0]["FromPort"], rules[0]["ToPort"]) == (6379, 6379)
    assert "GatewayTasks" in dumps(rules[0]["SourceSecurityGroupId"])


def test_the_user_has_the_contract_access_string_and_a_password_from_its_secret(any_env):
    """Least privilege: the ratelimit keys and the script's commands; the password is a dynamic reference."""
    user = any_env.only("Data", "AWS::ElastiCache::User")["Properties"]
    assert user["AccessString"] == RATE_LIMIT_STORE_ACCESS
    assert user["AuthenticationMode"]["Type"] == "password"
    assert "{{resolve:secretsmanager:" in dumps(user["AuthenticationMode"]["Passwords"])
    group = any_env.only("Data", "AWS::ElastiCache::UserGroup")["Properties"]
    assert group["Engine"] == "valkey"


def test_the_gateway_gets_its_limits_and_a_tls_store_url(any_env):
    """RATE_LIMIT_* from the environment's config, a rediss:// URL and the secret id (no password in env)."""
    env = env_vars(container_of(any_env, "gateway"))
    limits = load_config(any_env.name).rate_limit
    assert env[var.RATE_LIMIT_READS_PER_SECOND.name] == str(limits.reads_per_second)
    assert env[var.RATE_LIMIT_WRITES_PER_SECOND.name] == str(limits.writes_per_second)
    assert env[var.RATE_LIMIT_BURST.name] == str(limits.burst)
    assert "rediss://" in dumps(env[var.RATE_LIMIT_STORE_URL.name])
    assert "RateLimitStoreCredentials" in dumps(env[var.RATE_LIMIT_STORE_SECRET_ID.name])
    assert var.RATE_LIMIT_STORE_PASSWORD.name not in env


def test_billing_gets_its_write_budget(any_env):
    """BILLING_MAX_ROWS_PER_SECOND from the environment's config."""
    env = env_vars(container_of(any_env, "billing"))
    expected = load_config(any_env.name).rate_limit.billing_max_rows_per_second
    assert env[var.BILLING_MAX_ROWS_PER_SECOND.name] == str(expected)
