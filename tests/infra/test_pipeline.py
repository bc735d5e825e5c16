"""The delivery pipeline (pipeline_app.py, stacks/pipeline.py): structure, security, nag, cfn-lint, snapshot.

The pipeline app is synthesized once per session, as the CDK CLI would on a clean clone: the committed
``PIPELINE`` config, the context of ``cdk.json`` and ``cdk.context.json`` (the targets' availability zones),
no AWS credentials. Expectations are derived from ``PIPELINE`` where they depend on it, so changing accounts
or adding a deployment stamp only changes the snapshot.
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from stacks.pipeline_config import PIPELINE, DeploymentTarget, load_pipeline_config, validate_pipeline_config
from tests.infra.helpers import REPO_ROOT, STACKS, cdk_context, dumps, environment_without, synth_with_nag
from tests.infra.test_cfn_lint import run_cfn_lint
from tests.infra.test_snapshots import SNAPSHOT_DIR, assert_matches_snapshot, normalise

pytestmark = pytest.mark.infra

STACK = "Movies-Pipeline"
DEPLOY_ORDER = ("Network", "Data", "Compute", "Monitoring")
"""Stacks whose Deploy actions must run in this order (Auth runs in parallel with Network)."""


@dataclass
class SynthesizedPipeline:
    """The synthesized pipeline app: the pipeline template, the stage assemblies and the nag findings."""

    outdir: Path
    stack: Any
    template: dict[str, Any]
    template_path: Path
    metadata: dict[str, Any]
    manifest: dict[str, Any]
    nag_findings: list[str]

    def resources(self, resource_type: str) -> dict[str, dict[str, Any]]:
        """Pipeline-stack resources of ``resource_type`` by logical id."""
        return {k: v for k, v in self.template["Resources"].items() if v["Type"] == resource_type}

    @property
    def stages(self) -> list[dict[str, Any]]:
        """The CodePipeline stages, in order."""
        (pipeline,) = self.resources("AWS::CodePipeline::Pipeline").values()
        return pipeline["Properties"]["Stages"]

    def stage(self, name: str) -> dict[str, Any]:
        """One CodePipeline stage by name."""
        return next(stage for stage in self.stages if stage["Name"] == name)

    def project_of(self, action: dict[str, Any]) -> dict[str, Any]:
        """The CodeBuild project a CodeBuild action runs."""
        return self.template["Resources"][action["Configuration"]["ProjectName"]["Ref"]]

    def buildspec_of(self, action: dict[str, Any]) -> dict[str, Any]:
        """The parsed buildspec of a CodeBuild action's project."""
        return json.loads(self.project_of(action)["Properties"]["Source"]["BuildSpec"])

    def stage_assembly(self, target: str) -> Path:
        """The nested cloud assembly of a deployment target's stage."""
        return self.outdir / f"assembly-{STACK}-Movies-{target}"

    def stage_manifest(self, target: str) -> dict[str, Any]:
        """The manifest of a deployment target's stage assembly."""
        return json.loads((self.stage_assembly(target) / "manifest.json").read_text())

    def stage_template(self, target: str, stack: str) -> tuple[Path, dict[str, Any]]:
        """Path and content of one stack template of a deployment target's stage."""
        assembly = self.stage_assembly(target)
        manifest = self.stage_manifest(target)
        for artifact in manifest["artifacts"].values():
            if artifact["type"] == "aws:cloudformation:stack" and artifact["displayName"].endswith(f"/{stack}"):
                path = assembly / artifact["properties"]["templateFile"]
                return path, json.loads(path.read_text())
        raise AssertionError(f"no {stack} stack in the {target} stage")


@pytest.fixture(scope="session")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> SynthesizedPipeline:
    """The pipeline app, synthesized once with cdk-nag, with no AWS credentials in the environment."""
    from stacks.application import build_pipeline_app

    context = cdk_context(with_lookups=True)
    with environment_without("CDK_DEFAULT_ACCOUNT", "CDK_DEFAULT_REGION", "AWS_PROFILE"):
        _, stack, outdir, findings = synth_with_nag(
            lambda out, nag: build_pipeline_app(context=context, outdir=out, nag=nag, validation=False),
            tmp_path_factory.mktemp("cdk-pipeline"),
        )
    path = outdir / f"{STACK}.template.json"
    return SynthesizedPipeline(
        outdir=outdir,
        stack=stack,
        template=json.loads(path.read_text()),
        template_path=path,
        metadata=json.loads((outdir / f"{STACK}.metadata.json").read_text()),
        manifest=json.loads((outdir / "manifest.json").read_text()),
        nag_findings=[f"{finding['rule']} at {finding['path']}" for finding in findings],
    )


