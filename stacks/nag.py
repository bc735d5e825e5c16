"""cdk-nag AwsSolutions acknowledgements, each with the reason it is acceptable.

(Over 250 lines on purpose: every accepted finding and its written reason in one reviewable place.)

Kept in one module so a reviewer sees every accepted finding at once. Each acknowledgement is attached to
the narrowest construct that produces the finding (cdk-nag 3: ``Validations.of(construct).acknowledge``),
and environment-dependent ones are only made when the config actually causes the finding.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from aws_cdk import Acknowledgment, Stack, Validations
from aws_cdk import aws_codebuild as codebuild
from aws_cdk import aws_iam as iam
from constructs import IConstruct

from contract import claim_check, invoices, posters
from stacks.shared_auth import AWS_CUSTOM_RESOURCE_PROVIDER

if TYPE_CHECKING:
    from stacks.pipeline import PipelineStack
    from stacks.stage import MicroservicesStage


def acknowledge(construct: IConstruct, rule_id: str, reason: str) -> None:
    """Acknowledge one cdk-nag finding on ``construct`` (and its children) with a written reason."""
    Validations.of(construct).acknowledge(Acknowledgment(id=rule_id, reason=reason))


def nag_text(value: Any) -> str:
    """A resolved CloudFormation value the way cdk-nag writes it in a finding id (``<Id.Arn>``, ``<AWS::...>``)."""
    if isinstance(value, str):
        return value
    if "Ref" in value:
        return f"<{value['Ref']}>"
    if "Fn::GetAtt" in value:
        return "<{}.{}>".format(*value["Fn::GetAtt"])
    if "Fn::ImportValue" in value:
        return nag_text(value["Fn::ImportValue"])
    if "Fn::Sub" in value and isinstance(value["Fn::Sub"], str):
        return re.sub(r"\$\{([^}]+)\}", r"<\1>", value["Fn::Sub"])
    if "Fn::Join" in value:
        delimiter, parts = value["Fn::Join"]
        return delimiter.join(nag_text(part) for part in parts)
    raise ValueError(f"no cdk-nag text for {value!r}")


def acknowledge_wildcards(role: iam.IRole, reason: str, *, resources_ending: tuple[str, ...] | None = None) -> None:
    """Acknowledge every wildcard action and resource (AwsSolutions-IAM5) of ``role``'s default policy, as it is
    resolved now; each with ``reason``, which must say why those wildcards are the narrowest possible.

    ``resources_ending`` limits it to the resources ending with one of those texts (a role whose wildcards have
    different reasons: each is acknowledged with its own), and no action wildcards."""
    stack = Stack.of(role)
    document = stack.resolve(role.node.find_child("DefaultPolicy").node.default_child.policy_document)
    found = set()
    for statement in document["Statement"]:
        for key, kind in (("Action", "Action"), ("Resource", "Resource")):
            values = statement.get(key, [])
            for value in values if isinstance(values, list) else [values]:
                text = nag_text(value)
                if resources_ending is not None and (kind != "Resource" or not text.endswith(resources_ending)):
                    continue
                if "*" in text:
                    found.add(f"AwsSolutions-IAM5[{kind}::{text}]")
    for rule_id in sorted(found):
        acknowledge(role, rule_id, reason)


def acknowledge_findings(stage: MicroservicesStage) -> None:
    """Acknowledge the accepted AwsSolutions findings of a ``MicroservicesStage``."""
    config = stage.config
    network, data, auth, compute = stage.network, stage.data, stage.auth, stage.compute

    acknowledge(
        network.alb_security_group,
        "AwsSolutions-EC23",
        "Internet-facing ALB: listener ports 80/443 must accept CloudFront, whose addresses are not fixed here. "
        "The ALB forwards only requests carrying CloudFront's secret origin header (others get 403), AWS WAF "
        "(managed rule groups, a per-viewer rate limit) filters them, and with HTTPS the ALB validates tokens.",
    )

    for db in data.databases:
        acknowledge(
            db.instance,
            "AwsSolutions-RDS11",
            "Standard PostgreSQL port 5432: the instance is in isolated subnets and its security group admits "
            "only its own service's tasks; a non-default port adds no protection against those.",
        )
        if not config.db_multi_az:
            acknowledge(
                db.instance,
                "AwsSolutions-RDS3",
                f"{config.name} is a cost-optimised environment: single-AZ by config (db_multi_az); prod is Multi-AZ.",
            )
        if not config.db_deletion_protection:
            acknowledge(
                db.instance,
                "AwsSolutions-RDS10",
                f"{config.name} is disposable: deletion protection is off by config so `cdk destroy` works; "
                "prod has deletion protection and snapshots on removal.",
            )

    acknowledge(
        data.rate_limit_store.secret,
        "AwsSolutions-SMG4",
        "The rate-limit store's user password: ElastiCache has no managed rotation for RBAC users, and the store "
        "holds only throttling counters behind a security group that admits the gateway's tasks alone. "
        "Rotation would be a Lambda calling ModifyUser with two passwords (docs/patterns/rate-limiting.md).",
    )
    acknowledge(
        data.order_id_key,
        "AwsSolutions-SMG4",
        "The gateway's order-id signing key is not rotated automatically: a new key makes every status link of "
        "orders already placed answer 404. It never leaves the gateway (ECS injects it into that container only) "
        "and can be replaced by hand (docs/patterns/asynchronous-request-reply.md).",
    )

    # The broker secret is rotated by our own Lambda (stacks/components/broker_rotation.py): no SMG4 any more.
    rotation = data.broker_rotation.function
    acknowledge(
        rotation.role,
        "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]",
        "The AWS-managed Lambda logging policy (CreateLogGroup/Stream, PutLogEvents); the function writes only "
        "to its own log group, and the managed policy tracks the Lambda service's needs.",
    )
    acknowledge(
        rotation.role,
        "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole]",
        "A VPC Lambda needs the network-interface permissions of this AWS-managed policy to attach to the "
        "private subnets (it reaches the broker's management API, which is not public).",
    )
    acknowledge(
        rotation.role,
        "AwsSolutions-IAM5[Resource::*]",
        "secretsmanager:GetRandomPassword has no resource-level permissions; every other action of the "
        "rotation role is limited to the broker secret itself.",
    )
    acknowledge(
        rotation,
        "AwsSolutions-L1",
        "Python 3.12 is the runtime the rotation handler is written and tested for (the services' Python); "
        "moving to a newer runtime is a tested change, not a silent one.",
    )
    acknowledge(
        data.backup.plan,
        "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSBackupServiceRolePolicyForBackup]",
        "The AWS-managed service policy AWS Backup documents for its backup role; the plan's selection limits "
        "what it backs up to the database instances.",
    )
    if config.db_enhanced_monitoring_seconds:
        for db in data.databases:
            acknowledge(
                db.instance,
                "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonRDSEnhancedMonitoringRole]",
                "The AWS-managed policy RDS Enhanced Monitoring requires for its role (writes OS metrics to the "
                "RDSOSMetrics log group only).",
            )

    if not config.cognito_mfa_required and not auth.remote:
        acknowledge(
            auth.user_pool,
            "AwsSolutions-COG2",
            f"{config.name}: MFA is optional (users may enrol TOTP) to keep trials simple; prod requires MFA.",
        )
    if not config.cognito_threat_protection and not auth.remote:
        acknowledge(
            auth.user_pool,
            "AwsSolutions-COG8",
            f"{config.name}: Essentials plan without threat protection to avoid per-MAU charges; prod uses the "
            "Plus plan with threat protection enforced.",
        )

    for service in (compute.inventory, compute.billing, compute.billing_express, compute.gateway):
        acknowledge(
            service.task_definition,
            "AwsSolutions-ECS2",
            "Plain environment variables carry only non-secret configuration (ports, host names, queue name, "
            "issuer URLs, secret ARNs); the services read database and broker credentials from Secrets Manager "
            "with their task role, so a rotated password reaches running tasks.",
        )
        if service.telemetry is not None:
            acknowledge(
                service.task_definition.task_role,
                "AwsSolutions-IAM5[Resource::*]",
                "xray:PutTraceSegments and xray:PutTelemetryRecords (the ADOT collector sidecar's X-Ray export) "
                "do not support resource-level permissions; the role's other statements name their resources "
                "(the metrics log group, the service's secrets).",
            )
        acknowledge(
            service.task_definition.obtain_execution_role(),
            "AwsSolutions-IAM5[Resource::*]",
            "ecr:GetAuthorizationToken does not support resource-level permissions; image pulls themselves "
            "are limited to the CDK asset repository.",
        )

    _acknowledge_web_findings(stage)
    _acknowledge_poster_findings(stage)
    _acknowledge_saga_findings(stage)
    _acknowledge_stamp_findings(stage)

    acknowledge(
        compute.access_logs_bucket,
        "AwsSolutions-S1",
        "This bucket receives the ALB access logs; logging its own accesses would need a second log bucket "
        "with the same finding. Access to it is restricted by the bucket policy and CloudTrail.",
    )


def _acknowledge_web_findings(stage: MicroservicesStage) -> None:
    """The web edge (issue 14): CloudFront in front of S3 and the ALB, its deployment, the origin secret."""
    config, compute = stage.config, stage.compute
    web = compute.web
    distribution = web.distribution
    acknowledge(
        distribution,
        "AwsSolutions-CFR1",
        "The movies catalogue is offered worldwide; no country is excluded by law or contract, so no geo "
        "restriction applies. One can be added to the distribution when that changes.",
    )
    acknowledge(
        distribution,
        "AwsSolutions-CFR2",
        "A CloudFront-scope web ACL must live in us-east-1, a second region this app does not deploy to; the "
        "regional web ACL on the ALB (managed rules, per-IP rate limit) filters every /api request, and the "
        "bucket paths serve static files only (docs/aws-deployment.md, 'The web edge').",
    )
    acknowledge(
        distribution,
        "AwsSolutions-CFR4",
        "The distribution uses its cloudfront.net certificate, with which CloudFront cannot pin a minimum "
        "viewer TLS version; browsers negotiate TLS 1.2 or 1.3. A custom domain needs an ACM certificate in "
        "us-east-1 and then TLSv1.2_2021 (docs/aws-deployment.md).",
    )
    if not config.https_enabled:
        acknowledge(
            distribution,
            "AwsSolutions-CFR5",
            f"{config.name} is the HTTP-only trial variant: the ALB has no certificate, so CloudFront reaches it "
            "over HTTP (announced as a synth warning); with a domain the origin is HTTPS with TLS 1.2 only.",
        )
    acknowledge(
        compute.edge.origin_verify_secret,
        "AwsSolutions-SMG4",
        "The origin-verify header value is read by CloudFront and the ALB rules through deploy-time dynamic "
        "references, so a rotation Lambda could not update them; it is replaced by hand with both in one "
        "deployment (docs/aws-deployment.md, 'The web edge').",
    )
    # BucketDeployment's provider: one singleton function per stack, a child of the stack.
    for child in compute.node.children:
        if child.node.id.startswith("Custom::CDKBucketDeployment"):
            reason = (
                "CDK's BucketDeployment provider: it copies the deployment's zip from the CDK assets bucket into "
                "the web content bucket (object wildcards of those two buckets only) and invalidates the "
                "distribution (cloudfront:CreateInvalidation has no resource-level permissions)."
            )
            acknowledge_wildcards(child.node.find_child("ServiceRole"), reason)
            acknowledge(
                child,
                "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]",
                "CDK's BucketDeployment provider writes its logs with the AWS-managed Lambda logging policy; it runs "
                "only during deployments.",
            )
            acknowledge(
                child,
                "AwsSolutions-L1",
                "The BucketDeployment provider's runtime is chosen by the installed aws-cdk-lib and moves with it; "
                "it runs only during deployments, never on a request path.",
            )


def _acknowledge_poster_findings(stage: MicroservicesStage) -> None:
    """The poster pipeline (issue 14): prefix-scoped object permissions, the filters' runtime, the uploads bucket."""
    acknowledge_wildcards(
        stage.compute.inventory.task_definition.task_role,
        "The presigned POST inventory signs may create objects under incoming/ of the uploads bucket only (the key "
        "of each upload is chosen by the server; the wildcard is that prefix, not the bucket).",
        resources_ending=(f"/{posters.INCOMING_PREFIX}*",),
    )
    for name, function in stage.posters.functions.items():
        acknowledge_wildcards(
            function.role,
            f"The {name} filter reads objects under its input prefix and writes under its output prefix only: "
            "the keys name the movie and the upload, so a prefix wildcard is the narrowest grant.",
        )
        acknowledge(
            function,
            "AwsSolutions-L1",
            "Python 3.12 is the runtime the filters are written and tested for (the services' Python, and the "
            "Pillow wheels bundled for it); moving to a newer runtime is a tested change, not a silent one.",
        )
    acknowledge(
        stage.posters.uploads_bucket,
        "AwsSolutions-S1",
        "Uploads are short-lived (expired after 7 days) and written only through presigned POSTs inventory signs "
        "and by the filters' roles; server access logs would need another bucket with the same finding.",
    )


