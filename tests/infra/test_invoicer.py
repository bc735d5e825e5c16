"""The saga on AWS (issue 15): the bucket of invoices and claim checks (data stack), the invoicer Lambda and its
Amazon MQ event source (invoicer stack), the services' access to the bucket and the broker, the saga's alarms,
and the invoicer's Docker-free bundle."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from aws_cdk.assertions import Match

from contract import claim_check, environment, invoices, saga
from stacks.alarm_table import OUTBOX_AGE_METRIC
from stacks.invoicer import HANDLER, NETWORK_INTERFACE_ACTIONS, REQUIREMENTS, SOURCES
from tests.infra.helpers import (
    container_of,
    dumps,
    env_vars,
    logical_id_of,
    render,
    task_role_statements,
)

pytestmark = pytest.mark.infra

BUCKET = "InvoicesF0222E8D"


def _bucket(env) -> dict:
    return env.templates["Data"]["Resources"][BUCKET]


def _bucket_name(env) -> str:
    return env.stage.config.saga_bucket_name("<AWS::AccountId>", "eu-west-1")


def _function(env) -> dict:
    return env.only("Invoicer", "AWS::Lambda::Function")["Properties"]


def _role_statements(env) -> list[dict]:
    role = _function(env)["Role"]["Fn::GetAtt"][0]
    return [
        statement
        for policy in env.resources("Invoicer", "AWS::IAM::Policy").values()
        if {"Ref": role} in policy["Properties"]["Roles"]
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    ]


def _as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def _s3_grants(statements: list[dict]) -> set[tuple[tuple[str, ...], str]]:
    return {
        (tuple(sorted(_as_list(s["Action"]))), render(s["Resource"]))
        for s in statements
        if "s3:" in dumps(s["Action"]) and "-invoices-" in dumps(s["Resource"])
    }


# --- the bucket -----------------------------------------------------------------------------------------------
def test_bucket_is_private_encrypted_versioned_and_owner_enforced(any_env):
    """The saga bucket blocks all public access, encrypts with SSE-S3, keeps versions and disables ACLs."""
    properties = _bucket(any_env)["Properties"]
    assert properties["PublicAccessBlockConfiguration"] == dict.fromkeys(
        ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets"), True
    )
    (rule,) = properties["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"] == {"SSEAlgorithm": "AES256"}
    assert properties["VersioningConfiguration"] == {"Status": "Enabled"}
    assert properties["OwnershipControls"] == {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}


def test_bucket_denies_requests_without_tls(any_env):
    """The bucket policy denies every request that does not use TLS."""
    (policy,) = any_env.resources(
        "Data", "AWS::S3::BucketPolicy", {"Properties": {"Bucket": {"Ref": BUCKET}}}
    ).values()
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    assert any(
        s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}} for s in statements
    )


def test_bucket_has_the_name_the_other_stacks_use(any_env):
    """The physical name is the config's, which the compute and invoicer stacks put in settings and grants."""
    assert render(_bucket(any_env)["Properties"]["BucketName"]) == _bucket_name(any_env)


def test_invoices_move_to_cheaper_storage_that_still_serves_downloads(any_env):
    """invoices/ goes to Standard-IA after 30 days and Glacier Instant Retrieval after 180 (a presigned GET still
    works at once: no restore), and never expires."""
    rules = {rule["Id"]: rule for rule in _bucket(any_env)["Properties"]["LifecycleConfiguration"]["Rules"]}
    rule = rules["InvoicesToCheaperStorage"]
    assert rule["Prefix"] == invoices.KEY_PREFIX and rule["Status"] == "Enabled"
    assert rule["Transitions"] == [
        {"StorageClass": "STANDARD_IA", "TransitionInDays": 30},
        {"StorageClass": "GLACIER_IR", "TransitionInDays": 180},
    ]
    assert "ExpirationInDays" not in rule


def test_claim_checks_expire_after_two_weeks(any_env):
    """claim-checks/ objects expire after 14 days."""
    rules = {rule["Id"]: rule for rule in _bucket(any_env)["Properties"]["LifecycleConfiguration"]["Rules"]}
    rule = rules["ExpireClaimChecks"]
    assert (rule["Prefix"], rule["ExpirationInDays"]) == (claim_check.KEY_PREFIX, 14)


