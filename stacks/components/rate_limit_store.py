"""The gateway's rate-limit store: ElastiCache Serverless for Valkey, private, TLS, one password user.

Authentication: an RBAC user group (engine valkey) with one password user, whose password Secrets Manager
generates and CloudFormation hands to ElastiCache by dynamic reference (the template holds no secret). The
gateway reads the same secret itself (RATE_LIMIT_STORE_SECRET_ID), like its broker login. IAM authentication
was the alternative; it needs a SigV4-signed token minted every 15 minutes and connections re-authenticated
within 12 hours, code of our own on every connect, for a store that holds nothing but counters: a password
user with a key- and command-restricted access string (``contract.limits.RATE_LIMIT_STORE_ACCESS``, the same
one the local redis-server enforces) behind a security group that admits only the gateway's tasks is the
simpler secure choice. Serverless caches always use TLS (``rediss://``) and exist only cluster-mode enabled:
the gateway talks to them with redis-py's cluster client, which is why the access string allows
``CLUSTER SLOTS`` (the local redis-server runs as a one-node cluster to prove the same path).
"""

from __future__ import annotations

import json

from aws_cdk import Fn
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_elasticache as elasticache
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from contract.limits import RATE_LIMIT_STORE_ACCESS
from stacks.config import EnvironmentConfig

VALKEY_PORT = 6379
#: The store user the gateway logs in as (the local redis-server has the same one).
STORE_USER = "gateway"


class RateLimitStore(Construct):
    """Serverless Valkey cache, its user group and user, the user's secret and the cache's security group."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: EnvironmentConfig,
        vpc: ec2.IVpc,
        client_security_group: ec2.ISecurityGroup,
    ) -> None:
        super().__init__(scope, construct_id)
        self.secret = secretsmanager.Secret(
            self,
            "Credentials",
            description="Valkey user of the gateway's rate-limit store (ElastiCache Serverless)",
            generate_secret_string=secretsmanager.SecretStringGenerator(
                secret_string_template=json.dumps({"username": STORE_USER}),
                generate_string_key="password",
                # ElastiCache passwords: 16-128 printable characters without @, " or /; none at all is simplest.
                exclude_punctuation=True,
                password_length=32,
            ),
        )
        self.security_group = ec2.SecurityGroup(
            self,
            "SecurityGroup",
            vpc=vpc,
            description="Rate-limit store (Valkey, TLS): from gateway tasks only",
            allow_all_outbound=False,
        )
        self.security_group.connections.allow_from(
            client_security_group, ec2.Port.tcp(VALKEY_PORT), "valkey (TLS) from gateway tasks"
        )
        user = elasticache.CfnUser(
            self,
            "User",
            engine="valkey",
            user_id=f"{config.prefix}-gateway",
            user_name=STORE_USER,
            access_string=RATE_LIMIT_STORE_ACCESS,
            # A plain mapping: this L1 property is untyped JSON, so the Property class would not be renamed.
            authentication_mode={
                "Type": "password",
                "Passwords": [self.secret.secret_value_from_json("password").unsafe_unwrap()],
            },
        )
        # A valkey-engine user group needs no "default" user: nobody connects without this login.
        group = elasticache.CfnUserGroup(
            self, "UserGroup", engine="valkey", user_group_id=f"{config.prefix}-ratelimit", user_ids=[user.user_id]
        )
        group.add_dependency(user)
        limits = config.rate_limit
        self.cache = elasticache.CfnServerlessCache(
            self,
            "Cache",
            engine="valkey",
            major_engine_version="8",
            serverless_cache_name=f"{config.prefix}-ratelimit",
            description="Per-caller token buckets of the gateway (counters only, nothing to back up)",
            security_group_ids=[self.security_group.security_group_id],
            subnet_ids=vpc.select_subnets(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS).subnet_ids,
            user_group_id=group.ref,
            cache_usage_limits=elasticache.CfnServerlessCache.CacheUsageLimitsProperty(
                data_storage=elasticache.CfnServerlessCache.DataStorageProperty(
                    maximum=limits.cache_max_data_gb, unit="GB"
                ),
                ecpu_per_second=elasticache.CfnServerlessCache.ECPUPerSecondProperty(
                    maximum=limits.cache_max_ecpu_per_second
                ),
            ),
        )
        #: rediss://<endpoint>:<port> (no credentials in it).
        self.url = Fn.join("", ["rediss://", self.cache.attr_endpoint_address, ":", self.cache.attr_endpoint_port])