def _acknowledge_saga_findings(stage: MicroservicesStage) -> None:
    """The saga (issue 15): the bucket of invoices and claim checks, prefix-scoped grants, the invoicer."""
    claim_checks, invoice_objects = f"/{claim_check.KEY_PREFIX}*", f"/{invoices.KEY_PREFIX}*"
    for service in (stage.compute.inventory, stage.compute.billing, stage.compute.billing_express):
        acknowledge_wildcards(
            service.task_definition.task_role,
            "Claim checks: the service stores the bodies of large saga events it publishes and reads those it "
            "consumes under claim-checks/ of the saga bucket only; each key is a body's sha256, known only when "
            "the event exists, so the prefix is the narrowest grant.",
            resources_ending=(claim_checks,),
        )
    acknowledge_wildcards(
        stage.compute.billing.task_definition.task_role,
        "Billing presigns GETs of invoices (a presigned URL carries its signer's permissions): read-only, under "
        "invoices/ of the saga bucket only; the keys are the orders' ids.",
        resources_ending=(invoice_objects,),
    )
    invoicer = stage.invoicer
    acknowledge_wildcards(
        invoicer.role,
        "The invoicer stores (and, for a redelivered order, looks up) invoices under invoices/ of the saga bucket "
        "only, one key per order id. Resource * is the EC2 network-interface actions (Create/Delete/Describe) the "
        "Amazon MQ event source needs in the broker's subnets: none of them supports resource-level permissions.",
    )
    acknowledge(
        invoicer.function,
        "AwsSolutions-L1",
        "Python 3.12 is the runtime the invoicer is written and tested for (the services' Python, and the fpdf2 "
        "and Pillow wheels bundled for it); moving to a newer runtime is a tested change, not a silent one.",
    )
    acknowledge(
        stage.data.saga_bucket,
        "AwsSolutions-S1",
        "The saga bucket is written only by the invoicer's role (invoices/) and the services' task roles "
        "(claim-checks/), and read through presigned GETs billing signs for the order's owner; object access can "
        "be audited with CloudTrail data events. Server access logs would need another bucket with the same "
        "finding.",
    )


