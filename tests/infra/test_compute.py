"""ComputeStack: cluster, Fargate services, ALB listeners and authentication, WAF and autoscaling."""

from __future__ import annotations

import json

import pytest

from contract import environment, web
from contract.messaging import BILLING_QUEUE
from contract.services import service as contract_service
from stacks.config import ENVIRONMENTS
from tests.infra.helpers import (
    container_of,
    contract_names_of,
    dumps,
    env_vars,
    secret_names,
    service_of,
    task_definition_of,
)

pytestmark = pytest.mark.infra

SERVICES = {"inventory": 8080, "billing": 8080, "gateway": 3000}


def test_cluster_has_container_insights(any_env):
    """Container Insights is on (per-service task metrics used by alarms and scaling)."""
    cluster = any_env.only("Compute", "AWS::ECS::Cluster")["Properties"]
    assert {"Name": "containerInsights", "Value": "enabled"} in cluster["ClusterSettings"]


def test_services_run_in_private_subnets_without_public_ips(any_env):
    """Every service (the three, plus billing's express consumer) uses the private-with-egress subnets and never
    gets a public IP."""
    any_env.template("Compute").resource_count_is("AWS::ECS::Service", 4)
    for service in any_env.resources("Compute", "AWS::ECS::Service").values():
        network = service["Properties"]["NetworkConfiguration"]["AwsvpcConfiguration"]
        assert network["AssignPublicIp"] == "DISABLED"
        assert "appSubnet" in dumps(network["Subnets"])


def test_deployments_roll_back_through_the_circuit_breaker(any_env):
    """A failing deployment stops and rolls back automatically."""
    for service in any_env.resources("Compute", "AWS::ECS::Service").values():
        config = service["Properties"]["DeploymentConfiguration"]
        assert config["DeploymentCircuitBreaker"] == {"Enable": True, "Rollback": True}
        assert config["MinimumHealthyPercent"] == 100


@pytest.mark.parametrize("name", SERVICES)
def test_service_listens_on_its_contract_port(any_env, name):
    """PORT env and the container port match the service contract (8080 / 8080 / 3000)."""
    container = container_of(any_env, name)
    assert env_vars(container)["PORT"] == str(SERVICES[name])
    assert container["PortMappings"][0]["ContainerPort"] == SERVICES[name]


@pytest.mark.parametrize("name", SERVICES)
def test_container_health_check_calls_health_on_its_port(any_env, name):
    """The container health check runs common.healthcheck against /health on localhost."""
    command = container_of(any_env, name)["HealthCheck"]["Command"]
    assert command == ["CMD", "python", "-m", "common.healthcheck", f"http://127.0.0.1:{SERVICES[name]}/health"]


@pytest.mark.parametrize("name", SERVICES)
def test_image_is_a_container_asset(any_env, name):
    """Each image is a container asset (built from services/Dockerfile at deploy time)."""
    assert "container-assets" in dumps(container_of(any_env, name)["Image"])


def _docker_images(env) -> list[dict]:
    """The Compute stack's container-image assets (source and destinations) from its asset manifest."""
    manifest = env.template_paths["Compute"].with_name(
        env.template_paths["Compute"].name.replace(".template.json", ".assets.json")
    )
    return list(json.loads(manifest.read_text())["dockerImages"].values())


def test_every_image_builds_from_the_one_dockerfile_with_its_service_and_port(any_env):
    """One image per service, all from services/Dockerfile, told which service and port by build arguments."""
    sources = [image["source"] for image in _docker_images(any_env)]
    assert all(source["dockerFile"] == "services/Dockerfile" for source in sources)
    assert sorted((s["dockerBuildArgs"]["SERVICE"], s["dockerBuildArgs"]["PORT"]) for s in sources) == sorted(
        (name, str(port)) for name, port in SERVICES.items()
    )


def test_image_build_context_holds_only_contract_and_services(any_env):
    """The staged build context is the repository root narrowed to contract/ and services/, without caches
    or tests (the root .dockerignore allowlist, plus the construct's own excludes)."""
    for image in _docker_images(any_env):
        context = (any_env.template_paths["Compute"].parent / image["source"]["directory"]).resolve()
        assert {entry.name for entry in context.iterdir()} == {".dockerignore", "contract", "services"}
        unwanted = [p for p in context.rglob("*") if p.name in {"__pycache__", ".pytest_cache", "tests", ".venv"}]
        assert unwanted == []
        assert (context / "services" / image["source"]["dockerBuildArgs"]["SERVICE"]).is_dir()


