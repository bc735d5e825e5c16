"""Issue 16, AWS side: the billing shard databases (dev 1, prod 2), their settings in the billing tasks, their
secrets, alarms and dashboard rows. Shard 0 is the original billing_db (``BillingDb``), unchanged; shard k >= 1 is
``BillingShard<k>``, its own RDS instance and secret (contract.shards)."""

from __future__ import annotations

import dataclasses
import re

import pytest
from aws_cdk import Environment

from contract import environment
from contract.shards import MAX_SHARDS, shard_variable
from stacks.compute import EXPRESS_CONSUMER
from stacks.config import ENVIRONMENTS, PROD
from tests.infra.helpers import REPO_ROOT, cdk_context, container_of, dumps, env_vars, logical_id_of, task_definition_of

pytestmark = pytest.mark.infra

#: Containers that store orders, hence reach every shard.
ORDER_STORES = ("billing", EXPRESS_CONSUMER)
#: Properties that name an instance's own resources (identifier, secret, groups, role): all others must equal
#: billing_db's.
OWN_PROPERTIES = {
    "DBInstanceIdentifier",
    "MasterUsername",
    "MasterUserPassword",
    "DBParameterGroupName",
    "DBSubnetGroupName",
    "VPCSecurityGroups",
    "MonitoringRoleArn",
}


def _shards(env) -> int:
    return ENVIRONMENTS[env.name].billing_shards


def _label(shard: int) -> str:
    return "BillingDb" if shard == 0 else f"BillingShard{shard}"


def _instance(env, shard: int) -> tuple[str, dict]:
    logical_id = logical_id_of(env, "Data", f"{_label(shard)}Instance", "AWS::RDS::DBInstance")
    return logical_id, env.templates["Data"]["Resources"][logical_id]


def _secret_id(env, shard: int) -> str:
    return logical_id_of(
        env, "Data", f"Movies{env.name}Data{_label(shard)}InstanceSecret", "AWS::SecretsManager::Secret"
    )


@pytest.mark.parametrize(("env_name", "shards"), [("dev", 1), ("prod", 2)])
def test_each_environment_has_its_configured_billing_shard_databases(synthesized, env_name, shards):
    """dev has one billing database (shard 0 only), prod two: each its own instance named after its shard, each
    holding the database billing_db."""
    env = synthesized[env_name]
    instances = [
        db["Properties"]
        for db in env.resources("Data", "AWS::RDS::DBInstance").values()
        if db["Properties"]["DBName"] == "billing_db"
    ]
    identifiers = sorted(props["DBInstanceIdentifier"] for props in instances)
    expected = [f"movies-{env_name}-billing"] + [f"movies-{env_name}-billing-shard-{k}" for k in range(1, shards)]
    assert identifiers == expected


def test_every_shard_has_its_own_generated_secret(any_env):
    """Each shard's master password is a dynamic reference to its own generated secret (JSON username/password
    like billing_db's): as many distinct secrets as shards, none shared."""
    secrets = set()
    for shard in range(_shards(any_env)):
        _, instance = _instance(any_env, shard)
        secret = _secret_id(any_env, shard)
        assert secret in dumps(instance["Properties"]["MasterUserPassword"])
        generator = any_env.templates["Data"]["Resources"][secret]["Properties"]["GenerateSecretString"]
        assert generator["GenerateStringKey"] == "password" and '"username"' in generator["SecretStringTemplate"]
        secrets.add(secret)
    assert len(secrets) == _shards(any_env)


def test_every_shard_secret_rotates_like_billing_dbs(any_env):
    """Each shard's secret has the single-user rotation schedule billing_db's has (same period)."""
    schedules = any_env.resources("Data", "AWS::SecretsManager::RotationSchedule").values()
    for shard in range(_shards(any_env)):
        (schedule,) = [s for s in schedules if f"{_label(shard)}InstanceSecretAttachment" in dumps(s["Properties"])]
        assert "RotationSingleUser" in dumps(schedule["Properties"]["RotationLambdaARN"])
        assert schedule["Properties"]["RotationRules"]["ScheduleExpression"] == "rate(30 days)"


