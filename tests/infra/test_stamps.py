"""Deployment stamps: config, one complete copy of the stacks per stamp, the first stamp unchanged, the shared
user pool, the stamp registry and the outside check (canary) of every stamp."""

from __future__ import annotations

import dataclasses

import pytest
from aws_cdk.assertions import Match

from stacks.config import DEV, PROD, Stamp, load_config
from stacks.stamps import stamp_configs
from tests.infra.helpers import STACKS, dumps, env_vars
from tests.infra.test_logical_ids import KEPT

pytestmark = pytest.mark.infra

US = "stamp us"


def _container_env(template, name: str) -> dict:
    (task,) = template.find_resources(
        "AWS::ECS::TaskDefinition",
        {"Properties": {"ContainerDefinitions": Match.array_with([Match.object_like({"Name": name})])}},
    ).values()
    container = next(c for c in task["Properties"]["ContainerDefinitions"] if c["Name"] == name)
    return env_vars(container)


# --- config --------------------------------------------------------------------------------------------------
def test_stamp_shares_must_sum_to_100():
    """A config whose stamps' shares do not add up to 100 % is refused when it is created."""
    with pytest.raises(ValueError, match="sum to 100"):
        dataclasses.replace(PROD, stamps=(Stamp("eu", "eu-west-1", 60), Stamp("us", "us-east-1", 30, "x.example")))


def test_stamp_names_must_be_unique_and_simple():
    """Two stamps of one name (or a name unfit for stack names) are refused."""
    with pytest.raises(ValueError, match="unique"):
        dataclasses.replace(DEV, stamps=(Stamp("eu", "eu-west-1", 50), Stamp("eu", "us-east-1", 50)))
    with pytest.raises(ValueError, match="lower-case"):
        dataclasses.replace(DEV, stamps=(Stamp("EU-1", "eu-west-1", 100),))


def test_the_first_stamp_is_in_the_environments_region():
    """The first stamp is the environment as deployed before stamps: another region is refused; -c region=...
    moves it with the environment."""
    with pytest.raises(ValueError, match="first stamp"):
        dataclasses.replace(DEV, stamps=(Stamp("us", "us-east-1", 100),))
    assert load_config("prod", {"region": "eu-central-1"}).all_stamps[0].region == "eu-central-1"


def test_an_additional_https_stamp_needs_its_own_domain():
    """With HTTPS, each further stamp needs its own ALB name (the geode's health check and CNAME target)."""
    with pytest.raises(ValueError, match="domain_name"):
        dataclasses.replace(PROD, stamps=(PROD.stamps[0], Stamp("us", "us-east-1", 40)))


def test_turning_https_off_by_context_turns_the_geode_off():
    """``-c domain_name=`` (the HTTP-only trial of prod) still synthesizes: the geode, which needs the zone, goes."""
    assert load_config("prod", {"domain_name": ""}).geode is None
    assert load_config("prod", {}).geode == PROD.geode


def test_prod_has_two_stamps_in_two_regions_and_dev_one():
    """prod: eu-west-1 (first) and us-east-1; dev: one stamp (a second would double dev's cost)."""
    assert [(s.name, s.region) for s in PROD.all_stamps] == [("eu", "eu-west-1"), ("us", "us-east-1")]
    assert [s.name for s in DEV.all_stamps] == ["eu"]


def test_an_additional_stamp_gets_its_own_names_and_the_first_keeps_its_config():
    """The first stamp deploys the environment's config object itself; the next one gets ``<env>-<stamp>`` names,
    its region, domain and backup copy region, and a Stamp tag."""
    first, us = stamp_configs(PROD)
    assert first is PROD
    assert (us.name, us.prefix, us.region, us.environment_name) == ("prod-us", "movies-prod-us", "us-east-1", "prod")
    assert us.domain_name == "movies-us.example.com" and us.backup_copy_region not in (None, us.region)
    assert us.tags["Stamp"] == "us" and us.registry_path == "/movies/prod"