@pytest.mark.parametrize("name", SERVICES)
def test_root_file_system_is_read_only_with_a_writable_tmp(any_env, name):
    """Read-only root file system; /tmp is a task-local scratch volume."""
    container = container_of(any_env, name)
    assert container["ReadonlyRootFilesystem"] is True
    assert container["MountPoints"] == [{"ContainerPath": "/tmp", "ReadOnly": False, "SourceVolume": "tmp"}]


@pytest.mark.parametrize("name", SERVICES)
def test_logs_go_to_a_log_group_with_retention(any_env, name):
    """awslogs driver into the service's own log group, which has the configured retention."""
    options = container_of(any_env, name)["LogConfiguration"]["Options"]
    group_id = options["awslogs-group"]["Ref"]
    group = any_env.templates["Compute"]["Resources"][group_id]["Properties"]
    assert group["RetentionInDays"] == {"dev": 7, "prod": 90}[any_env.name]


@pytest.mark.parametrize("name", SERVICES)
def test_container_sets_only_variables_the_contract_lists_for_the_service(any_env, name):
    """Every environment variable and secret of the container is one contract.environment lists for it."""
    container = container_of(any_env, name)
    assert set(env_vars(container)) | secret_names(container) <= contract_names_of(name)


@pytest.mark.parametrize("name", SERVICES)
def test_no_credential_is_in_the_task_definition(any_env, name):
    """ECS injects no secret (services read their secrets themselves) except the gateway's order-id key, and
    no plain variable is one the contract marks ``secret``."""
    container = container_of(any_env, name)
    secret_variables = {variable.name for variable in environment.variables_of(name) if variable.secret}
    injected = {environment.ORDER_ID_KEY.name} if name == "gateway" else set()
    assert secret_names(container) == injected
    assert not set(env_vars(container)) & secret_variables


def test_only_the_gateway_gets_the_order_id_key_from_its_secret(any_env):
    """ORDER_ID_KEY is injected from the OrderIdKey secret into the gateway; no other task definition names it."""
    (injected,) = container_of(any_env, "gateway")["Secrets"]
    assert injected["Name"] == environment.ORDER_ID_KEY.name
    assert "OrderIdKey" in dumps(injected["ValueFrom"])
    for name in ("inventory", "billing"):
        assert "OrderIdKey" not in dumps(task_definition_of(any_env, name))


def test_order_id_key_is_generated_as_64_hex_digits(any_env):
    """The key is generated by Secrets Manager (never written in the template): 64 characters of 0-9a-f."""
    secrets = any_env.resources("Data", "AWS::SecretsManager::Secret").values()
    (key,) = [s for s in secrets if "order ids" in s["Properties"].get("Description", "")]
    generator = key["Properties"]["GenerateSecretString"]
    assert "SecretString" not in key["Properties"]
    assert generator["PasswordLength"] == 64
    assert generator["ExcludeUppercase"] is True and generator["ExcludePunctuation"] is True
    assert set(generator["ExcludeCharacters"]) == set("ghijklmnopqrstuvwxyz")


def test_gateway_reaches_billing_by_its_service_connect_alias(any_env):
    """BILLING_URL is billing's Service Connect alias, and billing registers that alias."""
    assert env_vars(container_of(any_env, "gateway"))["BILLING_URL"] == "http://billing:8080"
    config = service_of(any_env, "billing")["Properties"]["ServiceConnectConfiguration"]
    assert config["Services"] == [{"ClientAliases": [{"DnsName": "billing", "Port": 8080}], "PortName": "http"}]


@pytest.mark.parametrize("name", SERVICES)
def test_only_a_single_worker_service_is_left_to_choose_its_worker_count(any_env, name):
    """Billing gets no GUNICORN_WORKERS (it enforces one worker itself); the others get their sized count."""
    workers = env_vars(container_of(any_env, name)).get("GUNICORN_WORKERS")
    assert (workers is None) is contract_service(name).single_worker


def _secret_arn_refs(env, name: str) -> dict[str, str]:
    """The container's *_SECRET_ID variables, each as its serialized value (a cross-stack import), for substring
    checks against the secret's logical id."""
    env_map = env_vars(container_of(env, name))
    return {key: dumps(value) for key, value in env_map.items() if key.endswith("_SECRET_ID")}


@pytest.mark.parametrize("name", ["inventory", "billing"])
def test_database_credentials_come_from_the_secret_the_service_reads(any_env, name):
    """DATABASE_SECRET_ID names the RDS secret; no user or password is in the task definition or injected by ECS
    (an injected password would be stale after the first rotation); host, port, name and sslmode are plain."""
    container = container_of(any_env, name)
    env = env_vars(container)
    assert env["DATABASE_SSLMODE"] == "require"
    assert env["DATABASE_NAME"] == {"inventory": "movies_db", "billing": "billing_db"}[name]
    assert {"DATABASE_HOST", "DATABASE_PORT", environment.DATABASE_SECRET_ID.name} <= set(env)
    label = {"inventory": "InventoryDb", "billing": "BillingDb"}[name]
    assert f"{label}InstanceSecret" in _secret_arn_refs(any_env, name)[environment.DATABASE_SECRET_ID.name]
    assert "Secrets" not in container
    assert not {environment.DATABASE_USER.name, environment.DATABASE_PASSWORD.name} & set(env)


