"""DataStack: PostgreSQL instances and the Amazon MQ broker (cdk-nag has no MQ rules: asserted here)."""

from __future__ import annotations

import json

import pytest

from stacks.config import ENVIRONMENTS
from tests.infra.helpers import dumps, logical_id_of

pytestmark = pytest.mark.infra


def _db_instances(env):
    return env.resources("Data", "AWS::RDS::DBInstance")


def _database_count(env) -> int:
    """Inventory's database plus one per billing shard (issue 16: shard 0 is billing_db)."""
    return 1 + ENVIRONMENTS[env.name].billing_shards


def _ingress_rules(env, stack: str):
    return list(env.resources(stack, "AWS::EC2::SecurityGroupIngress").values())


def test_postgres_instances_per_service_and_billing_shard_with_pinned_minor_version(any_env):
    """One instance per service (billing: one per shard, each with database billing_db), engine version pinned to
    a full minor version (no major-only pin)."""
    instances = _db_instances(any_env).values()
    shards = ENVIRONMENTS[any_env.name].billing_shards
    assert sorted(i["Properties"]["DBName"] for i in instances) == ["billing_db"] * shards + ["movies_db"]
    for instance in instances:
        assert instance["Properties"]["Engine"] == "postgres"
        assert instance["Properties"]["EngineVersion"].count(".") == 1
        assert instance["Properties"]["AutoMinorVersionUpgrade"] is False


def test_databases_are_encrypted_private_and_backed_up(any_env):
    """Storage encryption on, no public access, automated backups retained per config."""
    for instance in _db_instances(any_env).values():
        props = instance["Properties"]
        assert props["StorageEncrypted"] is True
        assert props["PubliclyAccessible"] is False
        assert props["BackupRetentionPeriod"] == {"dev": 1, "prod": 14}[any_env.name]


@pytest.mark.parametrize(("env_name", "multi_az"), [("dev", False), ("prod", True)])
def test_multi_az_follows_config(synthesized, env_name, multi_az):
    """dev runs single-AZ databases, prod Multi-AZ."""
    for instance in _db_instances(synthesized[env_name]).values():
        assert instance["Properties"]["MultiAZ"] is multi_az


@pytest.mark.parametrize(("env_name", "protection", "policy"), [("dev", False, "Delete"), ("prod", True, "Snapshot")])
def test_deletion_protection_and_snapshot_on_removal_follow_config(synthesized, env_name, protection, policy):
    """prod keeps deletion protection and takes a final snapshot; dev can be destroyed."""
    for instance in _db_instances(synthesized[env_name]).values():
        assert instance["Properties"]["DeletionProtection"] is protection
        assert instance["DeletionPolicy"] == policy


def test_tls_is_forced_by_the_parameter_group(any_env):
    """rds.force_ssl=1 on the parameter group of every instance."""
    groups = any_env.resources("Data", "AWS::RDS::DBParameterGroup")
    assert len(groups) == _database_count(any_env)
    for group in groups.values():
        assert group["Properties"]["Parameters"]["rds.force_ssl"] == "1"
    for instance in _db_instances(any_env).values():
        assert "Ref" in instance["Properties"]["DBParameterGroupName"]


def test_postgres_logs_are_exported_to_log_groups_with_retention(any_env):
    """Each instance exports its PostgreSQL log to a stack-owned log group created first, with retention."""
    groups = any_env.resources("Data", "AWS::Logs::LogGroup")
    for service in ("inventory", "billing"):
        name = f"/aws/rds/instance/movies-{any_env.name}-{service}/postgresql"
        (group_id,) = [i for i, g in groups.items() if g["Properties"].get("LogGroupName") == name]
        assert groups[group_id]["Properties"]["RetentionInDays"] == {"dev": 7, "prod": 90}[any_env.name]
        (instance,) = [
            i
            for i in _db_instances(any_env).values()
            if i["Properties"]["DBInstanceIdentifier"] == f"movies-{any_env.name}-{service}"
        ]
        assert instance["Properties"]["EnableCloudwatchLogsExports"] == ["postgresql"]
        assert group_id in instance["DependsOn"]