def _acknowledge_stamp_findings(stage: MicroservicesStage) -> None:
    """The outside check's canary (its artifacts bucket and the role CDK gives every canary); and, in an
    additional stamp, CDK's ``AwsCustomResource`` Lambda that reads the shared user pool's ids and creates the
    web client in the first stamp's region (stacks/shared_auth.py), whose role has the managed logging policy."""
    check = stage.monitoring.outside_check
    if check is not None:
        acknowledge(
            check.bucket,
            "AwsSolutions-S1",
            "The canary's artifacts bucket holds only its run reports (screenshots none, logs of two HTTP calls) "
            "for 30 days; logging the accesses to it would need another log bucket with the same finding.",
        )
        monitoring = stage.monitoring
        bucket = monitoring.get_logical_id(check.bucket.node.default_child)
        for resource in (
            "*",
            f"<{bucket}.Arn>/canary/*",
            f"arn:aws:logs:{monitoring.region}:{monitoring.account}:log-group:/aws/lambda/cwsyn-*",
        ):
            acknowledge(
                check.canary.role,
                f"AwsSolutions-IAM5[Resource::{nag_text(monitoring.resolve(resource))}]",
                "The role CDK gives a Synthetics canary: s3:ListAllMyBuckets and cloudwatch:PutMetricData (limited "
                "to the CloudWatchSynthetics namespace by a condition) have no resource-level permissions; it "
                "writes only under canary/ of its own bucket and to the cwsyn-* log groups named after the canary.",
            )
    if not stage.auth.remote:
        return
    for stack in (stage.auth, stage.compute):
        provider = stack.node.try_find_child(AWS_CUSTOM_RESOURCE_PROVIDER)
        if provider is not None:
            acknowledge(
                provider,
                "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]",
                "CDK's AwsCustomResource provider logs with the AWS-managed Lambda logging policy; its own actions "
                "are the few SSM reads and Cognito client calls of this stack, on the named parameters and pool.",
            )


