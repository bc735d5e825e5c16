"""OutsideCheck: a CloudWatch Synthetics canary that uses a stamp the way a client does, from outside.

Every ``canary_every_minutes`` it fetches ``/health`` (no token) and then makes one authenticated API call
(``GET /api/movies``) through the stamp's public URL (CloudFront, ALB, gateway, inventory), with a token from
the shared user pool's machine client (client credentials, only the ``movies.read`` scope). The client secret
is never in the template, an environment variable or a log: the canary reads it from Cognito at run time
(``DescribeUserPoolClient``, the one action its role has on the pool), as the pipeline's smoke test does. That
is instead of a copy in Secrets Manager: a copy would have to be kept equal to Cognito's by a custom resource
and re-copied when the client is replaced, and would cost $0.40 a month per stamp for nothing gained.
(docs/stamps-and-geode.md, "Health monitored from outside")
"""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_synthetics as synthetics
from constructs import Construct

from contract import web
from contract.permissions import SCOPE_PREFIX
from stacks.config import EnvironmentConfig

#: The canary's handler: standard library and boto3 only (both in the Synthetics Python runtime).
CANARY_CODE = '''\
import base64
import json
import os
import urllib.parse
import urllib.request

import boto3


def _get(url, token=None):
    headers = {"User-Agent": "movies-outside-check/1"}
    if token:
        headers["Authorization"] = "Bearer " + token
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10) as response:
        return response.status


def _token():
    cognito = boto3.client("cognito-idp", region_name=os.environ["POOL_REGION"])
    client = cognito.describe_user_pool_client(
        UserPoolId=os.environ["USER_POOL_ID"], ClientId=os.environ["CLIENT_ID"]
    )["UserPoolClient"]
    basic = base64.b64encode((client["ClientId"] + ":" + client["ClientSecret"]).encode()).decode()
    form = urllib.parse.urlencode({"grant_type": "client_credentials", "scope": os.environ["SCOPE"]}).encode()
    request = urllib.request.Request(
        os.environ["TOKEN_URL"],
        data=form,
        headers={"Authorization": "Basic " + basic, "Content-Type": "application/x-www-form-urlencoded"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)["access_token"]


def handler(event, context):
    base = os.environ["STAMP_URL"]
    status = _get(base + os.environ["HEALTH_PATH"])
    if status != 200:
        raise RuntimeError("health answered %s" % status)
    status = _get(base + os.environ["API_PATH"], _token())
    if status != 200:
        raise RuntimeError("authenticated call answered %s" % status)
    return "ok"
'''


class OutsideCheck(Construct):
    """The canary of one stamp, its artifacts bucket and its role's one Cognito permission."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: EnvironmentConfig,
        url: str,
        auth,
    ) -> None:
        super().__init__(scope, construct_id)
        checks = config.outside_checks
        assert checks is not None
        stack = Stack.of(self)
        self.bucket = s3.Bucket(
            self,
            "Artifacts",
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            lifecycle_rules=[s3.LifecycleRule(expiration=Duration.days(30))],
            removal_policy=RemovalPolicy.DESTROY,
            auto_delete_objects=False,
        )
        self.canary = synthetics.Canary(
            self,
            "Canary",
            # Canary names: at most 21 lower-case characters.
            canary_name=f"{config.prefix}-api"[:21],
            runtime=synthetics.Runtime.SYNTHETICS_PYTHON_SELENIUM_7_0,
            test=synthetics.Test.custom(code=synthetics.Code.from_inline(CANARY_CODE), handler="index.handler"),
            schedule=synthetics.Schedule.rate(Duration.minutes(checks.canary_every_minutes)),
            artifacts_bucket_location=synthetics.ArtifactsBucketLocation(bucket=self.bucket, prefix="canary"),
            environment_variables={
                "STAMP_URL": url,
                "HEALTH_PATH": web.HEALTH_PATH,
                "API_PATH": checks.path,
                "POOL_REGION": auth.pool_region,
                "USER_POOL_ID": auth.user_pool_id,
                "CLIENT_ID": auth.machine_client_id,
                "TOKEN_URL": f"{auth.domain_url}/oauth2/token",
                "SCOPE": f"{SCOPE_PREFIX}{checks.permission}",
            },
            timeout=Duration.seconds(60),
            success_retention_period=Duration.days(7),
            failure_retention_period=Duration.days(30),
        )
        self.canary.role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["cognito-idp:DescribeUserPoolClient"],
                resources=[
                    stack.format_arn(
                        service="cognito-idp",
                        region=auth.pool_region,
                        account=getattr(auth, "pool_account", stack.account),
                        resource="userpool",
                        resource_name=auth.user_pool_id,
                    )
                ],
            )
        )

        self.success_percent = self.canary.metric_success_percent(
            period=Duration.minutes(checks.canary_every_minutes)
        )