def test_databases_live_in_isolated_subnets(any_env):
    """The subnet groups use the isolated ("data") subnets."""
    for group in any_env.resources("Data", "AWS::RDS::DBSubnetGroup").values():
        assert "dataSubnet" in dumps(group["Properties"]["SubnetIds"])


def test_credentials_are_generated_secrets_with_rotation(any_env):
    """Each database user is generated into Secrets Manager and rotated on a schedule; so is the broker user."""
    for instance in _db_instances(any_env).values():
        assert "{{resolve:secretsmanager:" in dumps(instance["Properties"]["MasterUserPassword"])
    schedules = any_env.resources("Data", "AWS::SecretsManager::RotationSchedule").values()
    assert len(schedules) == _database_count(any_env) + 1  # and the broker's
    for schedule in schedules:
        assert schedule["Properties"]["RotationRules"]["ScheduleExpression"] == "rate(30 days)"


@pytest.mark.parametrize(("db", "service"), [("InventoryDb", "InventoryTasks"), ("BillingDb", "BillingTasks")])
def test_database_admits_5432_only_from_its_service_and_its_rotation_function(any_env, db, service):
    """The database security group admits exactly its own service's tasks and its rotation function."""
    db_group = logical_id_of(any_env, "Data", f"{db}InstanceSecurityGroup", "AWS::EC2::SecurityGroup")
    rules = [
        r["Properties"]
        for r in _ingress_rules(any_env, "Data")
        if r["Properties"]["GroupId"] == {"Fn::GetAtt": [db_group, "GroupId"]}
    ]
    assert len(rules) == 2
    # The port is the instance's endpoint port (PostgreSQL default 5432), referenced, not repeated.
    instance = logical_id_of(any_env, "Data", f"{db}Instance", "AWS::RDS::DBInstance")
    port = {"Fn::GetAtt": [instance, "Endpoint.Port"]}
    assert all(r["FromPort"] == port and r["ToPort"] == port for r in rules)
    sources = [dumps(r["SourceSecurityGroupId"]) for r in rules]
    assert sum(service in source for source in sources) == 1
    assert sum("RotationSingleUser" in source for source in sources) == 1


def _broker(env):
    return env.only("Data", "AWS::AmazonMQ::Broker")["Properties"]


def test_broker_is_rabbitmq_and_not_publicly_accessible(any_env):
    """Amazon MQ for RabbitMQ, reachable only inside the VPC."""
    broker = _broker(any_env)
    assert broker["EngineType"] == "RABBITMQ"
    assert broker["PubliclyAccessible"] is False


def test_broker_sends_general_logs_to_cloudwatch(any_env):
    """Broker logs are published to CloudWatch Logs."""
    assert _broker(any_env)["Logs"] == {"General": True}


def test_broker_lives_in_private_subnets(any_env):
    """Only private-with-egress ("app") subnets, never public ones."""
    subnets = dumps(_broker(any_env)["SubnetIds"])
    assert "appSubnet" in subnets
    assert "publicSubnet" not in subnets


@pytest.mark.parametrize(
    ("env_name", "mode", "subnets"), [("dev", "SINGLE_INSTANCE", 1), ("prod", "CLUSTER_MULTI_AZ", 2)]
)
def test_broker_deployment_mode_follows_config(synthesized, env_name, mode, subnets):
    """Single instance in dev (mq.t3.micro); a multi-AZ cluster in prod."""
    broker = _broker(synthesized[env_name])
    assert broker["DeploymentMode"] == mode
    assert len(broker["SubnetIds"]) == subnets