def _target_stage_names() -> list[str]:
    return [f"Movies-{target.name}" for target in PIPELINE.targets]


# --- synthesis -----------------------------------------------------------------------------------------------
def test_synthesizes_without_credentials_or_lookups(pipeline):
    """Every context value the app needs is committed: nothing is missing (the CLI would need credentials)."""
    assemblies = [pipeline.manifest] + [pipeline.stage_manifest(target.name) for target in PIPELINE.targets]
    assert [manifest.get("missing", []) for manifest in assemblies] == [[] for _ in assemblies]


def test_pipeline_lives_in_the_tooling_account(pipeline):
    """The pipeline stack is pinned to the configured pipeline account and region."""
    artifact = pipeline.manifest["artifacts"][STACK]
    assert artifact["environment"] == f"aws://{PIPELINE.account}/{PIPELINE.region}"


def test_stages_target_their_accounts(pipeline):
    """Each stage's stacks deploy to its target's account and region, under the usual stack names."""
    for target in PIPELINE.targets:
        stacks = {
            artifact["properties"]["stackName"]: artifact["environment"]
            for artifact in pipeline.stage_manifest(target.name)["artifacts"].values()
            if artifact["type"] == "aws:cloudformation:stack"
        }
        expected = {f"Movies-{target.name}-{s}" for s in STACKS}
        assert set(stacks) == expected
        assert set(stacks.values()) == {f"aws://{target.account}/{target.region}"}


# --- structure -----------------------------------------------------------------------------------------------
def test_stage_order(pipeline):
    """Source, Build (synth), UpdatePipeline (self-mutation), Assets, then the targets in configured order, each
    as its waves: the first stamp, the other stamps (prod's), the geode."""
    names = [stage["Name"] for stage in pipeline.stages]
    assert names == [
        "Source", "Build", "UpdatePipeline", "Assets",
        # CDK Pipelines names a wave of one stage after that stage (with more stamps: Movies-prod-stamps).
        "Movies-dev", "Movies-prod", "Movies-prod-us", "Movies-prod-Geode",
    ]  # fmt: skip
    assert names.index("Movies-dev") < names.index("Movies-prod")  # prod only after dev passed its smoke test


def test_other_stamps_deploy_in_a_wave_after_the_first_stamps_smoke_test(pipeline):
    """prod's second stamp (us-east-1) deploys in the wave stage after Movies-prod (whose last action is its smoke
    test), under its own stack names, and is smoke-tested itself with a token of the first stamp's pool."""
    first = pipeline.stage("Movies-prod")["Actions"]
    assert first[-1]["Name"] == "SmokeTest"
    wave = pipeline.stage("Movies-prod-us")["Actions"]
    deployed = {a["Configuration"].get("StackName") for a in wave if a["Name"].endswith(".Deploy")}
    assert {f"Movies-prod-us-{stack}" for stack in STACKS} == deployed
    (smoke,) = [a for a in wave if a["Name"].endswith("SmokeTest")]
    assert smoke["RunOrder"] > max(a["RunOrder"] for a in wave if a is not smoke)
    variables = {v["name"]: v["value"] for v in json.loads(smoke["Configuration"]["EnvironmentVariables"])}
    assert "Movies-prod-us-Compute" in dumps(wave) and variables["API_URL"].endswith(".ApiUrl}")
    assert variables["USER_POOL_ID"] == next(
        v["value"]
        for v in json.loads(first[-1]["Configuration"]["EnvironmentVariables"])
        if v["name"] == "USER_POOL_ID"
    )


def test_the_geode_deploys_last_in_us_east_1(pipeline):
    """The geode stack (Route 53 records and health checks) deploys after every stamp, in us-east-1."""
    actions = pipeline.stage("Movies-prod-Geode")["Actions"]
    assert {a["Configuration"].get("StackName") for a in actions if a["Name"].endswith("Deploy")} == {
        "Movies-prod-Geode"
    }
    assert {a.get("Region") for a in actions} == {"us-east-1"}