# --- stacks per stamp ----------------------------------------------------------------------------------------
def test_each_stamp_is_a_complete_copy_in_its_region(prod):
    """prod's second stamp has every stack, named Movies-prod-us-<Stack>, all in us-east-1."""
    stages = prod.deployment.stamps
    assert [stage.stage_name for stage in stages] == ["Movies-prod", "Movies-prod-us"]
    us = stages[1]
    assert [stack.stack_name for stack in us.stacks] == [f"Movies-prod-us-{stack}" for stack in STACKS]
    assert {stack.region for stack in us.stacks} == {"us-east-1"}


def test_the_first_stamp_keeps_its_stack_names(any_env):
    """The first stamp's stacks are named exactly as before stamps existed (Movies-<env>-<Stack>): a deployed
    system updates in place (its logical ids: test_logical_ids.py and the snapshots)."""
    assert [stack.stack_name for stack in any_env.deployment.stamps[0].stacks] == [
        f"Movies-{any_env.name}-{stack}" for stack in STACKS
    ]


def test_the_second_stamp_has_its_own_databases_broker_and_buckets(prod):
    """Each stamp has its own stateful resources (the same logical ids as the first stamp's, in other stacks):
    orders, movies, posters and invoices stay in the stamp that took them."""
    for stack in ("Data", "Compute", "Posters"):
        resources = prod.parts[US][1][stack]["Resources"]
        for logical_id, resource_type in KEPT["prod"][stack].items():
            if "Moviesprod" in logical_id:  # the database secrets' ids embed the stage name
                continue
            assert resources[logical_id]["Type"] == resource_type, f"{stack}/{logical_id}"


def test_only_the_first_stamp_has_a_user_pool(prod):
    """One user pool per environment: the second stamp's Auth stack creates none."""
    prod.template("Auth").resource_count_is("AWS::Cognito::UserPool", 1)
    prod.part_template(US, "Auth").resource_count_is("AWS::Cognito::UserPool", 0)


def test_the_second_stamp_reads_the_pool_from_the_first_stamps_region(prod):
    """The second stamp reads the pool's ids from the SSM parameters the first stamp writes, in eu-west-1."""
    auth = prod.part_template(US, "Auth")
    reads = auth.find_resources("Custom::AWS")
    text = dumps(reads)
    for name in ("user-pool-id", "machine-client-id", "domain-url"):
        assert f"/movies/prod/auth/{name}" in text
    assert len(reads) == 3
    for read in reads.values():
        call = dumps(read["Properties"]["Create"])
        assert "getParameter" in call and '\\"region\\":\\"eu-west-1\\"' in call
    prod.template("Auth").has_resource_properties("AWS::SSM::Parameter", {"Name": "/movies/prod/auth/user-pool-id"})


def test_the_second_stamps_gateway_accepts_the_first_stamps_tokens(prod):
    """The us-east-1 gateway validates tokens of the eu-west-1 pool (issuer, JWKS, Cognito region)."""
    variables = _container_env(prod.part_template(US, "Compute"), "gateway")
    assert variables["COGNITO_REGION"] == "eu-west-1"
    assert "https://cognito-idp.eu-west-1.amazonaws.com/" in dumps(variables["AUTH_ISSUER"])


def test_the_second_stamps_web_client_is_created_in_the_pools_region(prod):
    """The SPA client of the us-east-1 web front end is created by a custom resource in eu-west-1, the pool's
    region, with the stamp's own distribution as callback; no Cognito resource is in the us-east-1 template."""
    compute = prod.part_template(US, "Compute")
    compute.resource_count_is("AWS::Cognito::UserPoolClient", 0)
    (client,) = compute.find_resources("Custom::AWS").values()
    create = dumps(client["Properties"]["Create"])
    assert "createUserPoolClient" in create and '\\"region\\":\\"eu-west-1\\"' in create
    assert "CallbackURLs" in create and "GenerateSecret" in create


# --- registry --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("part", ["stamp eu", US])
def test_every_stamp_registers_its_url_region_and_share(prod, part):
    """Each stamp writes /movies/prod/stamps/<stamp>/{url,region,share,domain} and outputs its URL."""
    stamp = part.split()[-1]
    compute = prod.template("Compute") if part == "stamp eu" else prod.part_template(part, "Compute")
    names = {p["Properties"]["Name"] for p in compute.find_resources("AWS::SSM::Parameter").values()}
    assert names == {f"/movies/prod/stamps/{stamp}/{entry}" for entry in ("url", "region", "share", "domain")}
    share = dict(eu="60", us="40")[stamp]
    compute.has_resource_properties(
        "AWS::SSM::Parameter", {"Name": f"/movies/prod/stamps/{stamp}/share", "Value": share}
    )
    assert any(key.startswith("RegistryStampUrl") for key in compute.find_outputs("*"))


