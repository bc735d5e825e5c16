"""PosterPipelineStack (issue 14): the uploads bucket, the pipes and their dead-letter queues, the three filters
and their least-privilege roles, inventory's access on AWS, the alarms, and the Docker-free Lambda bundle."""

from __future__ import annotations

from pathlib import Path

import pytest

from contract import posters
from tests.infra.helpers import (
    REPO_ROOT,
    container_of,
    dumps,
    env_vars,
    render,
    task_role_statements,
)

pytestmark = pytest.mark.infra

UPLOADS = "Uploads4F6EB0FD"
STAGE_PREFIXES = (posters.INCOMING_PREFIX, posters.VALIDATED_PREFIX, posters.RESIZED_PREFIX)
#: filter -> (prefix it reads, bucket and prefix it writes, pipes it sends to)
GRANTS = {
    "validate": (posters.INCOMING_PREFIX, "uploads", posters.VALIDATED_PREFIX, {posters.VALIDATED, posters.RESULTS}),
    "resize": (posters.VALIDATED_PREFIX, "uploads", posters.RESIZED_PREFIX, {posters.RESIZED}),
    "publish": (posters.RESIZED_PREFIX, "web", posters.PUBLISHED_PREFIX, {posters.RESULTS}),
}


def _resources(env) -> dict:
    return env.templates["Posters"]["Resources"]


def _queue_ids(env) -> dict[str, str]:
    """Logical id of each queue by its physical name."""
    return {
        render(queue["Properties"]["QueueName"]): logical_id
        for logical_id, queue in env.resources("Posters", "AWS::SQS::Queue").items()
    }


def _function(env, name: str) -> tuple[str, dict]:
    (found,) = env.resources(
        "Posters", "AWS::Lambda::Function", {"Properties": {"FunctionName": f"movies-{env.name}-poster-{name}"}}
    ).items()
    return found[0], found[1]["Properties"]


def _role_statements(env, function_props: dict) -> list[dict]:
    role = function_props["Role"]["Fn::GetAtt"][0]
    return [
        statement
        for policy in env.resources("Posters", "AWS::IAM::Policy").values()
        if {"Ref": role} in policy["Properties"]["Roles"]
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    ]


def _as_list(value) -> list:
    return value if isinstance(value, list) else [value]


# --- the uploads bucket -----------------------------------------------------------------------------------------------
def test_uploads_bucket_has_the_name_compute_uses(any_env):
    """The physical name is the one config computes for both stacks (inventory's grant, the CSP)."""
    name = _resources(any_env)[UPLOADS]["Properties"]["BucketName"]
    assert render(name) == any_env.stage.config.poster_uploads_bucket_name("<AWS::AccountId>", "eu-west-1")


