"""PosterPipelineStack: the uploads bucket, the pipes (SQS) and the three filters (Lambda) of the poster path.

The path (``contract.posters``): the browser uploads with inventory's presigned POST to ``incoming/`` of the
uploads bucket; S3 announces the object on ``UPLOADED``; ``validate`` -> ``VALIDATED`` -> ``resize`` ->
``RESIZED`` -> ``publish``, which writes ``posters/`` of the web content bucket (compute stack) and reports on
``RESULTS``, consumed by inventory. Each filter has its own role that reads only its input prefix, writes only
its output prefix and sends only to its output queues; each queue has a dead-letter queue.

Deployed after the compute stack (the CORS origin is the distribution): the compute stack reaches the bucket
and the results queue by the physical names ``EnvironmentConfig`` computes for both stacks, never by a
reference, so there is no cycle (docs/aws-deployment.md, "The web edge").
"""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as event_sources
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from contract import posters
from stacks.components.lambda_bundle import REPO_ROOT, depend_only_on_role_policy, python_lambda_code
from stacks.components.web_front_end import WebFrontEnd
from stacks.config import EnvironmentConfig

REQUIREMENTS = REPO_ROOT / "functions" / "posters" / "requirements.txt"
#: The filters' one code asset: folder in the asset -> repository folder (as functions/posters/asset.py lays it out:
#: the package ``posters`` and ``contract``, which the filters import).
SOURCES = {"posters": "functions/posters", "contract": "contract"}
#: Lambda timeout: shorter than the queues' visibility timeout, so a message is never processed twice at once.
FILTER_TIMEOUT = Duration.seconds(30)
assert FILTER_TIMEOUT.to_seconds() < posters.VISIBILITY_TIMEOUT_SECONDS
#: Messages per invocation (failures are reported per message) and concurrent invocations per filter.
BATCH_SIZE = 5
MAX_CONCURRENCY = 5
#: Memory per filter: decoding and resizing a 40-megapixel image needs room; publish only copies objects.
MEMORY_MIB = {"validate": 1024, "resize": 1024, "publish": 256}
#: Days before a pipeline's intermediate objects (and an upload that was never processed) expire.
STAGE_EXPIRY_DAYS = 7