@pytest.mark.parametrize("name", ["gateway", "billing"])
def test_broker_settings_reach_gateway_and_billing(any_env, name):
    """RABBITMQ_URL (first AMQP endpoint), the contract's queue and the broker secret's ARN are plain; no
    broker user or password anywhere in the task definition."""
    container = container_of(any_env, name)
    env = env_vars(container)
    assert "AmqpEndpoints" in dumps(env["RABBITMQ_URL"])
    assert env["BILLING_QUEUE"] == BILLING_QUEUE.name
    assert "BrokerCredentials" in _secret_arn_refs(any_env, name)[environment.RABBITMQ_SECRET_ID.name]
    assert "Broker" not in dumps(container.get("Secrets", []))
    assert not {environment.RABBITMQ_USER.name, environment.RABBITMQ_PASSWORD.name} & set(env)


@pytest.mark.parametrize("name", SERVICES)
def test_no_sdk_endpoint_or_keys_are_set_on_aws(any_env, name):
    """The AWS_SDK group stays unset: ECS sets AWS_REGION, the task role gives credentials, AWS's endpoints."""
    assert not {variable.name for variable in environment.AWS_SDK} & set(env_vars(container_of(any_env, name)))


def _policy_statements(env, role_logical_id: str) -> list[dict]:
    policies = env.resources("Compute", "AWS::IAM::Policy")
    return [
        statement
        for policy in policies.values()
        if {"Ref": role_logical_id} in policy["Properties"]["Roles"]
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    ]


def _actions(statements: list[dict]) -> list[str]:
    """Every action of ``statements`` (an Action is a string or a list of strings)."""
    return [a for s in statements for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])]


@pytest.mark.parametrize(
    ("name", "secrets"),
    [
        ("inventory", {"InventoryDb", "BrokerCredentials"}),  # issue 15: inventory takes part in the saga
        ("billing", {"BillingDb", "BrokerCredentials"}),
        ("gateway", {"BrokerCredentials", "RateLimitStoreCredentials"}),
    ],
)
def test_task_role_may_read_exactly_its_own_secrets(any_env, name, secrets):
    """The TASK role gets secretsmanager:GetSecretValue on exactly the service's secrets (no KMS: AWS-managed key;
    billing: every shard's, issue 16); the execution role has no Secrets Manager access (nothing is injected at
    start), the gateway's excepted (its order-id key; tested below)."""
    if name == "billing":
        secrets = secrets | {f"BillingShard{k}" for k in range(1, ENVIRONMENTS[any_env.name].billing_shards)}
    properties = task_definition_of(any_env, name)["Properties"]
    task_role = properties["TaskRoleArn"]["Fn::GetAtt"][0]
    execution_role = properties["ExecutionRoleArn"]["Fn::GetAtt"][0]
    # The task role's other statements (the ADOT sidecar's X-Ray and metrics-log writes) are checked in
    # test_telemetry.py: here, the only Secrets Manager statement is exactly this one.
    statements = [s for s in _policy_statements(any_env, task_role) if "secretsmanager" in dumps(s["Action"])]
    assert [s["Action"] for s in statements] == ["secretsmanager:GetSecretValue"]
    resources = statements[0]["Resource"]
    resources = resources if isinstance(resources, list) else [resources]
    assert len(resources) == len(secrets)
    assert {label for label in secrets for resource in resources if label in dumps(resource)} == secrets
    if name != "gateway":
        assert "secretsmanager" not in dumps(_policy_statements(any_env, execution_role))
    assert "kms:" not in dumps(statements)


@pytest.mark.parametrize("name", SERVICES)
def test_no_credential_is_a_plain_environment_variable(any_env, name):
    """No plain env var is named like a credential; credentials only arrive as ECS secrets."""
    for var in env_vars(container_of(any_env, name)):
        assert not var.endswith(("_USER", "_PASSWORD", "_SECRET", "_TOKEN", "_KEY")), var


def test_inventory_gets_the_broker_login_only_as_a_secret_id(any_env):
    """Inventory takes part in the saga: it gets the broker's URL and the id of its login's secret (read at
    run time), never a queue name of billing's or a credential in its environment."""
    container = container_of(any_env, "inventory")
    assert {n for n in set(env_vars(container)) if n.startswith(("RABBITMQ", "BILLING"))} == {
        "RABBITMQ_URL", "RABBITMQ_SECRET_ID"
    }
    assert not {n for n in secret_names(container) if n.startswith("RABBITMQ")}