def test_source_is_the_configured_connection(pipeline):
    """The source action uses the CodeConnections connection, repository and branch, triggered on push."""
    (action,) = pipeline.stage("Source")["Actions"]
    assert action["ActionTypeId"]["Provider"] == "CodeStarSourceConnection"
    assert action["Configuration"] == {
        "ConnectionArn": PIPELINE.connection_arn,
        "FullRepositoryId": PIPELINE.repository,
        "BranchName": PIPELINE.branch,
        "DetectChanges": True,
    }


def test_synth_runs_unit_and_infra_tests_then_cdk_synth(pipeline):
    """The synth step installs Python and Node dependencies, runs unit + infra tests (not integration/e2e)
    before `cdk synth` of the pipeline app, so a red test stops the pipeline."""
    (action,) = pipeline.stage("Build")["Actions"]
    spec = pipeline.buildspec_of(action)
    install = spec["phases"]["install"]
    assert install["runtime-versions"] == {"python": "3.11", "nodejs": "20"}
    assert "npm ci" in install["commands"]
    assert any("pip install" in c and "requirements-dev.txt" in c for c in install["commands"])
    build = spec["phases"]["build"]["commands"]
    tests = next(i for i, c in enumerate(build) if "pytest" in c)
    synth = next(i for i, c in enumerate(build) if "cdk synth" in c)
    assert tests < synth
    assert "tests/unit tests/infra" in build[tests]
    assert "integration" not in build[tests] and "e2e" not in build[tests]
    assert "pipeline_app.py" in build[synth]


def test_pipeline_mutates_itself(pipeline):
    """UpdatePipeline deploys the pipeline stack itself, with the CLI version pinned in package.json."""
    (action,) = pipeline.stage("UpdatePipeline")["Actions"]
    assert action["Name"] == "SelfMutate"
    spec = pipeline.buildspec_of(action)
    version = json.loads((REPO_ROOT / "package.json").read_text())["devDependencies"]["aws-cdk"]
    assert f"npm install -g aws-cdk@{version}" in spec["phases"]["install"]["commands"]
    assert any(f"deploy {STACK}" in c for c in spec["phases"]["build"]["commands"])
    (cfn_pipeline,) = pipeline.resources("AWS::CodePipeline::Pipeline").values()
    assert cfn_pipeline["Properties"]["RestartExecutionOnUpdate"] is True


def test_images_are_built_with_docker_in_codebuild(pipeline):
    """Every image asset is published by a privileged (Docker) CodeBuild project; QEMU for ARM64 images.
    (The file assets have their own unprivileged projects: the broker rotation Lambda's code, the web front end's
    files (Web), the BucketDeployment provider (Custom), the poster filters' bundle, named after Validate, and the
    invoicer's, named after its Function, and CDK's AwsCustomResource Lambda of the other stamps.)"""
    file_assets = ("BrokerRotation", "Web", "Custom", "Validate", "Function", "AWS679f53fac002430cb0da5b7982bd2287")
    actions = [a for a in pipeline.stage("Assets")["Actions"] if not a["Name"].startswith(file_assets)]
    assert {a["Name"].split("_")[0] for a in actions} == {"Inventory", "Billing", "Gateway"}
    for action in actions:
        project = pipeline.project_of(action)["Properties"]
        assert project["Environment"]["PrivilegedMode"] is True
        spec = pipeline.buildspec_of(action)
        assert any("binfmt" in c and "--install arm64" in c for c in spec["phases"]["install"]["commands"])
        assert any(c.startswith("cdk-assets") for c in spec["phases"]["build"]["commands"])


def test_synth_and_self_mutation_run_without_docker(pipeline):
    """Synth only copies the build contexts and self-mutation deploys no image: no privileged mode there."""
    for stage in ("Build", "UpdatePipeline"):
        (action,) = pipeline.stage(stage)["Actions"]
        assert pipeline.project_of(action)["Properties"]["Environment"]["PrivilegedMode"] is False


