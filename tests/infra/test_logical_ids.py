"""Logical ids: resources that must never be replaced keep theirs, and the id-keeping mechanism is exact.

CloudFormation replaces a resource whose logical id changes: for a database, a broker, a user pool, a bucket
or a secret that is data loss (or an orphaned copy). ``KEPT`` is the reviewed list of those ids per
environment. It is deliberately a literal here, not a snapshot: ``UPDATE_SNAPSHOTS=1`` cannot refresh it, so
a refactoring that renames one of them fails until a person edits this list (and plans the migration).
"""

from __future__ import annotations

import pytest
from aws_cdk import App, CfnResource, Stack
from constructs import Construct

from stacks.components.logical_ids import (
    TransparentConstruct,
    TransparentIdsStack,
    make_unique_id,
    path_components,
)
from tests.infra.helpers import ENVIRONMENTS

pytestmark = pytest.mark.infra

#: Resource types whose replacement loses data or identity; every one of them must be listed in KEPT.
STATEFUL_TYPES = (
    "AWS::RDS::DBInstance",
    "AWS::AmazonMQ::Broker",
    "AWS::Cognito::UserPool",
    "AWS::S3::Bucket",
    "AWS::SecretsManager::Secret",
    "AWS::Backup::BackupVault",
    "AWS::ElastiCache::ServerlessCache",
)

_COMMON = {
    "Data": {
        "InventoryDbInstanceFFC6305B": "AWS::RDS::DBInstance",
        "BillingDbInstanceC5387052": "AWS::RDS::DBInstance",
        "Broker": "AWS::AmazonMQ::Broker",
        "BrokerCredentials3A27FE8A": "AWS::SecretsManager::Secret",
        # issue 13: the gateway's order-id key; a new one would turn every issued order URL into a 404.
        "OrderIdKeyD483109C": "AWS::SecretsManager::Secret",
        # issue 11: holds the recovery points; retained on deletion.
        "BackupVaultADF21B19": "AWS::Backup::BackupVault",
        # issue 13: the gateway's rate-limit store and its user's secret (counters only, but a replaced
        # cache would get a new endpoint and a replaced secret a new password).
        "RateLimitStoreCredentialsB6CBF838": "AWS::SecretsManager::Secret",
        "RateLimitStoreCache252D0157": "AWS::ElastiCache::ServerlessCache",
        # issue 15: the saga's bucket, issued invoices and claim checks (named: the compute and invoicer stacks
        # refer to it by name).
        "InvoicesF0222E8D": "AWS::S3::Bucket",
    },
    "Auth": {"UserPool6BA7E5F2": "AWS::Cognito::UserPool"},
    "Compute": {
        "AlbAccessLogsCCEDA970": "AWS::S3::Bucket",
        # Not stateful, but a replacement would change the public DNS name, or fail on the fixed log-group name.
        "Alb16C2F182": "AWS::ElasticLoadBalancingV2::LoadBalancer",
        "WafLogsF9F75746": "AWS::Logs::LogGroup",
        # issue 14: the web content bucket (the front end and every published poster), the CloudFront log bucket,
        # and the origin-verify secret (a new value would be a new header on both CloudFront and the ALB).
        "WebContent62D64E3D": "AWS::S3::Bucket",
        "WebLogsD9759FC4": "AWS::S3::Bucket",
        "OriginVerifySecret1DED2FB3": "AWS::SecretsManager::Secret",
    },
    # issue 14: the poster uploads bucket (named: inventory's task role and the CSP refer to it by name).
    "Posters": {"Uploads4F6EB0FD": "AWS::S3::Bucket"},
    # issue 16: the outside check canary's run reports (a replaced bucket would orphan the canary's history).
    "Monitoring": {"OutsideCheckArtifacts0A15DBF5": "AWS::S3::Bucket"},
}
#: The database secrets' ids embed the stage name (CDK derives them from the full path).
_DB_SECRETS = {
    "dev": {
        "MoviesdevDataInventoryDbInstanceSecret995BD41F3fdaad7efa858a3daf9490cf0a702aeb",
        "MoviesdevDataBillingDbInstanceSecretD220247F3fdaad7efa858a3daf9490cf0a702aeb",
    },
    "prod": {
        "MoviesprodDataInventoryDbInstanceSecretD18CFD663fdaad7efa858a3daf9490cf0a702aeb",
        "MoviesprodDataBillingDbInstanceSecret635502853fdaad7efa858a3daf9490cf0a702aeb",
    },
}
#: issue 16: billing shards k >= 1 (prod: 2 shards), each its own instance and secret; shard 0 is BillingDb above.
#: Named by shard number: adding shard 2 adds ids and renames none of these.
_SHARDS = {
    "dev": {},
    "prod": {
        "BillingShard1InstanceB18F42F1": "AWS::RDS::DBInstance",
        "MoviesprodDataBillingShard1InstanceSecret1C55624C3fdaad7efa858a3daf9490cf0a702aeb": (
            "AWS::SecretsManager::Secret"
        ),
    },
}
KEPT: dict[str, dict[str, dict[str, str]]] = {
    env: {
        **_COMMON,
        "Data": {
            **_COMMON["Data"],
            **dict.fromkeys(_DB_SECRETS[env], "AWS::SecretsManager::Secret"),
            **_SHARDS[env],
        },
    }
    for env in ("dev", "prod")
}