def test_gateway_reaches_inventory_through_service_connect(any_env):
    """INVENTORY_URL is the Service Connect alias, and inventory registers that alias."""
    assert env_vars(container_of(any_env, "gateway"))["INVENTORY_URL"] == "http://inventory:8080"
    inventory = service_of(any_env, "inventory")["Properties"]["ServiceConnectConfiguration"]
    assert inventory["Services"] == [{"ClientAliases": [{"DnsName": "inventory", "Port": 8080}], "PortName": "http"}]
    gateway = service_of(any_env, "gateway")["Properties"]["ServiceConnectConfiguration"]
    assert gateway["Enabled"] is True


def test_gateway_gets_the_auth_settings(any_env):
    """Issuer, JWKS, region and allowed client ids are passed; AUTH_REQUIRED is always true."""
    env = env_vars(container_of(any_env, "gateway"))
    assert env["AUTH_REQUIRED"] == "true"
    assert "https://cognito-idp." in dumps(env["AUTH_ISSUER"])
    assert dumps(env["AUTH_JWKS_URL"]).endswith('"/.well-known/jwks.json"]]}')
    assert env["COGNITO_REGION"] == "eu-west-1"
    assert "UserPool" in dumps(env["AUTH_ISSUER"])
    assert "MachineClient" in dumps(env["AUTH_ALLOWED_CLIENT_IDS"])


def test_gateway_maps_cognito_scopes_and_groups_to_permissions(any_env):
    """Scopes arrive as movies-api/<scope>; people get permissions from their Cognito groups."""
    env = env_vars(container_of(any_env, "gateway"))
    assert env["AUTH_SCOPE_PREFIX"] == "movies-api/"
    assert env["AUTH_GROUP_PERMISSIONS"] == (
        "admins=movies.read movies.write billing.write billing.read;editors=movies.read movies.write;"
        "viewers=movies.read;customers=billing.write"
    )


def test_gateway_trusts_no_alb_signed_session(any_env):
    """No ALB login exists any more (browsers use the web front end's client): the gateway accepts no
    x-amzn-oidc-data, whoever signed it."""
    assert "AUTH_ALB_ARN" not in env_vars(container_of(any_env, "gateway"))


@pytest.mark.parametrize("name", SERVICES)
def test_task_role_is_separate_from_the_execution_role(any_env, name):
    """Task and execution roles differ (test_task_role_may_read_exactly_its_own_secrets says what the task role
    may do)."""
    props = task_definition_of(any_env, name)["Properties"]
    assert props["TaskRoleArn"] != props["ExecutionRoleArn"]


@pytest.mark.parametrize("name", SERVICES)
def test_execution_role_only_pulls_the_image_and_writes_logs(any_env, name):
    """The execution role reads no secret (ECS injects none): ECR pull and CloudWatch Logs only; the gateway's
    may also read exactly the order-id key it injects."""
    props = task_definition_of(any_env, name)["Properties"]
    statements = _policy_statements(any_env, props["ExecutionRoleArn"]["Fn::GetAtt"][0])
    expected = {"ecr", "logs", "secretsmanager"} if name == "gateway" else {"ecr", "logs"}
    assert {action.split(":")[0] for action in _actions(statements)} == expected
    reading = [s for s in statements if "secretsmanager" in dumps(s["Action"])]
    for statement in reading:
        resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        assert all("OrderIdKey" in dumps(resource) for resource in resources)


@pytest.mark.parametrize(("env_name", "provider"), [("dev", "FARGATE_SPOT"), ("prod", "FARGATE")])
def test_billing_capacity_provider_follows_config(synthesized, env_name, provider):
    """Billing may run on Fargate Spot in dev; prod uses on-demand Fargate."""
    strategy = service_of(synthesized[env_name], "billing")["Properties"]["CapacityProviderStrategy"]
    assert strategy == [{"CapacityProvider": provider, "Weight": 1}]


@pytest.mark.parametrize(("env_name", "arch"), [("dev", "X86_64"), ("prod", "ARM64")])
def test_cpu_architecture_follows_config(synthesized, env_name, arch):
    """Task definitions declare the configured CPU architecture."""
    for task in synthesized[env_name].resources("Compute", "AWS::ECS::TaskDefinition").values():
        assert task["Properties"]["RuntimePlatform"]["CpuArchitecture"] == arch


def test_only_the_gateway_is_behind_the_load_balancer(any_env):
    """One target group, targeting the gateway container on 3000; other services have no LB."""
    any_env.template("Compute").resource_count_is("AWS::ElasticLoadBalancingV2::TargetGroup", 1)
    for name in ("inventory", "billing"):
        assert "LoadBalancers" not in service_of(any_env, name)["Properties"]
    (binding,) = service_of(any_env, "gateway")["Properties"]["LoadBalancers"]
    assert (binding["ContainerName"], binding["ContainerPort"]) == ("gateway", 3000)