def test_manual_approval_only_before_approved_targets(pipeline):
    """prod starts with a manual approval that precedes every other action; dev deploys automatically."""
    for target in PIPELINE.targets:
        actions = pipeline.stage(f"Movies-{target.name}")["Actions"]
        manual = [a for a in actions if a["ActionTypeId"]["Category"] == "Approval"]
        if target.requires_approval:
            (approval,) = manual
            others = [a["RunOrder"] for a in actions if a is not approval]
            assert approval["RunOrder"] < min(others)
        else:
            assert manual == []
    # Policy: nothing reaches a prod environment (any stamp) without a person approving it.
    assert all(t.requires_approval for t in PIPELINE.targets if t.environment == "prod")


def test_stacks_deploy_in_dependency_order(pipeline):
    """Within a stage, network → data → compute → monitoring (auth before compute), each a change set."""
    for name in _target_stage_names():
        run_order = {a["Name"]: a["RunOrder"] for a in pipeline.stage(name)["Actions"]}
        deploys = [run_order[f"{stack}.Deploy"] for stack in DEPLOY_ORDER]
        assert deploys == sorted(deploys) and len(set(deploys)) == len(deploys)
        assert run_order["Auth.Deploy"] < run_order["Compute.Deploy"]
        assert all(run_order[f"{s}.Prepare"] < run_order[f"{s}.Deploy"] for s in (*DEPLOY_ORDER, "Auth"))


def test_smoke_test_runs_last_in_every_stage(pipeline):
    """After all stacks of a stage are deployed, the smoke test runs the repository's script against them."""
    for target in PIPELINE.targets:
        actions = pipeline.stage(f"Movies-{target.name}")["Actions"]
        smoke = actions[-1]
        assert smoke["Name"] == "SmokeTest"
        assert smoke["RunOrder"] > max(a["RunOrder"] for a in actions[:-1])
        commands = pipeline.buildspec_of(smoke)["phases"]["build"]["commands"]
        assert any("python3 scripts/smoke_test.py" in c and "--user-pool-id" in c for c in commands)
        # The script comes from the source artifact (the same commit that was deployed).
        assert smoke["InputArtifacts"] == pipeline.stage("Source")["Actions"][0]["OutputArtifacts"]


def test_smoke_test_reads_the_stage_outputs(pipeline):
    """Gateway URL, token endpoint, client id, pool id and role come from the deployed stacks' outputs."""
    for target in PIPELINE.targets:
        smoke = pipeline.stage(f"Movies-{target.name}")["Actions"][-1]
        variables = {v["name"]: v["value"] for v in json.loads(smoke["Configuration"]["EnvironmentVariables"])}
        assert set(variables) == {"API_URL", "TOKEN_URL", "MACHINE_CLIENT_ID", "USER_POOL_ID", "SMOKE_TEST_ROLE_ARN"}
        assert variables["API_URL"].endswith(".ApiUrl}")
        assert variables["TOKEN_URL"].endswith(".TokenEndpoint}")
        assert all(v.startswith("#{") for v in variables.values())  # outputs, never literal secrets
        assert "SECRET" not in dumps(variables).upper().replace("SMOKE_TEST", "")


def test_smoke_test_role_may_assume_only_its_targets_role(pipeline):
    """Least privilege: each smoke-test project may assume exactly one role, the one in its target account."""
    for target in PIPELINE.targets:
        smoke = pipeline.stage(f"Movies-{target.name}")["Actions"][-1]
        role_id = pipeline.project_of(smoke)["Properties"]["ServiceRole"]["Fn::GetAtt"][0]
        policies = [
            p for p in pipeline.resources("AWS::IAM::Policy").values() if {"Ref": role_id} in p["Properties"]["Roles"]
        ]
        statements = [s for p in policies for s in p["Properties"]["PolicyDocument"]["Statement"]]
        assume = [s for s in statements if "sts:AssumeRole" in json.dumps(s["Action"])]
        role_name = f"Movies-{target.name}-Auth-smoke-test-{target.region}"
        assert assume == [
            {
                "Action": "sts:AssumeRole",
                "Effect": "Allow",
                "Resource": f"arn:aws:iam::{target.account}:role/{role_name}",
            }
        ]
        assert not any("cognito" in json.dumps(s["Action"]) or "secretsmanager" in json.dumps(s["Action"])
                       for s in statements)  # fmt: skip