def test_broker_credentials_are_secrets_manager_dynamic_references(any_env):
    """Username and password are resolved by CloudFormation from Secrets Manager at deploy time."""
    (user,) = _broker(any_env)["Users"]
    for key in ("Username", "Password"):
        assert "{{resolve:secretsmanager:" in dumps(user[key])
        assert f":SecretString:{key.lower()}::}}}}" in dumps(user[key])


def test_no_template_contains_a_plain_text_password(any_env):
    """No stack carries a literal password, only dynamic references or generated-secret templates."""
    for stack, template in any_env.templates.items():
        for resource in template["Resources"].values():
            for key, value in resource.get("Properties", {}).items():
                if "password" in key.lower() and key != "GenerateSecretString":
                    assert "{{resolve:" in json.dumps(value), f"{stack}: {key}"


def test_broker_admits_amqps_only_from_the_saga_services_and_its_event_source(any_env):
    """The broker security group has exactly five ingress rules in the data stack: 5671 from gateway, billing
    and inventory tasks (issue 15: inventory takes part in the saga) and from itself (Lambda's Amazon MQ event
    source polls with the broker's group), and 443 (management API) from the rotation Lambda only. (The
    invoicer's 5671 rule lives in the invoicer stack: test_invoicer.py.)"""
    broker_group = logical_id_of(any_env, "Data", "BrokerSecurityGroup", "AWS::EC2::SecurityGroup")
    rules = [
        r["Properties"]
        for r in _ingress_rules(any_env, "Data")
        if r["Properties"]["GroupId"] == {"Fn::GetAtt": [broker_group, "GroupId"]}
    ]
    assert sorted((r["FromPort"], r["ToPort"]) for r in rules) == [(443, 443)] + [(5671, 5671)] * 4
    (management,) = [r for r in rules if r["FromPort"] == 443]
    assert "BrokerRotationSecurityGroup" in dumps(management["SourceSecurityGroupId"])
    rules = [r for r in rules if r["FromPort"] == 5671]
    sources = sorted(dumps(r["SourceSecurityGroupId"]) for r in rules)
    for source in ("GatewayTasks", "BillingTasks", "InventoryTasks", broker_group):
        assert len([text for text in sources if source in text]) == 1, source
    group = any_env.templates["Data"]["Resources"][broker_group]["Properties"]
    assert "SecurityGroupIngress" not in group


def test_rotation_functions_run_where_they_can_reach_secrets_manager(any_env):
    """Rotation Lambdas sit in the private-with-egress subnets (NAT / endpoint), not the isolated ones."""
    applications = any_env.resources("Data", "AWS::Serverless::Application").values()
    assert len(applications) == _database_count(any_env)
    for application in applications:
        subnets = dumps(application["Properties"]["Parameters"]["vpcSubnetIds"])
        assert "appSubnet" in subnets
        assert "dataSubnet" not in subnets


# --- issue 11: rotation of the broker user, PI / Enhanced Monitoring, AWS Backup ------------------------------


@pytest.mark.parametrize(("env_name", "enabled"), [("dev", False), ("prod", True)])
def test_performance_insights_and_enhanced_monitoring_in_prod_only(synthesized, env_name, enabled):
    """prod: Performance Insights (7 days, free tier) and Enhanced Monitoring every 60 s; dev: neither."""
    for instance in _db_instances(synthesized[env_name]).values():
        props = instance["Properties"]
        assert bool(props.get("EnablePerformanceInsights")) is enabled
        assert (props.get("MonitoringInterval", 0) == 60) is enabled
        assert ("MonitoringRoleArn" in props) is enabled
        if enabled:
            assert props["PerformanceInsightsRetentionPeriod"] == 7


def test_database_secrets_keep_their_single_user_rotation(any_env):
    """Every RDS secret (inventory's, each billing shard's) rotates with the hosted single-user rotation."""
    schedules = any_env.resources("Data", "AWS::SecretsManager::RotationSchedule")
    hosted = [s for s in schedules.values() if "RotationSingleUser" in dumps(s["Properties"]["RotationLambdaARN"])]
    assert len(hosted) == _database_count(any_env)