def test_target_group_health_check_uses_health(any_env):
    """Target group health is liveness (/health), see the comment in compute.py for why not /ready."""
    target_group = any_env.only("Compute", "AWS::ElasticLoadBalancingV2::TargetGroup")["Properties"]
    assert (target_group["HealthCheckPath"], target_group["TargetType"]) == ("/health", "ip")


def test_load_balancer_is_internet_facing_in_public_subnets_and_drops_bad_headers(any_env):
    """Internet-facing ALB in the public subnets, invalid header fields dropped, access logs on."""
    alb = any_env.only("Compute", "AWS::ElasticLoadBalancingV2::LoadBalancer")["Properties"]
    assert alb["Scheme"] == "internet-facing"
    assert "publicSubnet" in dumps(alb["Subnets"])
    attributes = {a["Key"]: a["Value"] for a in alb["LoadBalancerAttributes"]}
    assert attributes["routing.http.drop_invalid_header_fields.enabled"] == "true"
    assert attributes["access_logs.s3.enabled"] == "true"


def test_access_log_bucket_is_encrypted_private_and_tls_only(any_env):
    """SSE-S3 (the only option ALB supports), all public access blocked, TLS enforced by policy."""
    bucket = any_env.templates["Compute"]["Resources"]["AlbAccessLogsCCEDA970"]
    props = bucket["Properties"]
    rule = props["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
    assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    assert all(props["PublicAccessBlockConfiguration"].values())
    policies = any_env.resources(
        "Compute", "AWS::S3::BucketPolicy", {"Properties": {"Bucket": {"Ref": "AlbAccessLogsCCEDA970"}}}
    )
    (policy,) = [p["Properties"]["PolicyDocument"] for p in policies.values()]
    assert any(s["Effect"] == "Deny" and "aws:SecureTransport" in dumps(s) for s in policy["Statement"])
    assert bucket["DeletionPolicy"] == "Retain"


def _listeners(env):
    listeners = env.resources("Compute", "AWS::ElasticLoadBalancingV2::Listener").values()
    return {listener["Properties"]["Port"]: listener["Properties"] for listener in listeners}


def _refuses(actions: list[dict]) -> bool:
    """The actions are exactly one fixed 403 response."""
    return [(a["Type"], a.get("FixedResponseConfig", {}).get("StatusCode")) for a in actions] == [
        ("fixed-response", "403")
    ]


@pytest.mark.parametrize(("env_name", "port"), [("dev", 80), ("prod", 443)])
def test_listener_default_refuses_with_403(synthesized, env_name, port):
    """A request no rule matches (not from CloudFront, or a path CloudFront does not forward) gets a fixed 403:
    nothing reaches the gateway, and no ALB login remains (browsers sign in through the web front end)."""
    listener = _listeners(synthesized[env_name])[port]
    assert _refuses(listener["DefaultActions"])


def test_https_listener_uses_a_tls_1_2_plus_policy(prod):
    """Modern TLS policy on the HTTPS listener."""
    assert _listeners(prod)[443]["SslPolicy"] == "ELBSecurityPolicy-TLS13-1-2-2021-06"


def _rules_by_path(env) -> dict[str, dict]:
    """The HTTPS listener's rules for what CloudFront forwards, by each of their path patterns (the geode's two
    rules, without the origin header: tests/infra/test_geode.py)."""
    rules = {}
    for rule in env.resources("Compute", "AWS::ElasticLoadBalancingV2::ListenerRule").values():
        if web.ORIGIN_VERIFY_HEADER not in dumps(rule["Properties"]["Conditions"]):
            continue
        (condition,) = [c for c in rule["Properties"]["Conditions"] if c["Field"] == "path-pattern"]
        for path in condition["PathPatternConfig"]["Values"]:
            rules[path] = rule
    return rules


def _api_rule(env) -> dict:
    return _rules_by_path(env)["/api/*"]


def test_health_is_forwarded_without_authentication_before_every_other_rule(prod):
    """Exactly /health and the API reference (/docs, /openapi.json; no wildcard) are forwarded to the gateway with
    no Cognito or JWT action, by one rule at a lower priority number (evaluated first) than the /api/* JWT rule;
    the listener's default is the fixed 403."""
    rules = _rules_by_path(prod)
    assert set(rules) == {"/health", "/docs", "/openapi.json", "/api/*"}
    assert rules["/docs"] is rules["/health"] and rules["/openapi.json"] is rules["/health"]
    health = rules["/health"]["Properties"]
    assert [a["Type"] for a in health["Actions"]] == ["forward"]
    assert health["Actions"][0]["TargetGroupArn"] == rules["/api/*"]["Properties"]["Actions"][-1]["TargetGroupArn"]
    assert health["Priority"] < rules["/api/*"]["Properties"]["Priority"]
    assert _refuses(_listeners(prod)[443]["DefaultActions"])


def test_api_paths_are_validated_as_jwt_then_forwarded(prod):
    """/api/* rule: jwt-validation with the Cognito issuer and JWKS (order 1), then forward (order 2)."""
    rule = _api_rule(prod)
    props = rule["Properties"]
    assert {"Field": "path-pattern", "PathPatternConfig": {"Values": ["/api/*"]}} in props["Conditions"]
    assert [(a["Order"], a["Type"]) for a in props["Actions"]] == [(1, "jwt-validation"), (2, "forward")]
    jwt = props["Actions"][0]["JwtValidationConfig"]
    assert "https://cognito-idp." in dumps(jwt["Issuer"])
    assert dumps(jwt["JwksEndpoint"]).endswith('"/.well-known/jwks.json"]]}')


def test_alb_and_gateway_trust_the_same_issuer_and_keys(prod):
    """Defence in depth only works if both layers check the same thing: the ALB's JWT rule and the gateway's
    settings name the identical issuer and JWKS endpoint."""
    rule = _api_rule(prod)
    jwt = rule["Properties"]["Actions"][0]["JwtValidationConfig"]
    env = env_vars(container_of(prod, "gateway"))
    assert jwt["Issuer"] == env["AUTH_ISSUER"]
    assert jwt["JwksEndpoint"] == env["AUTH_JWKS_URL"]


def test_http_redirects_to_https(prod):
    """Port 80 only redirects (301) to HTTPS."""
    (action,) = _listeners(prod)[80]["DefaultActions"]
    assert action["Type"] == "redirect"
    assert action["RedirectConfig"] == {"Port": "443", "Protocol": "HTTPS", "StatusCode": "HTTP_301"}


def test_alb_can_reach_cognito_over_https(prod):
    """The ALB security group allows egress 443 (JWKS and Cognito token endpoint)."""
    groups = prod.resources("Network", "AWS::EC2::SecurityGroup").values()
    alb = next(g for g in groups if g["Properties"]["GroupDescription"] == "Public application load balancer")
    assert {
        "CidrIp": "0.0.0.0/0",
        "Description": "Cognito / JWKS",
        "FromPort": 443,
        "IpProtocol": "tcp",
        "ToPort": 443,
    } in alb["Properties"]["SecurityGroupEgress"]


def test_domain_gets_a_certificate_and_an_alias_record(prod):
    """A DNS-validated ACM certificate for the domain and a Route 53 alias to the ALB."""
    (certificate,) = prod.resources(
        "Compute", "AWS::CertificateManager::Certificate", {"Properties": {"DomainName": "movies.example.com"}}
    ).values()
    certificate = certificate["Properties"]
    assert certificate["ValidationMethod"] == "DNS"
    record = prod.only("Compute", "AWS::Route53::RecordSet")["Properties"]
    assert record["Type"] == "A" and "AliasTarget" in record


def test_http_only_trial_forwards_cloudfront_without_alb_authentication(dev):
    """Without a domain: one HTTP listener whose one rule forwards what CloudFront sends (any path) to the
    gateway, which authenticates itself; everything else gets the default 403."""
    listeners = _listeners(dev)
    assert list(listeners) == [80]
    (rule,) = dev.resources("Compute", "AWS::ElasticLoadBalancingV2::ListenerRule").values()
    assert [c["Field"] for c in rule["Properties"]["Conditions"]] == ["http-header"]
    assert [a["Type"] for a in rule["Properties"]["Actions"]] == ["forward"]


def test_http_only_trial_warns_at_synth(dev):
    """The trial variant is announced loudly as a synth warning."""
    assert any("HTTP-only" in str(a["data"]) for a in dev.annotations if a["type"] == "aws:cdk:warning")


def test_waf_uses_managed_rule_groups_and_a_rate_limit(any_env):
    """Regional web ACL with AWS managed rule groups and a per-viewer-IP rate-based blocking rule (the viewer's
    address from X-Forwarded-For: the source address of every request is CloudFront's)."""
    acl = any_env.only("Compute", "AWS::WAFv2::WebACL")["Properties"]
    assert acl["Scope"] == "REGIONAL"
    managed = {
        r["Statement"]["ManagedRuleGroupStatement"]["Name"]
        for r in acl["Rules"]
        if "ManagedRuleGroupStatement" in r["Statement"]
    }
    assert {
        "AWSManagedRulesCommonRuleSet",
        "AWSManagedRulesKnownBadInputsRuleSet",
        "AWSManagedRulesAmazonIpReputationList",
    } <= managed
    (rate,) = [r for r in acl["Rules"] if "RateBasedStatement" in r["Statement"]]
    assert rate["Action"] == {"Block": {}}
    statement = rate["Statement"]["RateBasedStatement"]
    assert statement["AggregateKeyType"] == "FORWARDED_IP"
    assert statement["ForwardedIPConfig"] == {"HeaderName": "X-Forwarded-For", "FallbackBehavior": "MATCH"}


def test_waf_is_associated_with_the_load_balancer(any_env):
    """The web ACL protects the ALB."""
    association = any_env.only("Compute", "AWS::WAFv2::WebACLAssociation")["Properties"]
    assert "Alb" in dumps(association["ResourceArn"])


def _scaling_alarms_of(env, construct: str) -> list[dict]:
    """The alarms that drive the step-scaling policies of the service construct ``construct`` (Billing, ...)."""
    return [
        alarm
        for alarm in env.resources("Compute", "AWS::CloudWatch::Alarm").values()
        if f'"{construct}ServiceTaskCount' in dumps(alarm["Properties"].get("AlarmActions", []))
    ]


def _policies_of(env, name):
    targets = env.resources("Compute", "AWS::ApplicationAutoScaling::ScalableTarget")
    target_id = next(
        logical_id
        for logical_id, target in targets.items()
        if f"{name.capitalize()}Service" in dumps(target["Properties"]["ResourceId"])
    )
    return [
        p["Properties"]
        for p in env.resources("Compute", "AWS::ApplicationAutoScaling::ScalingPolicy").values()
        if p["Properties"]["ScalingTargetId"] == {"Ref": target_id}
    ], target_id


@pytest.mark.parametrize(("env_name", "bounds"), [("dev", (1, 2)), ("prod", (2, 10))])
def test_gateway_task_count_bounds_follow_config(synthesized, env_name, bounds):
    """Min/max task counts per environment."""
    _, target_id = _policies_of(synthesized[env_name], "gateway")
    target = synthesized[env_name].templates["Compute"]["Resources"][target_id]["Properties"]
    assert (target["MinCapacity"], target["MaxCapacity"]) == bounds


def test_gateway_scales_on_cpu_and_alb_requests_per_target(any_env):
    """Target tracking on average CPU and on ALBRequestCountPerTarget."""
    policies, _ = _policies_of(any_env, "gateway")
    metrics = sorted(
        p["TargetTrackingScalingPolicyConfiguration"]["PredefinedMetricSpecification"]["PredefinedMetricType"]
        for p in policies
    )
    assert metrics == ["ALBRequestCountPerTarget", "ECSServiceAverageCPUUtilization"]


def test_inventory_scales_on_cpu_and_alb_requests_per_inventory_task(any_env):
    """Target tracking on CPU and on metric math: ALB RequestCount / inventory running tasks."""
    policies, _ = _policies_of(any_env, "inventory")
    assert len(policies) == 2
    configs = [p["TargetTrackingScalingPolicyConfiguration"] for p in policies]
    assert any(
        c.get("PredefinedMetricSpecification", {}).get("PredefinedMetricType") == "ECSServiceAverageCPUUtilization"
        for c in configs
    )
    (custom,) = [c["CustomizedMetricSpecification"] for c in configs if "CustomizedMetricSpecification" in c]
    assert set(custom) == {"Metrics"}
    expression = next(m for m in custom["Metrics"] if m.get("ReturnData"))
    assert expression["Expression"] == "requests / tasks"
    assert {m["MetricStat"]["Metric"]["MetricName"] for m in custom["Metrics"] if "MetricStat" in m} == {
        "RequestCount",
        "RunningTaskCount",
    }


def test_billing_scales_on_billing_queue_depth(any_env):
    """Step scaling driven by AWS/AmazonMQ MessageCount of the contract's orders queue on the broker's / vhost."""
    policies, _ = _policies_of(any_env, "billing")
    assert {p["PolicyType"] for p in policies} == {"StepScaling"}
    alarms = [
        a["Properties"]
        for a in _scaling_alarms_of(any_env, "Billing")
        if a["Properties"].get("Namespace") == "AWS/AmazonMQ"
    ]
    assert len(alarms) == 2
    for alarm in alarms:
        assert alarm["MetricName"] == "MessageCount"
        assert sorted((d["Name"], d["Value"]) for d in alarm["Dimensions"]) == [
            ("Broker", f"movies-{any_env.name}-broker"),
            ("Queue", BILLING_QUEUE.name),
            ("VirtualHost", "/"),
        ]


def test_billing_scale_in_is_protected_against_flapping(any_env):
    """Scale-in needs 10 empty minutes, removes one task at a time and has a long cooldown."""
    policies, _ = _policies_of(any_env, "billing")
    (scale_in,) = [
        p["StepScalingPolicyConfiguration"]
        for p in policies
        if any(s["ScalingAdjustment"] < 0 for s in p["StepScalingPolicyConfiguration"]["StepAdjustments"])
    ]
    assert scale_in["Cooldown"] >= 600
    assert [s["ScalingAdjustment"] for s in scale_in["StepAdjustments"]] == [-1]
    (lower_alarm,) = [
        a["Properties"]
        for a in _scaling_alarms_of(any_env, "Billing")
        if a["Properties"].get("ComparisonOperator") == "LessThanOrEqualToThreshold"
    ]
    assert lower_alarm["EvaluationPeriods"] == lower_alarm["DatapointsToAlarm"] == 10


def test_gateway_may_call_inventory_on_8080_only(any_env):
    """The inventory task group admits 8080 from the gateway task group and nothing else."""
    rules = [
        r["Properties"]
        for r in any_env.resources("Network", "AWS::EC2::SecurityGroupIngress").values()
        if "InventoryTasks" in dumps(r["Properties"]["GroupId"])
    ]
    assert len(rules) == 1
    assert (rules[0]["FromPort"], rules[0]["ToPort"]) == (8080, 8080)
    assert "GatewayTasks" in dumps(rules[0]["SourceSecurityGroupId"])


def test_waf_logs_redact_credentials(any_env):
    """WAF request logs go to a retained log group with Authorization and Cookie headers redacted."""
    logging = any_env.only("Compute", "AWS::WAFv2::LoggingConfiguration")["Properties"]
    assert {"SingleHeader": {"Name": "authorization"}} in logging["RedactedFields"]
    assert {"SingleHeader": {"Name": "cookie"}} in logging["RedactedFields"]
    groups = any_env.resources("Compute", "AWS::Logs::LogGroup").values()
    (waf_group,) = [g for g in groups if str(g["Properties"].get("LogGroupName", "")).startswith("aws-waf-logs-")]
    assert waf_group["Properties"]["RetentionInDays"] == {"dev": 7, "prod": 90}[any_env.name]


def _network_ingress_into(env, group: str):
    """Ingress rules into a Network-stack security group, from whichever stack adds them."""
    return [
        r["Properties"]
        for stack in env.templates
        for r in env.resources(stack, "AWS::EC2::SecurityGroupIngress").values()
        if group in dumps(r["Properties"]["GroupId"])
    ]


def test_gateway_admits_3000_only_from_the_load_balancer(any_env):
    """Gateway tasks accept traffic only from the ALB security group, on the gateway port."""
    (rule,) = _network_ingress_into(any_env, "GatewayTasks")
    assert (rule["FromPort"], rule["ToPort"]) == (3000, 3000)
    assert rule["SourceSecurityGroupId"] == {"Fn::GetAtt": ["Alb16C2F182", "GroupId"]}


def test_billing_admits_only_the_gateway(any_env):
    """Billing's only inbound traffic is the gateway's order-status reads, on billing's port: billing trusts the
    principal headers of those reads because nothing else can connect."""
    (rule,) = _network_ingress_into(any_env, "BillingTasks")
    assert (rule["FromPort"], rule["ToPort"]) == (8080, 8080)
    assert "GatewayTasks" in dumps(rule["SourceSecurityGroupId"])


@pytest.mark.parametrize(("env_name", "ports"), [("dev", [80]), ("prod", [80, 443])])
def test_load_balancer_listens_publicly_only_on_listener_ports(synthesized, env_name, ports):
    """The ALB security group admits the internet on its listener ports only."""
    groups = synthesized[env_name].resources("Network", "AWS::EC2::SecurityGroup").values()
    alb = next(g for g in groups if g["Properties"]["GroupDescription"] == "Public application load balancer")
    rules = alb["Properties"]["SecurityGroupIngress"]
    assert sorted(r["FromPort"] for r in rules) == ports
    assert all(r["CidrIp"] == "0.0.0.0/0" and r["FromPort"] == r["ToPort"] for r in rules)


def test_a_single_worker_service_refuses_a_worker_count():
    """Sizing billing with GUNICORN_WORKERS fails at synth: the count is the service's own decision."""
    from contract.services import BILLING
    from stacks.components.fargate_microservice import process_settings
    from stacks.config import ServiceSizing

    sizing = ServiceSizing(cpu=256, memory_mib=512, min_tasks=1, max_tasks=2, gunicorn_threads=4, gunicorn_workers=2)
    with pytest.raises(ValueError, match="exactly one worker"):
        process_settings(BILLING, sizing)