def test_noncurrent_versions_expire(any_env):
    """Replaced or deleted objects' old versions are removed after 30 days (versioning does not keep them forever)."""
    rules = {rule["Id"]: rule for rule in _bucket(any_env)["Properties"]["LifecycleConfiguration"]["Rules"]}
    assert rules["ExpireOldVersions"]["NoncurrentVersionExpiration"] == {"NoncurrentDays": 30}


def test_prod_bucket_is_retained_when_the_stack_goes(prod):
    """In prod the bucket (issued invoices) survives a stack deletion."""
    assert _bucket(prod)["DeletionPolicy"] == "Retain"


# --- the invoicer function ------------------------------------------------------------------------------------
def test_invoicer_is_an_arm64_python_312_function_of_the_bundle(any_env):
    """arm64, Python 3.12, the handler in the bundled package, named by the config (the alarms name it)."""
    function = _function(any_env)
    assert (function["Architectures"], function["Runtime"], function["Handler"]) == (
        ["arm64"], "python3.12", HANDLER
    )
    assert function["FunctionName"] == any_env.stage.config.invoicer_function_name


def test_invoicer_runs_in_the_private_subnets_with_its_own_security_group(any_env):
    """The function is in the VPC's private-with-egress subnets with the invoicer stack's security group only."""
    vpc_config = _function(any_env)["VpcConfig"]
    group = logical_id_of(any_env, "Invoicer", "SecurityGroup", "AWS::EC2::SecurityGroup")
    assert vpc_config["SecurityGroupIds"] == [{"Fn::GetAtt": [group, "GroupId"]}]
    assert "appSubnet" in dumps(vpc_config["SubnetIds"])


def test_invoicer_settings_name_the_bucket_and_the_broker_secret(any_env):
    """INVOICES_BUCKET is the saga bucket, RABBITMQ_URL the broker's amqps endpoint, RABBITMQ_SECRET_ID the
    broker secret (no password in the template)."""
    variables = _function(any_env)["Environment"]["Variables"]
    assert set(variables) == {invoices.BUCKET_SETTING, invoices.BROKER_URL_SETTING, invoices.BROKER_SECRET_SETTING}
    assert render(variables[invoices.BUCKET_SETTING]) == _bucket_name(any_env)
    assert "BrokerAmqpEndpoints" in dumps(variables[invoices.BROKER_URL_SETTING])
    assert "BrokerCredentials" in dumps(variables[invoices.BROKER_SECRET_SETTING])


def test_event_source_reads_the_invoicer_queue_one_message_at_a_time_with_the_broker_secret(any_env):
    """The Amazon MQ mapping: the broker, queue invoicer.saga, batch size 1, the broker secret as its login,
    the default virtual host."""
    any_env.template("Invoicer").has_resource_properties("AWS::Lambda::EventSourceMapping", {
        "EventSourceArn": Match.object_like({"Fn::ImportValue": Match.string_like_regexp("BrokerArn")}),
        "Queues": [saga.INVOICER_EVENTS.name],
        "BatchSize": 1,
        "SourceAccessConfigurations": [
            {"Type": "BASIC_AUTH", "URI": Match.object_like({"Fn::ImportValue": Match.string_like_regexp(
                "BrokerCredentials")})},
            {"Type": "VIRTUAL_HOST", "URI": "/"},
        ],
    })


def test_invoicer_may_store_and_read_invoices_only(any_env):
    """The only S3 grant of the invoicer's role: GetObject (a replay's HeadObject) and PutObject on invoices/."""
    grants = {
        (tuple(sorted(_as_list(s["Action"]))), render(s["Resource"]))
        for s in _role_statements(any_env)
        if "s3:" in dumps(s["Action"])
    }
    assert grants == {(("s3:GetObject", "s3:PutObject"), f"arn:aws:s3:::{_bucket_name(any_env)}/invoices/*")}


def test_invoicer_reads_the_broker_secret_describes_the_broker_and_manages_its_interfaces(any_env):
    """Besides S3 and its log group: read the broker secret, mq:DescribeBroker on the broker, and the EC2
    network-interface actions (no resource-level permissions); nothing else."""
    others = [
        s for s in _role_statements(any_env)
        if not any(prefix in dumps(s["Action"]) for prefix in ('"s3:', '"logs:'))
    ]
    by_action = {tuple(sorted(_as_list(s["Action"]))): s["Resource"] for s in others}
    assert set(by_action) == {
        ("secretsmanager:DescribeSecret", "secretsmanager:GetSecretValue"),
        ("mq:DescribeBroker",),
        tuple(sorted(NETWORK_INTERFACE_ACTIONS)),
    }
    assert "BrokerCredentials" in dumps(by_action[("secretsmanager:DescribeSecret", "secretsmanager:GetSecretValue")])
    assert "BrokerArn" in dumps(by_action[("mq:DescribeBroker",)])
    assert by_action[tuple(sorted(NETWORK_INTERFACE_ACTIONS))] == "*"