# --- outside check -----------------------------------------------------------------------------------------------
def test_every_stamp_has_a_python_canary_with_inline_code(prod):
    """Each stamp's monitoring runs a Synthetics canary (Python runtime, inline code, every 15 minutes)."""
    for template in (prod.template("Monitoring"), prod.part_template(US, "Monitoring")):
        (canary,) = template.find_resources("AWS::Synthetics::Canary").values()
        props = canary["Properties"]
        assert props["RuntimeVersion"].startswith("syn-python-")
        assert "def handler" in props["Code"]["Script"] and props["Code"]["Handler"] == "index.handler"
        assert props["Schedule"]["Expression"] == "rate(15 minutes)"


def test_the_canary_holds_no_secret_and_may_only_describe_the_machine_client(prod):
    """The canary's settings name the pool and client, never a secret; its role may read the client's secret
    from Cognito (DescribeUserPoolClient) on the pool and nothing else of Cognito."""
    template = prod.template("Monitoring")
    (canary,) = template.find_resources("AWS::Synthetics::Canary").values()
    variables = canary["Properties"]["RunConfig"]["EnvironmentVariables"]
    assert {"USER_POOL_ID", "CLIENT_ID", "TOKEN_URL", "SCOPE"} <= set(variables)
    assert "SECRET" not in " ".join(variables).upper()
    assert variables["SCOPE"] == "movies-api/movies.read"
    statements = [s for p in template.find_resources("AWS::IAM::Policy").values()
                  for s in p["Properties"]["PolicyDocument"]["Statement"]]  # fmt: skip
    cognito = [s for s in statements if "cognito" in dumps(s["Action"])]
    assert [s["Action"] for s in cognito] == ["cognito-idp:DescribeUserPoolClient"]
    assert "userpool/" in dumps(cognito[0]["Resource"])


def test_a_failing_canary_pages_the_alarm_topic(any_env):
    """Two failed runs in a row (or no runs) alarm on the stamp's topic, and the dashboard shows the canary."""
    template = any_env.template("Monitoring")
    template.has_resource_properties(
        "AWS::CloudWatch::Alarm",
        {
            "MetricName": "SuccessPercent",
            "Namespace": "CloudWatchSynthetics",
            "Threshold": 100,
            "ComparisonOperator": "LessThanThreshold",
            "EvaluationPeriods": 2,
            "TreatMissingData": "breaching",
            "AlarmActions": [{"Ref": Match.string_like_regexp("^AlarmTopic")}],
        },
    )
    (dashboard,) = template.find_resources("AWS::CloudWatch::Dashboard").values()
    assert "Outside check" in dumps(dashboard)


def test_one_budget_per_environment_in_the_first_stamp(prod):
    """The account's monthly budget is created once, by the first stamp."""
    prod.template("Monitoring").resource_count_is("AWS::Budgets::Budget", 1)
    prod.part_template(US, "Monitoring").resource_count_is("AWS::Budgets::Budget", 0)


def test_the_canary_code_compiles_and_never_prints(tmp_path):
    """The inline canary script is valid Python with the ``handler`` the canary names, and writes nothing to its
    log (no print, no logger: the token and the secret can never end up there). Running it needs the Synthetics
    runtime, a deployed pool and stamp: not testable here (docs/stamps-and-geode.md)."""
    import importlib.util

    from stacks.components.outside_check import CANARY_CODE

    (tmp_path / "index.py").write_text(CANARY_CODE)
    spec = importlib.util.spec_from_file_location("canary_index", tmp_path / "index.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # imports boto3 and the standard library only
    assert callable(module.handler)
    assert "print(" not in CANARY_CODE and "logger" not in CANARY_CODE and "logging" not in CANARY_CODE