def test_target_smoke_test_role_reads_only_the_client_secret(pipeline):
    """The target's role trusts the pipeline account and may only DescribeUserPoolClient on its own pool."""
    for target in PIPELINE.targets:
        _, auth = pipeline.stage_template(target.name, "Auth")
        roles = [r for r in auth["Resources"].values() if r["Type"] == "AWS::IAM::Role"]
        (role,) = [r for r in roles if r["Properties"].get("RoleName") == f"Movies-{target.name}-Auth-smoke-test-"
                   f"{target.region}"]  # fmt: skip
        (trust,) = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
        assert trust["Action"] == "sts:AssumeRole"
        assert dumps(trust["Principal"]) == dumps({"AWS": f"arn:aws:iam::{PIPELINE.account}:root"})
        policies = [
            p for p in auth["Resources"].values()
            if p["Type"] == "AWS::IAM::Policy" and "SmokeTestRole" in dumps(p["Properties"]["Roles"])
        ]  # fmt: skip
        (policy,) = policies
        (statement,) = policy["Properties"]["PolicyDocument"]["Statement"]
        assert statement["Action"] == "cognito-idp:DescribeUserPoolClient"
        assert statement["Resource"] == {"Fn::GetAtt": [_logical_id(auth, "AWS::Cognito::UserPool"), "Arn"]}
        assert "SmokeTestRoleArn" in auth["Outputs"]


def _logical_id(template: dict[str, Any], resource_type: str) -> str:
    (found,) = [k for k, v in template["Resources"].items() if v["Type"] == resource_type]
    return found


def test_developer_deployments_have_no_smoke_test_role(dev):
    """`cdk deploy` by a developer (app.py) trusts no pipeline account: the role only exists in pipeline stages."""
    assert "SmokeTestRole" not in dumps(dev.templates["Auth"])


# --- notifications -------------------------------------------------------------------------------------------
def test_failed_executions_notify_the_topic(pipeline):
    """An EventBridge rule sends every FAILED execution of this pipeline to the notification topic."""
    (rule,) = pipeline.resources("AWS::Events::Rule").values()
    pattern = rule["Properties"]["EventPattern"]
    assert pattern["source"] == ["aws.codepipeline"]
    assert pattern["detail-type"] == ["CodePipeline Pipeline Execution State Change"]
    assert pattern["detail"] == {"state": ["FAILED"]}
    (pipeline_id,) = pipeline.resources("AWS::CodePipeline::Pipeline")
    assert {"Ref": pipeline_id} in pattern["resources"][0]["Fn::Join"][1]
    (topic_id,) = pipeline.resources("AWS::SNS::Topic")
    assert [t["Arn"] for t in rule["Properties"]["Targets"]] == [{"Ref": topic_id}]


def test_notification_topic_is_encrypted_and_subscribed(pipeline):
    """KMS-encrypted topic (key usable by EventBridge), TLS only, and the configured e-mail subscribed."""
    ((topic_id, topic),) = pipeline.resources("AWS::SNS::Topic").items()
    key_id = topic["Properties"]["KmsMasterKeyId"]["Fn::GetAtt"][0]
    key = pipeline.template["Resources"][key_id]
    assert key["Properties"]["EnableKeyRotation"] is True
    assert "events.amazonaws.com" in dumps(key["Properties"]["KeyPolicy"])
    (policy,) = pipeline.resources("AWS::SNS::TopicPolicy").values()
    assert "aws:SecureTransport" in dumps(policy)
    (subscription,) = pipeline.resources("AWS::SNS::Subscription").values()
    assert subscription["Properties"] == {"Endpoint": PIPELINE.notification_email, "Protocol": "email",
                                          "TopicArn": {"Ref": topic_id}}  # fmt: skip


def test_approval_requests_notify_the_topic(pipeline):
    """The manual approval before prod announces itself on the same topic."""
    approval = pipeline.stage("Movies-prod")["Actions"][0]
    (topic_id,) = pipeline.resources("AWS::SNS::Topic")
    assert approval["Configuration"]["NotificationArn"] == {"Ref": topic_id}