def test_shards_are_built_like_billing_db(any_env):
    """Class, engine, storage, encryption, Multi-AZ, backups, deletion protection, monitoring, log export and
    removal policy of every shard equal billing_db's in that environment; only its own names differ."""
    _, billing_db = _instance(any_env, 0)

    def shared(resource: dict) -> dict:
        properties = {k: v for k, v in resource["Properties"].items() if k not in OWN_PROPERTIES}
        return {**properties, "DeletionPolicy": resource["DeletionPolicy"]}

    for shard in range(1, _shards(any_env)):
        _, instance = _instance(any_env, shard)
        assert shared(instance) == shared(billing_db)
        assert "dataSubnet" in dumps(
            any_env.resources("Data", "AWS::RDS::DBSubnetGroup")[instance["Properties"]["DBSubnetGroupName"]["Ref"]]
        )
        group = any_env.templates["Data"]["Resources"][instance["Properties"]["DBParameterGroupName"]["Ref"]]
        assert group["Properties"]["Parameters"]["rds.force_ssl"] == "1"


def test_a_shard_admits_5432_only_from_the_billing_tasks_and_its_rotation_function(any_env):
    """Each shard's security group admits its port from exactly two sources: the billing tasks' group (billing
    and its express consumer share it) and its own rotation function."""
    for shard in range(1, _shards(any_env)):
        label = _label(shard)
        group = logical_id_of(any_env, "Data", f"{label}InstanceSecurityGroup", "AWS::EC2::SecurityGroup")
        rules = [
            r["Properties"]
            for r in any_env.resources("Data", "AWS::EC2::SecurityGroupIngress").values()
            if r["Properties"]["GroupId"] == {"Fn::GetAtt": [group, "GroupId"]}
        ]
        sources = sorted(dumps(r["SourceSecurityGroupId"]) for r in rules)
        assert len(sources) == 2
        assert sum("BillingTasks" in source for source in sources) == 1
        assert sum(f"{label}InstanceRotationSingleUser" in source for source in sources) == 1


@pytest.mark.parametrize("name", ORDER_STORES)
def test_order_storing_tasks_name_every_shard(any_env, name):
    """Billing and its express consumer get BILLING_SHARDS and, per shard k >= 1, its host, port, name and
    secret id under contract.shards' names, pointing at that shard's instance and secret; shard 0 stays
    DATABASE_* on billing_db."""
    env = env_vars(container_of(any_env, name))
    assert env[environment.BILLING_SHARDS.name] == str(_shards(any_env))
    assert "BillingDbInstance" in dumps(env[environment.DATABASE_HOST.name])
    for shard in range(1, _shards(any_env)):
        label = _label(shard)
        instance, _ = _instance(any_env, shard)
        assert instance in dumps(env[shard_variable(shard, "DATABASE_HOST")])
        assert instance in dumps(env[shard_variable(shard, "DATABASE_PORT")])
        assert env[shard_variable(shard, "DATABASE_NAME")] == "billing_db"
        assert f"{label}InstanceSecret" in dumps(env[shard_variable(shard, "DATABASE_SECRET_ID")])
    unknown = {n for n in env if n.startswith("BILLING_SHARD_") and int(n.split("_")[2]) >= _shards(any_env)}
    assert unknown == set()


@pytest.mark.parametrize("name", ORDER_STORES)
def test_order_storing_task_roles_read_exactly_the_shard_secrets(any_env, name):
    """The task role of billing (and of its express consumer) may GetSecretValue on every shard's secret and the
    broker's, nothing else: as many resources as shards + 1."""
    task_role = task_definition_of(any_env, name)["Properties"]["TaskRoleArn"]["Fn::GetAtt"][0]
    statements = [
        statement
        for policy in any_env.resources("Compute", "AWS::IAM::Policy").values()
        if {"Ref": task_role} in policy["Properties"]["Roles"]
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
        if "secretsmanager" in dumps(statement["Action"])
    ]
    (statement,) = statements
    resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
    assert len(resources) == _shards(any_env) + 1
    for shard in range(_shards(any_env)):
        assert sum(f"{_label(shard)}InstanceSecret" in dumps(resource) for resource in resources) == 1
    assert sum("BrokerCredentials" in dumps(resource) for resource in resources) == 1


def test_no_other_task_reaches_a_shard_secret(any_env):
    """Inventory and the gateway (which proxies order reads to billing) name no shard in their task definitions."""
    for name in ("inventory", "gateway"):
        assert "BillingShard" not in dumps(task_definition_of(any_env, name))
        assert not {n for n in env_vars(container_of(any_env, name)) if n.startswith("BILLING_SHARD")}