class PosterPipelineStack(Stack):
    """Uploads bucket, pipes and filters of one environment (pipes and filters, valet key)."""

    def __init__(
        self, scope: Construct, construct_id: str, *, config: EnvironmentConfig, web: WebFrontEnd, **kwargs
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.config = config
        self.uploads_bucket_name = config.poster_uploads_bucket_name(self.account, self.region)
        self.queues: dict[str, sqs.Queue] = {}
        self.dead_letter_queues: dict[str, sqs.Queue] = {}
        for pipe in posters.PIPES:
            self._pipe(config, pipe)
        self.uploads_bucket = self._uploads_bucket(config, web)
        # The web content bucket by its name (compute stack): publish's grant is then a plain ARN.
        web_bucket = s3.Bucket.from_bucket_name(self, "WebContent", config.web_bucket_name(self.account, self.region))

        code = python_lambda_code(REQUIREMENTS, SOURCES, python_version="3.12")
        self.functions: dict[str, lambda_.Function] = {}
        results = self.queues[posters.RESULTS.name]
        validated, resized = self.queues[posters.VALIDATED.name], self.queues[posters.RESIZED.name]
        self._filter(
            "validate", code, reads=posters.INCOMING_PREFIX, writes=(self.uploads_bucket, posters.VALIDATED_PREFIX),
            sends=[validated, results], environment={"NEXT_QUEUE_URL": validated.queue_url},
        )  # fmt: skip
        self._filter(
            "resize", code, reads=posters.VALIDATED_PREFIX, writes=(self.uploads_bucket, posters.RESIZED_PREFIX),
            sends=[resized], environment={"NEXT_QUEUE_URL": resized.queue_url},
        )  # fmt: skip
        self._filter(
            "publish", code, reads=posters.RESIZED_PREFIX, writes=(web_bucket, posters.PUBLISHED_PREFIX),
            sends=[results], environment={"WEB_BUCKET": web_bucket.bucket_name},
        )  # fmt: skip

    def _pipe(self, config: EnvironmentConfig, pipe: posters.Pipe) -> None:
        """The queue of ``pipe`` and its dead-letter queue: SSE, TLS only, redrive after MAX_RECEIVE_COUNT."""
        dead_letters = sqs.Queue(
            self,
            f"{_camel(pipe.name)}Dlq",
            queue_name=config.poster_queue_name(pipe.dead_letter_queue),
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=Duration.days(14),
        )
        self.dead_letter_queues[pipe.name] = dead_letters
        self.queues[pipe.name] = sqs.Queue(
            self,
            _camel(pipe.name),
            queue_name=config.poster_queue_name(pipe.name),
            # SSE-SQS: S3 event notifications cannot use a queue encrypted with the AWS-managed SQS KMS key.
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            visibility_timeout=Duration.seconds(posters.VISIBILITY_TIMEOUT_SECONDS),
            dead_letter_queue=sqs.DeadLetterQueue(queue=dead_letters, max_receive_count=posters.MAX_RECEIVE_COUNT),
        )

    def _uploads_bucket(self, config: EnvironmentConfig, web: WebFrontEnd) -> s3.Bucket:
        """The valet key's bucket: private, TLS only, browsers may POST from the web origin only."""
        expiry = Duration.days(STAGE_EXPIRY_DAYS)
        bucket = s3.Bucket(
            self,
            "Uploads",
            bucket_name=self.uploads_bucket_name,
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            cors=[
                s3.CorsRule(
                    allowed_methods=[s3.HttpMethods.POST],
                    allowed_origins=[web.url],
                    allowed_headers=["*"],
                    max_age=3000,
                )
            ],
            lifecycle_rules=[
                s3.LifecycleRule(id="AbortIncompleteUploads", abort_incomplete_multipart_upload_after=Duration.days(1)),
                *(
                    s3.LifecycleRule(id=f"Expire{_camel(prefix.rstrip('/'))}", prefix=prefix, expiration=expiry)
                    for prefix in (posters.INCOMING_PREFIX, posters.VALIDATED_PREFIX, posters.RESIZED_PREFIX)
                ),
            ],
            removal_policy=RemovalPolicy.RETAIN if config.retain_data_on_delete else RemovalPolicy.DESTROY,
        )
        uploaded = self.queues[posters.UPLOADED.name]
        # S3 may send to UPLOADED, for this bucket (by its fixed name: no reference, no cycle) and account only.
        uploaded.add_to_resource_policy(
            iam.PolicyStatement(
                principals=[iam.ServicePrincipal("s3.amazonaws.com")],
                actions=["sqs:SendMessage"],
                resources=[uploaded.queue_arn],
                conditions={
                    "ArnLike": {"aws:SourceArn": f"arn:{self.partition}:s3:::{self.uploads_bucket_name}"},
                    "StringEquals": {"aws:SourceAccount": self.account},
                },
            )
        )
        # The notification is set on the bucket itself rather than with CDK's notifications custom resource (a
        # Lambda with s3:PutBucketNotification on *): S3 checks the queue policy when the bucket is created.
        cfn_bucket: s3.CfnBucket = bucket.node.default_child
        cfn_bucket.notification_configuration = s3.CfnBucket.NotificationConfigurationProperty(
            queue_configurations=[
                s3.CfnBucket.QueueConfigurationProperty(
                    event="s3:ObjectCreated:*",
                    queue=uploaded.queue_arn,
                    filter=s3.CfnBucket.NotificationFilterProperty(
                        s3_key=s3.CfnBucket.S3KeyFilterProperty(
                            rules=[s3.CfnBucket.FilterRuleProperty(name="prefix", value=posters.INCOMING_PREFIX)]
                        )
                    ),
                )
            ]
        )
        bucket.node.add_dependency(uploaded.node.find_child("Policy"))
        return bucket

    def _filter(
        self,
        name: str,
        code: lambda_.Code,
        *,
        reads: str,
        writes: tuple[s3.IBucket, str],
        sends: list[sqs.Queue],
        environment: dict[str, str],
    ) -> None:
        """One filter: its role (read ``reads`` of the uploads bucket, write one prefix, send to ``sends``),
        its log group, the function and its SQS event source."""
        label = _camel(name)
        role = iam.Role(
            self,
            f"{label}Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"poster filter {name}: reads {reads}, writes {writes[1]}",
        )
        log_group = logs.LogGroup(
            self, f"{label}Logs", retention=self.config.log_retention, removal_policy=RemovalPolicy.DESTROY
        )
        log_group.grant_write(role)
        out_bucket, out_prefix = writes
        role.add_to_policy(
            iam.PolicyStatement(actions=["s3:GetObject"], resources=[self.uploads_bucket.arn_for_objects(f"{reads}*")])
        )
        role.add_to_policy(
            iam.PolicyStatement(actions=["s3:PutObject"], resources=[out_bucket.arn_for_objects(f"{out_prefix}*")])
        )
        for queue in sends:
            queue.grant_send_messages(role)
        source = self.queues[posters.FILTERS[name].name]
        results = self.queues[posters.RESULTS.name]
        function = lambda_.Function(
            self,
            label,
            function_name=self.config.poster_function_name(name),
            description=f"Poster filter {name}: {posters.FILTERS[name].description}",
            runtime=lambda_.Runtime.PYTHON_3_12,
            architecture=lambda_.Architecture.ARM_64,
            handler=f"posters.{name}.handler",
            code=code,
            role=role,
            log_group=log_group,
            timeout=FILTER_TIMEOUT,
            memory_size=MEMORY_MIB[name],
            environment={
                "UPLOAD_BUCKET": self.uploads_bucket.bucket_name,
                **({"RESULTS_QUEUE_URL": results.queue_url} if results in sends else {}),
                **environment,
            },
        )
        function.add_event_source(
            event_sources.SqsEventSource(
                source, batch_size=BATCH_SIZE, report_batch_item_failures=True, max_concurrency=MAX_CONCURRENCY
            )
        )
        depend_only_on_role_policy(function)
        self.functions[name] = function


def _camel(name: str) -> str:
    """``poster-uploaded`` -> ``PosterUploaded`` (construct ids)."""
    return "".join(part.capitalize() for part in name.replace("_", "-").split("-"))