def test_broker_secret_rotates_with_our_lambda(any_env):
    """The broker secret has a rotation schedule whose Lambda is functions/broker_rotation (Python 3.12,
    handler.handler) in the private subnets with egress, told the broker's management URL."""
    schedules = any_env.resources("Data", "AWS::SecretsManager::RotationSchedule")
    (schedule,) = [s for s in schedules.values() if s["Properties"]["SecretId"] == {"Ref": "BrokerCredentials3A27FE8A"}]
    assert schedule["Properties"]["RotationRules"] == {"ScheduleExpression": "rate(30 days)"}
    function_id = schedule["Properties"]["RotationLambdaARN"]["Fn::GetAtt"][0]
    function = any_env.templates["Data"]["Resources"][function_id]["Properties"]
    assert (function["Runtime"], function["Handler"]) == ("python3.12", "handler.handler")
    subnets = dumps(function["VpcConfig"]["SubnetIds"])
    assert "appSubnet" in subnets and "dataSubnet" not in subnets
    assert "ConsoleURLs" in dumps(function["Environment"]["Variables"]["BROKER_MANAGEMENT_URL"])


def test_rotation_lambda_may_rotate_only_the_broker_secret(any_env):
    """Its role's Secrets Manager actions name exactly the broker secret (GetRandomPassword has no resource)."""
    policy = logical_id_of(any_env, "Data", "BrokerRotationFunctionServiceRoleDefaultPolicy", "AWS::IAM::Policy")
    statements = any_env.templates["Data"]["Resources"][policy]["Properties"]["PolicyDocument"]["Statement"]
    for statement in statements:
        if statement["Resource"] == "*":
            assert statement["Action"] == "secretsmanager:GetRandomPassword"
        else:
            assert statement["Resource"] == {"Ref": "BrokerCredentials3A27FE8A"}
            assert "secretsmanager:PutSecretValue" in statement["Action"]


def test_daily_backup_plan_covers_every_database(any_env):
    """AWS Backup: one daily rule, retention by environment, selecting exactly the instances (inventory's and
    every billing shard's)."""
    plan = any_env.only("Data", "AWS::Backup::BackupPlan")["Properties"]["BackupPlan"]
    (rule,) = plan["BackupPlanRule"]
    assert rule["ScheduleExpression"].startswith("cron(0 2 ")
    assert rule["Lifecycle"]["DeleteAfterDays"] == {"dev": 7, "prod": 35}[any_env.name]
    selection = any_env.only("Data", "AWS::Backup::BackupSelection")["Properties"]["BackupSelection"]
    resources = dumps(selection["Resources"])
    assert "InventoryDbInstance" in resources and "BillingDbInstance" in resources
    for shard in range(1, ENVIRONMENTS[any_env.name].billing_shards):
        assert f"BillingShard{shard}Instance" in resources
    assert len(selection["Resources"]) == _database_count(any_env)


@pytest.mark.parametrize(("env_name", "copies"), [("dev", False), ("prod", True)])
def test_prod_copies_every_recovery_point_to_a_second_region(synthesized, env_name, copies):
    """prod: a copy action to the vault movies-prod-backup-copy in the configured second region."""
    env = synthesized[env_name]
    (rule,) = env.only("Data", "AWS::Backup::BackupPlan")["Properties"]["BackupPlan"]["BackupPlanRule"]
    actions = rule.get("CopyActions", [])
    assert bool(actions) is copies
    if copies:
        destination = dumps(actions[0]["DestinationBackupVaultArn"])
        assert ":backup:eu-central-1:" in destination and "backup-vault:movies-prod-backup-copy" in destination
        assert actions[0]["Lifecycle"]["DeleteAfterDays"] == 35