def acknowledge_pipeline_findings(stack: PipelineStack) -> None:
    """Acknowledge the accepted AwsSolutions findings of the ``PipelineStack``.

    Every one is in a policy CDK Pipelines generates for its own resources (artifact bucket and key, the
    CodeBuild projects' logs and reports, the CDK bootstrap roles); the roles of our own steps add only
    exact resources (the smoke test: ``sts:AssumeRole`` on one named role per target).
    """
    generated = stack.pipeline  # the CDK Pipelines construct: every generated role lives below it
    pipeline = generated.pipeline
    bucket = stack.get_logical_id(pipeline.artifact_bucket.node.default_child)

    acknowledge(
        pipeline.artifact_bucket,
        "AwsSolutions-S1",
        "Pipeline artifact bucket: objects are written and read only by this pipeline's roles and encrypted with "
        "its KMS key (object access can be audited with CloudTrail data events); server access logs would need "
        "another bucket with the same finding.",
    )
    artifact_reason = (
        "CDK Pipelines' grants on the pipeline's own artifact bucket and its KMS key: each action reads its "
        "input artifacts and writes its outputs (object keys are generated per execution, hence the object "
        "wildcard and the action groups); no other bucket or key is reachable."
    )
    for action in (
        "s3:Abort*",
        "s3:DeleteObject*",
        "s3:GetBucket*",
        "s3:GetObject*",
        "s3:List*",
        "kms:GenerateDataKey*",
        "kms:ReEncrypt*",
    ):
        acknowledge(generated, f"AwsSolutions-IAM5[Action::{action}]", artifact_reason)
    acknowledge(generated, f"AwsSolutions-IAM5[Resource::<{bucket}.Arn>/*]", artifact_reason)

    # Every CodeBuild project may write its own log group and test reports, which CodeBuild names after the
    # project (the log streams and report groups are created per build, hence the suffix wildcard).
    logs_prefix = f"arn:{stack.partition}:logs:{stack.region}:{stack.account}:log-group:/aws/codebuild/"
    reports_prefix = f"arn:{stack.partition}:codebuild:{stack.region}:{stack.account}:report-group/"
    for project in generated.node.find_all():
        if isinstance(project, codebuild.Project):
            project_id = stack.get_logical_id(project.node.default_child)
            reason = (
                "CodeBuild writes this project's logs to /aws/codebuild/<project> (one stream per build) and its "
                "test reports to report groups named after the project; the wildcard covers only those."
            )
            acknowledge(project.role, f"AwsSolutions-IAM5[Resource::{logs_prefix}<{project_id}>:*]", reason)
            acknowledge(project.role, f"AwsSolutions-IAM5[Resource::{reports_prefix}<{project_id}>-*]", reason)

    # Targets in other regions than the pipeline: CodePipeline adds a support stack per region with an
    # artifact replication bucket and key, which the pipeline role reaches by name and alias.
    for region, support in pipeline.cross_region_support.items():
        acknowledge(
            support.replication_bucket,
            "AwsSolutions-S1",
            f"Artifact replication bucket of the pipeline in {region}: written and read only by the pipeline, "
            "KMS-encrypted; server access logs would need another bucket with the same finding.",
        )
        bucket_name = stack.resolve(support.replication_bucket.bucket_name)  # a physical name in this stack
        acknowledge(
            pipeline.role,
            f"AwsSolutions-IAM5[Resource::arn:{stack.partition}:s3:::{bucket_name}/*]",
            artifact_reason,
        )
        acknowledge(
            pipeline.role,
            "AwsSolutions-IAM5[Resource::*]",
            "CodePipeline's grant on the cross-region replication key, which the support stack exposes only by "
            "alias (its ARN is unknown to this stack); the key policy admits this account's principals and "
            "the target's CDK deploy role.",
        )

    self_mutation = generated.node.find_child("UpdatePipeline").node.find_child("SelfMutation")
    acknowledge(
        self_mutation,
        f"AwsSolutions-IAM5[Resource::arn:*:iam::{stack.account}:role/*]",
        "Self-mutation runs `cdk deploy` of this stack: it may assume only the CDK bootstrap roles of the "
        "pipeline account (condition on the aws-cdk:bootstrap-role tag: deploy, file- and image-publishing).",
    )
    acknowledge(
        self_mutation,
        "AwsSolutions-IAM5[Resource::*]",
        "cloudformation:DescribeStacks and s3:ListBucket, read-only calls the CDK CLI makes to find the "
        "bootstrap stack and its staging bucket before it assumes the bootstrap roles.",
    )

    # The file-asset role (the broker rotation Lambda's code) gets the same generated grants.
    file_role = generated.node.find_child("Assets").node.try_find_child("FileRole")
    if file_role is not None:
        acknowledge(
            file_role,
            "AwsSolutions-IAM5[Resource::*]",
            "The role of the file-publishing CodeBuild projects: CodePipeline starts and watches their builds "
            "with it; uploads happen only through the targets' CDK file-publishing roles.",
        )
        acknowledge(
            file_role,
            f"AwsSolutions-IAM5[Resource::{logs_prefix}*]",
            "One role serves every file-publishing CodeBuild project, so it writes the log groups "
            "/aws/codebuild/<project> of all of them.",
        )
        acknowledge(
            file_role,
            f"AwsSolutions-IAM5[Resource::{reports_prefix}*]",
            "One role serves every file-publishing CodeBuild project, so it may write the report groups of all of "
            "them (CDK Pipelines grants it to every project role).",
        )

    docker_role = generated.node.find_child("Assets").node.find_child("DockerRole")
    acknowledge(
        docker_role,
        "AwsSolutions-IAM5[Resource::*]",
        "The role shared by the image-publishing projects: CodePipeline starts and watches their builds with "
        "it (codebuild:StartBuild/BatchGetBuilds/StopBuild, issued before the project ARNs exist in this role's "
        "policy); pushing images happens only through the targets' CDK image-publishing roles.",
    )
    acknowledge(
        docker_role,
        f"AwsSolutions-IAM5[Resource::{logs_prefix}*]",
        "One role serves every image-publishing CodeBuild project, one per image, so it writes the log groups "
        "/aws/codebuild/<project> of all of them.",
    )
    acknowledge(
        docker_role,
        f"AwsSolutions-IAM5[Resource::{reports_prefix}*]",
        "One role serves every image-publishing CodeBuild project, one per image, so it may write the report "
        "groups of all of them (cdk-assets writes none; CDK Pipelines grants it to every project role).",
    )