def test_artifacts_are_encrypted_for_cross_account_deployments(pipeline):
    """Targets in other accounts: the artifact bucket uses a rotated customer-managed KMS key."""
    assert PIPELINE.needs_cross_account_keys
    (cfn_pipeline,) = pipeline.resources("AWS::CodePipeline::Pipeline").values()
    stores = {store["Region"]: store["ArtifactStore"] for store in cfn_pipeline["Properties"]["ArtifactStores"]}
    assert set(stores) == {PIPELINE.region, "us-east-1"}  # a replication bucket in the other stamp's region
    assert all(store["EncryptionKey"]["Type"] == "KMS" for store in stores.values())
    store = stores[PIPELINE.region]
    key = pipeline.template["Resources"][store["EncryptionKey"]["Id"]["Fn::GetAtt"][0]]
    assert key["Properties"]["EnableKeyRotation"] is True


# --- deployment stamps and config ------------------------------------------------------------------------------
def test_another_copy_of_an_environment_is_one_more_target():
    """A second copy of prod (another account, e.g. a tenant) is one DeploymentTarget: its own config name (so
    physical names never clash with the other prod), the smoke-test trust, and the usual overrides; its stamps
    keep their regions, its first stamp is in the target's region."""
    copy = DeploymentTarget("prod-b", "prod", "444444444444", "eu-central-1", requires_approval=True,
                            overrides={"domain_name": "b.movies.example.com"})  # fmt: skip
    config = copy.environment_config("111111111111")
    assert config.name == "prod-b"
    assert config.prefix == "movies-prod-b"
    assert config.domain_name == "b.movies.example.com"
    assert config.db_multi_az is True  # still the prod settings
    assert config.smoke_test_trusted_account == "111111111111"
    assert config.tags["Environment"] == "prod" and config.tags["Stamp"] == "prod-b"
    assert [stamp.region for stamp in config.all_stamps] == ["eu-central-1", "us-east-1"]
    with_copy = dataclasses.replace(PIPELINE, targets=(*PIPELINE.targets, copy))
    validate_pipeline_config(with_copy)  # accepted next to dev and prod: raises on a clash or an unknown environment


def test_a_target_named_like_another_targets_stamp_is_rejected():
    """``prod-us`` as a target would deploy stacks named like prod's second stamp: refused before synthesis."""
    clash = DeploymentTarget("prod-us", "prod", "333333333333", "us-east-1", requires_approval=True)
    with pytest.raises(ValueError, match="unique"):
        validate_pipeline_config(dataclasses.replace(PIPELINE, targets=(*PIPELINE.targets, clash)))


def test_invalid_pipeline_configs_are_rejected():
    """Duplicate stage names, unknown environments and a missing connection fail early, not at deploy time."""
    dev = PIPELINE.targets[0]
    with pytest.raises(ValueError, match="unique"):
        validate_pipeline_config(dataclasses.replace(PIPELINE, targets=(dev, dev)))
    with pytest.raises(ValueError, match="unknown environment"):
        validate_pipeline_config(
            dataclasses.replace(PIPELINE, targets=(dataclasses.replace(dev, environment="staging"),))
        )
    with pytest.raises(ValueError, match="connection_arn"):
        load_pipeline_config({"pipeline_connection_arn": ""})


def test_context_overrides_the_source():
    """Repository, branch and connection can be set in cdk.json's context without editing code."""
    config = load_pipeline_config({"pipeline_branch": "release", "pipeline_repository": "acme/movies", "env": "x"})
    assert (config.branch, config.repository) == ("release", "acme/movies")
    assert config.targets == PIPELINE.targets


# --- checks ----------------------------------------------------------------------------------------------------
#: Every accepted cdk-nag finding of the pipeline stack (normalised: logical ids, accounts and regions replaced).
#: Adding one is a reviewed change here and in stacks/nag.py (acknowledge_pipeline_findings), which has the reasons.
EXPECTED_PIPELINE_ACKNOWLEDGEMENTS = {
    "AwsSolutions-S1",
    "AwsSolutions-IAM5[Action::s3:Abort*]",
    "AwsSolutions-IAM5[Action::s3:DeleteObject*]",
    "AwsSolutions-IAM5[Action::s3:GetBucket*]",
    "AwsSolutions-IAM5[Action::s3:GetObject*]",
    "AwsSolutions-IAM5[Action::s3:List*]",
    "AwsSolutions-IAM5[Action::kms:GenerateDataKey*]",
    "AwsSolutions-IAM5[Action::kms:ReEncrypt*]",
    "AwsSolutions-IAM5[Resource::<id>/*]",
    "AwsSolutions-IAM5[Resource::arn:aws:logs:<region>:<account>:log-group:/aws/codebuild/<id>:*]",
    "AwsSolutions-IAM5[Resource::arn:aws:codebuild:<region>:<account>:report-group/<id>-*]",
    "AwsSolutions-IAM5[Resource::arn:aws:logs:<region>:<account>:log-group:/aws/codebuild/*]",
    "AwsSolutions-IAM5[Resource::arn:aws:codebuild:<region>:<account>:report-group/*]",
    "AwsSolutions-IAM5[Resource::arn:*:iam::<account>:role/*]",
    "AwsSolutions-IAM5[Resource::*]",
    # issue 16: prod's second stamp (us-east-1): the cross-region replication bucket CodePipeline adds there
    "AwsSolutions-IAM5[Resource::arn:aws:s3:::movies-pipeline-support-ueplicationbucket5b0745764e7811ca970f/*]",
}