def test_invoicer_reaches_the_broker_on_amqps_and_aws_apis_on_https_only(any_env):
    """The invoicer's group may send 443 anywhere (S3 endpoint, Secrets Manager) and 5671 to the broker's group;
    the broker's group admits 5671 from it (a rule in the invoicer stack, so the data stack stays independent)."""
    group = logical_id_of(any_env, "Invoicer", "SecurityGroup", "AWS::EC2::SecurityGroup")
    properties = any_env.template("Invoicer").to_json()["Resources"][group]["Properties"]
    assert [(r["IpProtocol"], r["FromPort"], r["CidrIp"]) for r in properties["SecurityGroupEgress"]] == [
        ("tcp", 443, "0.0.0.0/0")
    ]
    (egress,) = any_env.resources("Invoicer", "AWS::EC2::SecurityGroupEgress").values()
    assert (egress["Properties"]["FromPort"], egress["Properties"]["ToPort"]) == (5671, 5671)
    assert "BrokerSecurityGroup" in dumps(egress["Properties"]["DestinationSecurityGroupId"])
    (ingress,) = any_env.resources("Invoicer", "AWS::EC2::SecurityGroupIngress").values()
    assert (ingress["Properties"]["FromPort"], ingress["Properties"]["ToPort"]) == (5671, 5671)
    assert "BrokerSecurityGroup" in dumps(ingress["Properties"]["GroupId"])
    assert ingress["Properties"]["SourceSecurityGroupId"] == {"Fn::GetAtt": [group, "GroupId"]}


def test_invoicer_stack_comes_after_the_data_stack(any_env):
    """The invoicer depends on the data stack (bucket, broker, secret), never the other way round."""
    stage = any_env.stage
    assert stage.data in stage.invoicer.dependencies
    assert stage.invoicer not in stage.data.dependencies


# --- the services ---------------------------------------------------------------------------------------------
def test_billing_may_read_invoices_and_store_and_read_claim_checks(any_env):
    """Billing's task role: GetObject on invoices/ (the presigned downloads), Get/Put on claim-checks/."""
    bucket = _bucket_name(any_env)
    assert _s3_grants(task_role_statements(any_env, "billing")) == {
        (("s3:GetObject",), f"arn:aws:s3:::{bucket}/invoices/*"),
        (("s3:GetObject", "s3:PutObject"), f"arn:aws:s3:::{bucket}/claim-checks/*"),
    }


def test_inventory_may_store_and_read_claim_checks_only(any_env):
    """Inventory's task role: Get/Put on claim-checks/ of the saga bucket, nothing of invoices/."""
    assert _s3_grants(task_role_statements(any_env, "inventory")) == {
        (("s3:GetObject", "s3:PutObject"), f"arn:aws:s3:::{_bucket_name(any_env)}/claim-checks/*"),
    }


def test_services_get_the_saga_bucket_and_inventory_the_broker(any_env):
    """Billing gets INVOICES_BUCKET and CLAIM_CHECK_BUCKET, its express consumer CLAIM_CHECK_BUCKET only (it
    serves no downloads), inventory CLAIM_CHECK_BUCKET and the broker's URL and secret; all name the saga
    bucket or the broker."""
    bucket = _bucket_name(any_env)
    billing, express, inventory = (
        env_vars(container_of(any_env, name)) for name in ("billing", "billing-express", "inventory")
    )
    assert render(billing[environment.INVOICES_BUCKET.name]) == bucket
    assert render(billing[environment.CLAIM_CHECK_BUCKET.name]) == bucket
    assert render(express[environment.CLAIM_CHECK_BUCKET.name]) == bucket
    assert environment.INVOICES_BUCKET.name not in express
    assert render(inventory[environment.CLAIM_CHECK_BUCKET.name]) == bucket
    assert environment.INVOICES_BUCKET.name not in inventory
    assert "BrokerAmqpEndpoints" in dumps(inventory[environment.RABBITMQ_URL.name])
    assert "BrokerCredentials" in dumps(inventory[environment.RABBITMQ_SECRET_ID.name])