def test_uploads_bucket_is_private_encrypted_and_tls_only(any_env):
    """Block public access, SSE-S3, no ACLs; the bucket policy denies every request without TLS."""
    props = _resources(any_env)[UPLOADS]["Properties"]
    assert all(props["PublicAccessBlockConfiguration"].values())
    rule = props["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
    assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    assert props["OwnershipControls"]["Rules"] == [{"ObjectOwnership": "BucketOwnerEnforced"}]
    (policy,) = any_env.resources("Posters", "AWS::S3::BucketPolicy").values()
    (deny,) = policy["Properties"]["PolicyDocument"]["Statement"]
    assert (deny["Effect"], deny["Condition"]) == ("Deny", {"Bool": {"aws:SecureTransport": "false"}})


def test_browsers_may_post_to_the_uploads_bucket_from_the_web_origin_only(any_env):
    """CORS: one rule, POST only, from the distribution's HTTPS origin only."""
    (rule,) = _resources(any_env)[UPLOADS]["Properties"]["CorsConfiguration"]["CorsRules"]
    assert rule["AllowedMethods"] == ["POST"]
    assert [render(origin) for origin in rule["AllowedOrigins"]] == ["https://<import>"]
    assert "WebDistribution" in dumps(rule["AllowedOrigins"])


def test_stage_objects_expire_after_a_week_and_incomplete_uploads_are_aborted(any_env):
    """incoming/, validated/ and resized/ expire after 7 days; incomplete multipart uploads are aborted."""
    rules = _resources(any_env)[UPLOADS]["Properties"]["LifecycleConfiguration"]["Rules"]
    expiring = {r["Prefix"]: r["ExpirationInDays"] for r in rules if "ExpirationInDays" in r}
    assert expiring == dict.fromkeys(STAGE_PREFIXES, 7)
    assert any("AbortIncompleteMultipartUpload" in r and "Prefix" not in r for r in rules)


@pytest.mark.parametrize(("env_name", "policy"), [("dev", "Delete"), ("prod", "Retain")])
def test_uploads_bucket_is_retained_in_prod(synthesized, env_name, policy):
    """Removal follows retain_data_on_delete."""
    assert _resources(synthesized[env_name])[UPLOADS]["DeletionPolicy"] == policy


def test_new_uploads_are_announced_on_the_uploaded_queue(any_env):
    """ObjectCreated under incoming/ (and only there) goes to UPLOADED; the bucket waits for the queue policy
    that lets S3 send (S3 checks it when it saves the configuration)."""
    bucket = _resources(any_env)[UPLOADS]
    (config,) = bucket["Properties"]["NotificationConfiguration"]["QueueConfigurations"]
    queue_id = _queue_ids(any_env)[f"movies-{any_env.name}-{posters.UPLOADED.name}"]
    assert config["Event"] == "s3:ObjectCreated:*"
    assert config["Queue"] == {"Fn::GetAtt": [queue_id, "Arn"]}
    assert config["Filter"]["S3Key"]["Rules"] == [{"Name": "prefix", "Value": posters.INCOMING_PREFIX}]
    (policy_id,) = any_env.resources(
        "Posters", "AWS::SQS::QueuePolicy", {"Properties": {"Queues": [{"Ref": queue_id}]}}
    )
    assert policy_id in bucket["DependsOn"]


def test_only_this_bucket_in_this_account_may_send_to_the_uploaded_queue(any_env):
    """The queue policy's Allow: s3.amazonaws.com, SendMessage, for the uploads bucket's ARN and this account."""
    queue_id = _queue_ids(any_env)[f"movies-{any_env.name}-{posters.UPLOADED.name}"]
    (policy,) = any_env.resources(
        "Posters", "AWS::SQS::QueuePolicy", {"Properties": {"Queues": [{"Ref": queue_id}]}}
    ).values()
    (allow,) = [s for s in policy["Properties"]["PolicyDocument"]["Statement"] if s["Effect"] == "Allow"]
    assert allow["Principal"] == {"Service": "s3.amazonaws.com"}
    assert allow["Action"] == "sqs:SendMessage"
    bucket = any_env.stage.config.poster_uploads_bucket_name("<AWS::AccountId>", "eu-west-1")
    assert render(allow["Condition"]["ArnLike"]["aws:SourceArn"]) == f"arn:aws:s3:::{bucket}"
    assert allow["Condition"]["StringEquals"]["aws:SourceAccount"] == {"Ref": "AWS::AccountId"}


# --- the pipes --------------------------------------------------------------------------------------------------------
def test_every_pipe_and_dead_letter_queue_exists_with_the_environment_prefix(any_env):
    """Four pipes of contract.posters, each with its -dlq, named movies-<env>-<pipe>: nothing else."""
    expected = {f"movies-{any_env.name}-{n}" for p in posters.PIPES for n in (p.name, p.dead_letter_queue)}
    assert set(_queue_ids(any_env)) == expected


@pytest.mark.parametrize("pipe", posters.PIPES, ids=lambda p: p.name)
def test_pipe_redrives_to_its_dead_letter_queue(any_env, pipe):
    """After MAX_RECEIVE_COUNT receives a message moves to the pipe's own DLQ; visibility as the contract says."""
    ids = _queue_ids(any_env)
    props = _resources(any_env)[ids[f"movies-{any_env.name}-{pipe.name}"]]["Properties"]
    dlq = ids[f"movies-{any_env.name}-{pipe.dead_letter_queue}"]
    assert props["RedrivePolicy"] == {
        "deadLetterTargetArn": {"Fn::GetAtt": [dlq, "Arn"]},
        "maxReceiveCount": posters.MAX_RECEIVE_COUNT,
    }
    assert props["VisibilityTimeout"] == posters.VISIBILITY_TIMEOUT_SECONDS


def test_every_queue_is_encrypted_and_tls_only(any_env):
    """SSE-SQS on each queue and DLQ, and each queue policy denies requests without TLS."""
    for logical_id in _queue_ids(any_env).values():
        assert _resources(any_env)[logical_id]["Properties"]["SqsManagedSseEnabled"] is True
        (policy,) = any_env.resources(
            "Posters", "AWS::SQS::QueuePolicy", {"Properties": {"Queues": [{"Ref": logical_id}]}}
        ).values()
        statements = policy["Properties"]["PolicyDocument"]["Statement"]
        assert any(s["Effect"] == "Deny" and "aws:SecureTransport" in dumps(s) for s in statements), logical_id


# --- the filters ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", posters.FILTERS)
def test_filter_runs_python_312_on_arm64_with_its_handler(any_env, name):
    """Python 3.12, arm64, handler posters.<filter>.handler, a timeout below the visibility timeout."""
    _, props = _function(any_env, name)
    assert (props["Runtime"], props["Architectures"]) == ("python3.12", ["arm64"])
    assert props["Handler"] == f"posters.{name}.handler"
    assert props["Timeout"] < posters.VISIBILITY_TIMEOUT_SECONDS


def test_the_three_filters_share_one_code_asset(any_env):
    """One bundle (Pillow and the sources) for all three functions."""
    keys = {dumps(_function(any_env, name)[1]["Code"]) for name in posters.FILTERS}
    assert len(keys) == 1


@pytest.mark.parametrize("name", posters.FILTERS)
def test_filter_consumes_its_pipe_in_small_batches_reporting_item_failures(any_env, name):
    """SQS event source on the filter's input pipe: small batches, per-message failures, bounded concurrency."""
    function_id, _ = _function(any_env, name)
    (mapping,) = any_env.resources(
        "Posters", "AWS::Lambda::EventSourceMapping", {"Properties": {"FunctionName": {"Ref": function_id}}}
    ).values()
    props = mapping["Properties"]
    source = _queue_ids(any_env)[f"movies-{any_env.name}-{posters.FILTERS[name].name}"]
    assert props["EventSourceArn"] == {"Fn::GetAtt": [source, "Arn"]}
    assert props["BatchSize"] <= 10
    assert props["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert props["ScalingConfig"]["MaximumConcurrency"] <= 10


@pytest.mark.parametrize("name", posters.FILTERS)
def test_filter_logs_to_its_own_group_with_retention(any_env, name):
    """Each filter's log group has the environment's retention, and its role writes that group only."""
    _, props = _function(any_env, name)
    group = props["LoggingConfig"]["LogGroup"]["Ref"]
    assert _resources(any_env)[group]["Properties"]["RetentionInDays"] > 0
    logs = [s for s in _role_statements(any_env, props) if "logs:" in dumps(s["Action"])]
    assert [s["Resource"] for s in logs] == [{"Fn::GetAtt": [group, "Arn"]}]


@pytest.mark.parametrize("name", posters.FILTERS)
def test_filter_reads_only_its_input_prefix_and_writes_only_its_output_prefix(any_env, name):
    """Exactly s3:GetObject on <uploads>/<input>* and s3:PutObject on <bucket>/<output>*: no other S3 action,
    so a filter can neither read nor write another stage's objects (nor list, nor delete)."""
    reads, bucket, writes, _ = GRANTS[name]
    s3 = [s for s in _role_statements(any_env, _function(any_env, name)[1]) if "s3:" in dumps(s["Action"])]
    grants = sorted((s["Action"], render(s["Resource"])) for s in s3)
    out_bucket = f"<{UPLOADS}.Arn>" if bucket == "uploads" else (
        f"arn:aws:s3:::{any_env.stage.config.web_bucket_name('<AWS::AccountId>', 'eu-west-1')}"
    )
    expected = [("s3:GetObject", f"<{UPLOADS}.Arn>/{reads}*"), ("s3:PutObject", f"{out_bucket}/{writes}*")]
    assert grants == sorted(expected)
    others = [p for p in (*STAGE_PREFIXES, posters.PUBLISHED_PREFIX) if p not in (reads, writes)]
    assert not any(prefix in resource for _, resource in grants for prefix in others)


@pytest.mark.parametrize("name", posters.FILTERS)
def test_filter_sends_only_to_its_output_queues(any_env, name):
    """sqs:SendMessage on exactly the filter's next pipe(s); it consumes only its own input pipe."""
    _, _, _, sends = GRANTS[name]
    ids = _queue_ids(any_env)
    statements = _role_statements(any_env, _function(any_env, name)[1])
    send = [s for s in statements if "sqs:SendMessage" in _as_list(s["Action"])]
    targets = {r["Fn::GetAtt"][0] for s in send for r in _as_list(s["Resource"])}
    assert targets == {ids[f"movies-{any_env.name}-{pipe.name}"] for pipe in sends}
    receive = [s for s in statements if "sqs:ReceiveMessage" in _as_list(s["Action"])]
    sources = {r["Fn::GetAtt"][0] for s in receive for r in _as_list(s["Resource"])}
    assert sources == {ids[f"movies-{any_env.name}-{posters.FILTERS[name].name}"]}


@pytest.mark.parametrize("name", posters.FILTERS)
def test_filter_role_has_no_managed_policy(any_env, name):
    """Only the inline statements above: no AWS-managed policy widens a filter's role."""
    role = _function(any_env, name)[1]["Role"]["Fn::GetAtt"][0]
    assert "ManagedPolicyArns" not in _resources(any_env)[role]["Properties"]


def test_filters_are_configured_with_their_buckets_and_queues(any_env):
    """Each filter gets the uploads bucket and the URL of the queue it sends to; publish also the web bucket."""
    ids = _queue_ids(any_env)

    def url(pipe):
        return {"Ref": ids[f"movies-{any_env.name}-{pipe.name}"]}

    variables = {name: _function(any_env, name)[1]["Environment"]["Variables"] for name in posters.FILTERS}
    assert all(v["UPLOAD_BUCKET"] == {"Ref": UPLOADS} for v in variables.values())
    assert variables["validate"]["NEXT_QUEUE_URL"] == url(posters.VALIDATED)
    assert variables["validate"]["RESULTS_QUEUE_URL"] == url(posters.RESULTS)
    assert variables["resize"]["NEXT_QUEUE_URL"] == url(posters.RESIZED)
    assert variables["publish"]["RESULTS_QUEUE_URL"] == url(posters.RESULTS)
    web_bucket = any_env.stage.config.web_bucket_name("<AWS::AccountId>", "eu-west-1")
    assert render(variables["publish"]["WEB_BUCKET"]) == web_bucket


# --- inventory on AWS ---------------------------------------------------------------------------------------------
def test_inventory_knows_the_uploads_bucket_and_the_results_queue(any_env):
    """POSTER_UPLOAD_BUCKET and POSTER_RESULTS_QUEUE_URL name what the poster stack creates."""
    config = any_env.stage.config
    env = env_vars(container_of(any_env, "inventory"))
    assert render(env["POSTER_UPLOAD_BUCKET"]) == config.poster_uploads_bucket_name("<AWS::AccountId>", "eu-west-1")
    results = config.poster_queue_name(posters.RESULTS.name)
    assert render(env["POSTER_RESULTS_QUEUE_URL"]) == (
        f"https://sqs.eu-west-1.<AWS::URLSuffix>/<AWS::AccountId>/{results}"
    )


def test_inventory_may_put_into_incoming_only_and_consume_the_results_queue_only(any_env):
    """s3:PutObject on incoming/ of the uploads bucket (a presigned POST carries the signer's permissions) and
    the four consumer actions on RESULTS: no other S3 or SQS statement but the saga's claim checks (issue 15)."""
    config = any_env.stage.config
    statements = [
        s for s in task_role_statements(any_env, "inventory") if "s3:" in dumps(s["Action"]) or "sqs:" in dumps(s)
    ]
    grants = {(tuple(sorted(_as_list(s["Action"]))), render(s["Resource"])) for s in statements}
    bucket = config.poster_uploads_bucket_name("<AWS::AccountId>", "eu-west-1")
    results = config.poster_queue_name(posters.RESULTS.name)
    saga_bucket = config.saga_bucket_name("<AWS::AccountId>", "eu-west-1")
    assert grants == {
        (("s3:GetObject", "s3:PutObject"), f"arn:aws:s3:::{saga_bucket}/claim-checks/*"),
        (("s3:PutObject",), f"arn:aws:s3:::{bucket}/{posters.INCOMING_PREFIX}*"),
        (
            ("sqs:ChangeMessageVisibility", "sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ReceiveMessage"),
            f"arn:aws:sqs:eu-west-1:<AWS::AccountId>:{results}",
        ),
    }


@pytest.mark.parametrize("name", ["gateway", "billing"])
def test_other_services_get_no_poster_access(any_env, name):
    """Only inventory reaches the poster bucket and queue."""
    assert "poster" not in dumps(task_role_statements(any_env, name))


# --- alarms -----------------------------------------------------------------------------------------------------------
def _alarms(env) -> dict[str, dict]:
    return {k: v["Properties"] for k, v in env.resources("Monitoring", "AWS::CloudWatch::Alarm").items()}


@pytest.mark.parametrize("pipe", posters.PIPES, ids=lambda p: p.name)
def test_any_message_in_a_poster_dead_letter_queue_pages(any_env, pipe):
    """Visible messages > 0 in the pipe's DLQ (by the name the poster stack gives it) raises an alarm."""
    label = "".join(part.capitalize() for part in pipe.name.split("-"))
    (alarm,) = [p for k, p in _alarms(any_env).items() if k.startswith(f"{label}DeadLetters")]
    assert (alarm["Namespace"], alarm["MetricName"]) == ("AWS/SQS", "ApproximateNumberOfMessagesVisible")
    assert alarm["Dimensions"] == [
        {"Name": "QueueName", "Value": any_env.stage.config.poster_queue_name(pipe.dead_letter_queue)}
    ]
    assert (alarm["ComparisonOperator"], alarm["Threshold"]) == ("GreaterThanThreshold", 0)


@pytest.mark.parametrize("name", posters.FILTERS)
def test_a_failing_filter_pages(any_env, name):
    """Lambda Errors > 0 of the filter (by its function name) raises an alarm."""
    (alarm,) = [p for k, p in _alarms(any_env).items() if k.startswith(f"Poster{name.capitalize()}Errors")]
    assert (alarm["Namespace"], alarm["MetricName"]) == ("AWS/Lambda", "Errors")
    function_name = _function(any_env, name)[1]["FunctionName"]
    assert alarm["Dimensions"] == [{"Name": "FunctionName", "Value": function_name}]
    assert (alarm["ComparisonOperator"], alarm["Threshold"]) == ("GreaterThanThreshold", 0)


def test_poster_stack_deploys_after_compute(any_env):
    """The uploads bucket's CORS origin is the distribution: the poster stack depends on compute."""
    stage = any_env.stage
    assert stage.compute in stage.posters.dependencies


# --- the bundle, for real (pip downloads the aarch64 wheels from PyPI) ---------------------------------------------
@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    """The filters' asset directory, bundled by the same class ``cdk synth`` uses."""
    from stacks.components.lambda_bundle import ARM64_PLATFORMS, PipWheelsBundling
    from stacks.posters import REQUIREMENTS, SOURCES

    out = tmp_path_factory.mktemp("bundle")
    bundling = PipWheelsBundling(REQUIREMENTS, SOURCES, platforms=ARM64_PLATFORMS, python_version="3.12")
    assert bundling.try_bundle(str(out), None) is True
    return out


def test_bundle_holds_pillow_built_for_python_312_on_aarch64(bundle):
    """PIL's compiled core is the CPython 3.12 aarch64 build (Lambda arm64), from a manylinux wheel."""
    cores = [p.name for p in (bundle / "PIL").glob("_imaging.*.so")]
    assert cores == ["_imaging.cpython-312-aarch64-linux-gnu.so"]
    wheel = next(bundle.glob("pillow-*.dist-info")) / "WHEEL"
    assert "aarch64" in wheel.read_text()


def test_bundle_holds_the_handlers_and_the_contract_at_their_import_paths(bundle):
    """functions/posters is the package ``posters`` and contract/ is ``contract`` (without caches), so
    ``posters.<filter>.handler`` imports as on Lambda."""
    assert (bundle / "contract" / "posters.py").is_file()
    assert (bundle / "posters" / "requirements.txt").is_file()
    assert not list(bundle.rglob("__pycache__"))
    handlers = REPO_ROOT / "functions" / "posters"
    missing = [f"{name}.py" for name in posters.FILTERS if not (handlers / f"{name}.py").exists()]
    if missing:
        pytest.skip(f"the filter handlers are not in this checkout yet: {missing}")
    for name in posters.FILTERS:
        assert (bundle / "posters" / f"{name}.py").is_file()


def test_cdk_asset_is_the_bundle(tmp_path):
    """Synthesizing with bundling on (one stack) writes that bundle as the filters' asset; the test app's
    context skips it elsewhere."""
    from aws_cdk import App, Stack
    from aws_cdk import aws_lambda as lambda_

    from stacks.components.lambda_bundle import python_lambda_code
    from stacks.posters import REQUIREMENTS, SOURCES

    app = App(outdir=str(tmp_path))
    stack = Stack(app, "Bundle")
    code = python_lambda_code(REQUIREMENTS, SOURCES, python_version="3.12")
    lambda_.Function(
        stack, "F", runtime=lambda_.Runtime.PYTHON_3_12, handler="posters.validate.handler", code=code
    )
    assembly = app.synth()
    (asset_dir,) = [p for p in Path(assembly.directory).iterdir() if p.name.startswith("asset.") and p.is_dir()]
    assert (asset_dir / "PIL").is_dir()
    assert (asset_dir / "contract" / "posters.py").is_file()