def _normalise_rule(rule: str) -> str:
    rule = re.sub(r"<[^>]+>", "<id>", rule)
    rule = re.sub(r"\b\d{12}\b", "<account>", rule)
    return re.sub(r"\b[a-z]{2}(-[a-z]+)+-\d\b", "<region>", rule)


def _pipeline_acknowledgements(pipeline) -> list[tuple[str, str, str]]:
    return [
        (path, rule.split("::", 1)[-1], reason)
        for path, entries in pipeline.metadata.items()
        for entry in entries
        if entry["type"] == "aws:cdk:acknowledged-rules"
        for rule, reason in entry["data"].items()
        if rule.split("::", 1)[-1].startswith("AwsSolutions-")
    ]


def test_no_unacknowledged_nag_findings(pipeline):
    """The AwsSolutions pack reports nothing for the pipeline app (the pipeline stack and both stages)."""
    assert pipeline.nag_findings == []


def test_pipeline_acknowledgements_are_the_reviewed_list_with_reasons(pipeline):
    """Each accepted finding is on the reviewed list and carries a real sentence."""
    acknowledgements = _pipeline_acknowledgements(pipeline)
    assert {_normalise_rule(rule) for _, rule, _ in acknowledgements} == EXPECTED_PIPELINE_ACKNOWLEDGEMENTS
    for path, rule, reason in acknowledgements:
        assert len(reason.split()) >= 8, f"{rule} at {path}: reason too short"


def test_cfn_lint_clean(pipeline):
    """cfn-lint reports nothing for the pipeline template and the stages' auth templates (smoke-test role)."""
    templates = [str(pipeline.template_path)] + [
        str(pipeline.stage_template(target.name, "Auth")[0]) for target in PIPELINE.targets
    ]
    result = run_cfn_lint(templates)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == ""


#: cdk-assets destination ids (``<account>-<region>-<hash>``) hash the image tag, i.e. the asset hash.
ASSET_DESTINATION = re.compile(r"\b(\d{12}-[a-z]{2}(?:-[a-z]+)+-\d)-[0-9a-f]{8}\b")


def test_matches_snapshot(pipeline):
    """The pipeline template equals the reviewed snapshot (UPDATE_SNAPSHOTS=1 rewrites it; review the diff).

    Asset hashes and the asset destination ids derived from them are normalised, so a change under services/
    does not change the snapshot.
    """
    actual = ASSET_DESTINATION.sub(r"\1-<destination-hash>", normalise(pipeline.template))
    assert_matches_snapshot(actual, SNAPSHOT_DIR / "pipeline" / f"{STACK}.json", f"pipeline/{STACK}")


def test_docker_hub_login_synthesizes_clean(tmp_path):
    """With a Docker Hub login configured, the pipeline (with prod's cross-region stamp and the support stack
    CodePipeline adds for it) still passes cdk-nag, and the image builds log in."""
    from stacks.application import attach_nag, new_app
    from stacks.pipeline import PipelineStack

    config = dataclasses.replace(PIPELINE, docker_hub_secret_name="dockerhub")
    app = new_app(context=cdk_context(with_lookups=True), outdir=str(tmp_path), validation=False)
    PipelineStack(app, STACK, config=config)
    attach_nag(app, nag=True)
    app.synth()  # raises on any unacknowledged cdk-nag finding
    template = (tmp_path / f"{STACK}.template.json").read_text()
    assert "dockerhub" in template