@pytest.mark.parametrize(
    ("suffix", "metric"),
    [("DbCpu", "CPUUtilization"), ("DbStorage", "FreeStorageSpace"), ("DbMemory", "FreeableMemory"),
     ("DbConnections", "DatabaseConnections")],
)  # fmt: skip
def test_each_shard_has_billing_dbs_alarms_on_its_own_instance(any_env, suffix, metric):
    """Per shard, the alarms billing_db has (CPU, free storage, freeable memory, connections), with the same
    threshold and comparison, on that shard's instance, notifying the alarm topic."""
    alarms = any_env.resources("Monitoring", "AWS::CloudWatch::Alarm")

    def alarm(label: str) -> dict:
        (found,) = [a["Properties"] for lid, a in alarms.items() if lid.startswith(f"{label}{suffix}")]
        return found

    original = alarm("Billing")
    for shard in range(1, _shards(any_env)):
        found = alarm(f"BillingShard{shard}")
        assert found["MetricName"] == metric
        for key in ("Threshold", "ComparisonOperator", "EvaluationPeriods"):
            assert found[key] == original[key], key
        (dimension,) = found["Dimensions"]
        assert dimension["Name"] == "DBInstanceIdentifier"
        instance, _ = _instance(any_env, shard)
        assert instance in dumps(dimension["Value"])
        assert "AlarmTopic" in dumps(found["AlarmActions"]) and "AlarmTopic" in dumps(found["OKActions"])


def test_the_dashboard_has_a_row_per_shard(any_env):
    """One dashboard row per billing shard: CPU, connections, free storage and freeable memory of that shard."""
    body = dumps(any_env.only("Monitoring", "AWS::CloudWatch::Dashboard")["Properties"]["DashboardBody"])
    titles = re.findall(r"Billing shard (\d+): ([a-zA-Z ()%]+)", body)
    assert sorted({int(shard) for shard, _ in titles}) == list(range(_shards(any_env)))
    for shard in range(_shards(any_env)):
        graphs = {what.strip() for number, what in titles if int(number) == shard}
        assert graphs == {"CPU (%)", "connections", "free storage (bytes)", "freeable memory (bytes)"}


def test_every_shard_alarm_has_a_runbook_line():
    """docs/operations.md names the shard alarms (``BillingShard<k>Db...``), so a page has a runbook line."""
    from stacks.alarm_table import alarm_specs

    text = (REPO_ROOT / "docs" / "operations.md").read_text()
    shard_alarms = {spec.id for spec in alarm_specs(PROD) if spec.id.startswith("BillingShard")}
    assert shard_alarms
    generic = {re.sub(r"Shard\d+", "Shard<k>", name) for name in shard_alarms}
    missing = [name for name in generic if f"`{name}`" not in text]
    assert missing == []


def test_the_shard_count_is_validated():
    """billing_shards outside 1 .. contract.shards.MAX_SHARDS is refused when the config is built."""
    for wrong in (0, MAX_SHARDS + 1):
        with pytest.raises(ValueError, match="billing_shards"):
            dataclasses.replace(PROD, billing_shards=wrong)


def test_adding_a_shard_leaves_the_existing_ones_untouched(prod):
    """prod with a third shard: BillingShard2 appears, and every resource of shard 0 (BillingDb) and shard 1
    (BillingShard1) keeps its logical id and every property: a new shard is an addition, never a change."""
    from stacks.application import new_app
    from stacks.stage import MicroservicesStage, stage_id
    from tests.infra.helpers import environment_without

    with environment_without("CDK_DEFAULT_ACCOUNT", "CDK_DEFAULT_REGION"):
        app = new_app(context=cdk_context(), validation=False)
        config = dataclasses.replace(PROD, billing_shards=3)
        stage = MicroservicesStage(app, stage_id(config.name), config=config, env=Environment(region=config.region))
        assembly = app.synth()
        three = assembly.get_stack_artifact(stage.data.artifact_id).template["Resources"]
    two = prod.templates["Data"]["Resources"]
    existing = re.compile(r"^(MoviesprodData)?(BillingDb|BillingShard1)")
    kept = {lid: resource for lid, resource in two.items() if existing.match(lid)}
    assert kept and {lid: three.get(lid) for lid in kept} == kept
    assert any(lid.startswith("BillingShard2Instance") for lid in three)



def test_make_cost_prices_every_shard_instance_and_its_storage(any_env):
    """The cost model has, per billing shard k >= 1, the rows billing_db has (its instance and its storage) as
    ``RDS BillingShard<k> ...`` at the same prices: the extra databases show in `make cost` and in the budget."""
    from cost.model import price

    rows = {item.what: (item.count, item.monthly_min, item.monthly_max) for item in price(any_env.templates)}

    def rows_of(prefix: str) -> dict:
        return {what.removeprefix(prefix): row for what, row in rows.items() if what.startswith(prefix)}

    billing_db = rows_of("RDS BillingDb ")
    assert len(billing_db) == 2
    for shard in range(1, _shards(any_env) + 1):
        assert rows_of(f"RDS BillingShard{shard} ") == (billing_db if shard < _shards(any_env) else {})