def test_kept_list_covers_every_environment():
    """Each synthesized environment has its reviewed list (a new environment needs one)."""
    assert set(KEPT) == set(ENVIRONMENTS)


def test_kept_resources_still_exist_under_their_logical_ids(any_env):
    """Every listed resource is in its stack, with its type, under the same logical id."""
    missing = [
        f"{stack}/{logical_id} ({resource_type})"
        for stack, resources in KEPT[any_env.name].items()
        for logical_id, resource_type in resources.items()
        if any_env.templates[stack]["Resources"].get(logical_id, {}).get("Type") != resource_type
    ]
    assert missing == [], "renamed or removed (CloudFormation would replace them): " + ", ".join(missing)


def test_every_stateful_resource_is_in_the_kept_list(any_env):
    """A new database, broker, user pool, bucket or secret is added to KEPT in the same change."""
    unlisted = [
        f"{stack}/{logical_id}"
        for stack, template in any_env.templates.items()
        for logical_id, resource in template["Resources"].items()
        if resource["Type"] in STATEFUL_TYPES and logical_id not in KEPT[any_env.name].get(stack, {})
    ]
    assert unlisted == []


def test_make_unique_id_reproduces_cdk_for_every_element_of_the_app(any_env):
    """Over every element of the plain stacks (hundreds of paths with Default, Resource, repeats), the
    reimplementation gives CDK's own logical id."""
    compared = 0
    for stack in any_env.stage.stacks:
        if isinstance(stack, TransparentIdsStack):
            continue  # its ids are ours by construction (and checked against CDK's at every synthesis)
        for construct in stack.node.find_all():
            if construct is stack or not hasattr(construct, "logical_id"):
                continue
            # CDK's allocation itself (a few constructs override the result, e.g. the database secrets).
            expected = stack._allocate_logical_id(construct)
            assert make_unique_id(path_components(construct.node.path, stack.node.path)) == expected
            compared += 1
    assert compared > 100


@pytest.fixture(scope="module")
def scratch_stacks():
    """A small app (no synthesis) with a plain stack and a transparent-ids stack, for edge cases."""
    app = App()
    return Stack(app, "Plain"), TransparentIdsStack(app, "Keeping")


@pytest.mark.parametrize(
    "path",
    [
        ["Top"],
        ["With-Dash_and.dots"],
        ["A", "Default", "Resource"],
        ["Service", "Service"],
        ["TaskCount", "Target", "Requests", "Resource"],
        ["X" * 260],
        ["Y" * 130, "Z" * 130],
    ],
)
def test_make_unique_id_matches_cdk_on_edge_cases(scratch_stacks, path):
    """Long, non-alphanumeric, hidden (Default / Resource) and repeated path components give CDK's id."""
    plain, _ = scratch_stacks
    scope: Construct = plain
    for component in path[:-1]:
        scope = scope.node.try_find_child(component) or Construct(scope, component)
    element = CfnResource(scope, path[-1], type="Test::Edge::Case")
    assert make_unique_id(path) == plain.resolve(element.logical_id)


def test_transparent_construct_keeps_the_ids_of_direct_children(scratch_stacks):
    """A resource in a TransparentConstruct gets the id it would have as a child of the stack."""
    plain, keeping = scratch_stacks
    direct = CfnResource(Construct(plain, "Bucket"), "Resource", type="Test::Kept::Id")
    moved = CfnResource(Construct(TransparentConstruct(keeping, "Room"), "Bucket"), "Resource", type="Test::Kept::Id")
    assert keeping.resolve(moved.logical_id) == plain.resolve(direct.logical_id)


def test_two_elements_with_one_logical_id_are_refused(scratch_stacks):
    """A transparent construct cannot make two resources share an id (CloudFormation would merge them)."""
    _, keeping = scratch_stacks
    first = CfnResource(keeping, "Twin", type="Test::Twin")
    second = CfnResource(TransparentConstruct(keeping, "OtherRoom"), "Twin", type="Test::Twin")
    keeping.resolve(first.logical_id)
    with pytest.raises(Exception, match="already used"):
        keeping.resolve(second.logical_id)


def test_transparent_construct_outside_a_transparent_ids_stack_is_refused(scratch_stacks):
    """Elsewhere it would silently rename its children's ids, so it refuses to be created."""
    plain, _ = scratch_stacks
    with pytest.raises(TypeError, match="TransparentIdsStack"):
        TransparentConstruct(plain, "Misplaced")
