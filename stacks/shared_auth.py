"""SharedAuthStack: an additional stamp's side of the environment's ONE Cognito user pool.

The user pool lives in the first stamp's AuthStack (its region). Every other stamp accepts the same tokens: its
gateway and ALB validate the pool's issuer and JWKS, so a person or machine signed in once can use any stamp.
The pool's ids reach this stamp through the stamp registry (SSM parameters the first stamp's AuthStack writes in
its region, ``/movies/<env>/auth/...``), read at deploy time by a small custom resource (an SSM read in the
first stamp's region). Why not CDK cross-region references: the pipeline deploys stamps as separate stages (in
waves), and references cannot cross stages; why not ids typed into the config: a first deployment would need a
second commit. (docs/stamps-and-geode.md, "One user pool".)
"""

from __future__ import annotations

from aws_cdk import Duration, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import custom_resources as cr
from constructs import Construct

from contract.permissions import group_permissions_setting
from stacks.config import EnvironmentConfig

#: Names of the first stamp's auth parameters under ``<registry_path>/auth/``.
USER_POOL_ID, MACHINE_CLIENT_ID, DOMAIN_URL = "user-pool-id", "machine-client-id", "domain-url"
AUTH_PARAMETERS = (USER_POOL_ID, MACHINE_CLIENT_ID, DOMAIN_URL)


def auth_parameter(config: EnvironmentConfig, name: str) -> str:
    """SSM name of one of the first stamp's auth parameters."""
    return f"{config.registry_path}/auth/{name}"


class SharedAuthStack(Stack):
    """The first stamp's user pool as an additional stamp sees it: the same attributes ``AuthStack`` offers the
    compute stack (issuer, JWKS, accepted clients, hosted-domain URL), read from the registry."""

    remote = True
    """The pool is in another region: clients of it are created there (``create_client``)."""

    def __init__(self, scope: Construct, construct_id: str, *, config: EnvironmentConfig, **kwargs) -> None:
        super().__init__(scope, construct_id, **kwargs)
        first = config.all_stamps[0]
        self.pool_region = first.region
        self.pool_account = first.account or self.account
        parameters = [
            self.format_arn(
                service="ssm",
                region=self.pool_region,
                account=self.pool_account,
                resource="parameter",
                resource_name=auth_parameter(config, name).lstrip("/"),
            )
            for name in AUTH_PARAMETERS
        ]
        values = {}
        for name in AUTH_PARAMETERS:
            path = auth_parameter(config, name)
            reader = cr.AwsCustomResource(
                self,
                f"Read{''.join(part.capitalize() for part in name.split('-'))}",
                on_update=cr.AwsSdkCall(
                    service="SSM",
                    action="getParameter",
                    parameters={"Name": path},
                    region=self.pool_region,
                    physical_resource_id=cr.PhysicalResourceId.of(path),
                ),
                policy=cr.AwsCustomResourcePolicy.from_statements(
                    [iam.PolicyStatement(actions=["ssm:GetParameter"], resources=parameters)]
                ),
                install_latest_aws_sdk=False,
                timeout=Duration.minutes(2),
            )
            values[name] = reader.get_response_field("Parameter.Value")
        self.user_pool_id = values[USER_POOL_ID]
        self.domain_url = values[DOMAIN_URL]
        self.user_pool_arn = self.format_arn(
            service="cognito-idp",
            region=self.pool_region,
            account=self.pool_account,
            resource="userpool",
            resource_name=self.user_pool_id,
        )
        self.issuer = f"https://cognito-idp.{self.pool_region}.amazonaws.com/{self.user_pool_id}"
        self.jwks_url = f"{self.issuer}/.well-known/jwks.json"
        self.machine_client_id = values[MACHINE_CLIENT_ID]
        self.allowed_client_ids = [self.machine_client_id]
        self.group_permissions = group_permissions_setting()
        tidy_custom_resource_provider(self)

    def create_client(self, scope: Construct, construct_id: str, settings: dict) -> str:
        """Create an app client of the pool (``CreateUserPoolClient`` settings) from ``scope``, in the pool's region;
        returns its id. CloudFormation creates resources only in its stack's region, hence a custom resource that
        calls Cognito there (updated in place, deleted with the stack)."""
        client = cr.AwsCustomResource(
            scope,
            construct_id,
            on_create=cr.AwsSdkCall(
                service="CognitoIdentityServiceProvider",
                action="createUserPoolClient",
                parameters={"UserPoolId": self.user_pool_id, **settings},
                region=self.pool_region,
                physical_resource_id=cr.PhysicalResourceId.from_response("UserPoolClient.ClientId"),
            ),
            on_update=cr.AwsSdkCall(
                service="CognitoIdentityServiceProvider",
                action="updateUserPoolClient",
                parameters={"UserPoolId": self.user_pool_id, "ClientId": cr.PhysicalResourceIdReference(), **settings},
                region=self.pool_region,
                physical_resource_id=cr.PhysicalResourceId.from_response("UserPoolClient.ClientId"),
            ),
            on_delete=cr.AwsSdkCall(
                service="CognitoIdentityServiceProvider",
                action="deleteUserPoolClient",
                parameters={"UserPoolId": self.user_pool_id, "ClientId": cr.PhysicalResourceIdReference()},
                region=self.pool_region,
            ),
            policy=cr.AwsCustomResourcePolicy.from_statements(
                [
                    iam.PolicyStatement(
                        actions=[
                            "cognito-idp:CreateUserPoolClient",
                            "cognito-idp:UpdateUserPoolClient",
                            "cognito-idp:DeleteUserPoolClient",
                        ],
                        resources=[self.user_pool_arn],
                    )
                ]
            ),
            install_latest_aws_sdk=False,
            timeout=Duration.minutes(2),
        )
        tidy_custom_resource_provider(Stack.of(scope))
        return client.get_response_field("UserPoolClient.ClientId")


#: Construct id of the Lambda behind every ``AwsCustomResource`` of a stack (one per stack, fixed by CDK).
AWS_CUSTOM_RESOURCE_PROVIDER = "AWS679f53fac002430cb0da5b7982bd2287"


def tidy_custom_resource_provider(stack: Stack) -> None:
    """Drop the ``DependsOn`` of CDK's AwsCustomResource Lambda on its role: its ``Role`` GetAtt already orders
    them (cfn-lint W3005, which the repository keeps at zero warnings)."""
    provider = stack.node.try_find_child(AWS_CUSTOM_RESOURCE_PROVIDER)
    if provider is not None:
        provider.node.default_child.add_deletion_override("DependsOn")