# --- alarms ---------------------------------------------------------------------------------------------------
def _alarm(env, name: str) -> dict:
    (found,) = [
        alarm["Properties"]
        for logical_id, alarm in env.resources("Monitoring", "AWS::CloudWatch::Alarm").items()
        if logical_id.startswith(name)
    ]
    return found


@pytest.mark.parametrize("queue", saga.SAGA_QUEUES, ids=lambda queue: queue.name)
def test_a_saga_dead_letter_pages(any_env, queue):
    """One message in a saga dead-letter queue raises its alarm: Amazon MQ's MessageCount of that queue."""
    alarm = _alarm(any_env, f"{queue.consumer.capitalize()}SagaDeadLetters")
    assert (alarm["Namespace"], alarm["MetricName"], alarm["Statistic"]) == ("AWS/AmazonMQ", "MessageCount", "Maximum")
    dimensions = {d["Name"]: render(d["Value"]) for d in alarm["Dimensions"]}
    assert dimensions == {"Broker": f"movies-{any_env.name}-broker", "VirtualHost": "/",
                          "Queue": queue.dead_letter_queue}
    assert (alarm["ComparisonOperator"], alarm["Threshold"]) == ("GreaterThanThreshold", 0)


@pytest.mark.parametrize("service", ["billing", "inventory"])
def test_events_stuck_in_an_outbox_page(any_env, service):
    """The outbox's oldest pending event older than two minutes, twice in a row, raises the service's alarm
    (the gauge the ADOT sidecar exports to Movies/<service>)."""
    alarm = _alarm(any_env, f"{service.capitalize()}OutboxStuck")
    assert (alarm["Namespace"], alarm["MetricName"]) == (f"Movies/{service}", OUTBOX_AGE_METRIC)
    assert alarm["Dimensions"] == [{"Name": "outbox", "Value": "outbox"}]
    assert (alarm["Threshold"], alarm["EvaluationPeriods"], alarm["DatapointsToAlarm"]) == (120, 2, 2)


def test_collector_exports_the_outbox_age(any_env):
    """Every task's collector turns outbox_oldest_pending_age_seconds into a CloudWatch metric by outbox."""
    collectors = [
        container
        for definition in any_env.resources("Compute", "AWS::ECS::TaskDefinition").values()
        for container in definition["Properties"]["ContainerDefinitions"]
        if container["Name"] == "adot-collector"
    ]
    assert collectors
    for collector in collectors:
        value = env_vars(collector)["AOT_CONFIG_CONTENT"]  # a Fn::Join: the region is a token
        config = "".join(part for part in value["Fn::Join"][1] if isinstance(part, str))
        declaration = {"dimensions": [["outbox"]], "metric_name_selectors": [f"^{OUTBOX_AGE_METRIC}$"]}
        assert json.dumps(declaration, separators=(",", ":")) in config


def test_a_failing_invoicer_pages(any_env):
    """Any invoicer error (an invocation raised or timed out) raises InvoicerErrors."""
    alarm = _alarm(any_env, "InvoicerErrors")
    assert (alarm["Namespace"], alarm["MetricName"]) == ("AWS/Lambda", "Errors")
    assert alarm["Dimensions"] == [{"Name": "FunctionName", "Value": any_env.stage.config.invoicer_function_name}]
    assert (alarm["ComparisonOperator"], alarm["Threshold"]) == ("GreaterThanThreshold", 0)


# --- the bundle, for real (pip downloads the wheels from PyPI) ------------------------------------------------
@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    """The invoicer's asset directory, bundled by the class ``cdk synth`` uses."""
    from stacks.components.lambda_bundle import ARM64_PLATFORMS, PipWheelsBundling

    out = tmp_path_factory.mktemp("invoicer-bundle")
    bundling = PipWheelsBundling(REQUIREMENTS, SOURCES, platforms=ARM64_PLATFORMS, python_version="3.12")
    assert bundling.try_bundle(str(out), None) is True
    return out


def test_bundle_holds_the_handler_the_contract_and_its_libraries(bundle):
    """invoices/handler.py, contract/saga.py, pika and fpdf are at their import paths; nothing of services/ is
    needed (no module imports ``common``)."""
    for path in ("invoices/handler.py", "invoices/broker.py", "contract/saga.py", "pika/__init__.py",
                 "fpdf/__init__.py"):
        assert (bundle / path).is_file(), path
    sources = "\n".join(path.read_text() for path in (bundle / "invoices").glob("*.py"))
    assert "from common" not in sources and "import common" not in sources
