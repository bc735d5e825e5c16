"""AuthStack: Cognito user pool, hosted domain, API scopes and the machine app client (the web front end's
client is in the compute stack)."""

from __future__ import annotations

from aws_cdk import Aws, CfnOutput, Duration, RemovalPolicy, Stack
from aws_cdk import aws_cognito as cognito
from aws_cdk import aws_iam as iam
from aws_cdk import aws_ssm as ssm
from constructs import Construct

from contract.permissions import API_IDENTIFIER, GROUP_PERMISSIONS, PERMISSIONS, group_permissions_setting
from stacks.config import EnvironmentConfig
from stacks.shared_auth import DOMAIN_URL, MACHINE_CLIENT_ID, USER_POOL_ID, auth_parameter


class AuthStack(Stack):
    """Identity for people (Cognito managed login, through the web front end's client) and for machines (client
    credentials).

    Only the environment's first stamp has one: every other stamp accepts this pool's tokens
    (stacks/shared_auth.py), which finds its ids in the SSM parameters written here."""

    remote = False
    """The pool is in this stamp's region (``SharedAuthStack`` says True)."""

    def __init__(self, scope: Construct, construct_id: str, *, config: EnvironmentConfig, **kwargs) -> None:
        super().__init__(scope, construct_id, **kwargs)

        self.user_pool = cognito.UserPool(
            self,
            "UserPool",
            self_sign_up_enabled=False,  # accounts are created by administrators
            sign_in_aliases=cognito.SignInAliases(email=True),
            auto_verify=cognito.AutoVerifiedAttrs(email=True),
            account_recovery=cognito.AccountRecovery.EMAIL_ONLY,
            password_policy=cognito.PasswordPolicy(
                min_length=8,
                require_lowercase=True,
                require_uppercase=True,
                require_digits=True,
                require_symbols=True,
                temp_password_validity=Duration.days(3),
            ),
            mfa=cognito.Mfa.REQUIRED if config.cognito_mfa_required else cognito.Mfa.OPTIONAL,
            mfa_second_factor=cognito.MfaSecondFactor(otp=True, sms=False),
            feature_plan=cognito.FeaturePlan.PLUS
            if config.cognito_threat_protection
            else cognito.FeaturePlan.ESSENTIALS,
            standard_threat_protection_mode=cognito.StandardThreatProtectionMode.FULL_FUNCTION
            if config.cognito_threat_protection
            else None,
            deletion_protection=config.retain_data_on_delete,
            removal_policy=RemovalPolicy.RETAIN if config.retain_data_on_delete else RemovalPolicy.DESTROY,
        )

        # Prefix domains must be unique per region; the account id makes the prefix unique per deployment.
        self.domain = self.user_pool.add_domain(
            "Domain",
            cognito_domain=cognito.CognitoDomainOptions(domain_prefix=f"{config.prefix}-{Aws.ACCOUNT_ID}"),
        )

        # One OAuth scope per permission of the contract; Cognito names them <API_IDENTIFIER>/<permission>.
        scopes = [cognito.ResourceServerScope(scope_name=n, scope_description=d) for n, d in PERMISSIONS.items()]
        self.resource_server = self.user_pool.add_resource_server(
            "ApiResourceServer", identifier=API_IDENTIFIER, scopes=scopes
        )
        api_scopes = [cognito.OAuthScope.resource_server(self.resource_server, s) for s in scopes]

        self.machine_client = self.user_pool.add_client(
            "MachineClient",
            generate_secret=True,
            o_auth=cognito.OAuthSettings(flows=cognito.OAuthFlows(client_credentials=True), scopes=api_scopes),
            access_token_validity=Duration.hours(1),
            prevent_user_existence_errors=True,
            enable_token_revocation=True,
        )
        self.allowed_client_ids = [self.machine_client.user_pool_client_id]

        # People get permissions through group membership (cognito:groups in their tokens).
        for group, permissions in GROUP_PERMISSIONS.items():
            cognito.CfnUserPoolGroup(
                self,
                f"Group{group.capitalize()}",
                user_pool_id=self.user_pool.user_pool_id,
                group_name=group,
                description=f"API permissions: {' '.join(permissions)}",
            )
        self.group_permissions = group_permissions_setting()

        # People sign in through the web front end's public client (PKCE), in the compute stack next to the
        # distribution its callback names (stacks/components/web_front_end.py).
        #
        # RETIRING (issue 14): the ALB's former Cognito login used this confidential client; the ALB no longer
        # does, and the gateway no longer accepts it. It stays for one release with its two exports, because
        # CloudFormation refuses to delete an export the deployed compute stack still imports (Auth deploys
        # first). Remove the client and the two export_value calls in the next release.
        self.browser_client: cognito.UserPoolClient | None = None
        if config.https_enabled:
            self.browser_client = self.user_pool.add_client(
                "BrowserClient",
                generate_secret=True,  # the ALB is a confidential client
                o_auth=cognito.OAuthSettings(
                    flows=cognito.OAuthFlows(authorization_code_grant=True),
                    scopes=[cognito.OAuthScope.OPENID, cognito.OAuthScope.EMAIL, *api_scopes],
                    callback_urls=[f"https://{config.domain_name}/oauth2/idpresponse"],
                    logout_urls=[f"https://{config.domain_name}/"],
                ),
                access_token_validity=Duration.hours(1),
                id_token_validity=Duration.hours(1),
                prevent_user_existence_errors=True,
                enable_token_revocation=True,
            )
            self.export_value(self.browser_client.user_pool_client_id)
            self.export_value(self.user_pool.user_pool_arn)

        self.issuer = f"https://cognito-idp.{Aws.REGION}.amazonaws.com/{self.user_pool.user_pool_id}"
        self.jwks_url = f"{self.issuer}/.well-known/jwks.json"
        self.pool_region = self.region
        self.domain_url = self.domain.base_url()
        self.machine_client_id = self.machine_client.user_pool_client_id
        self.user_pool_id = self.user_pool.user_pool_id
        self._share_with_other_stamps(config)

        # Identifiers for operators (docs/aws-deployment.md, "Verify with the AWS CLI") and for the pipeline's
        # smoke test (stacks/pipeline.py reads them with env_from_cfn_outputs); never secrets.
        self.user_pool_id_output = CfnOutput(self, "UserPoolId", value=self.user_pool.user_pool_id)
        self.machine_client_id_output = CfnOutput(
            self, "MachineClientId", value=self.machine_client.user_pool_client_id
        )
        self.token_endpoint_output = CfnOutput(self, "TokenEndpoint", value=f"{self.domain.base_url()}/oauth2/token")

        self.smoke_test_role: iam.Role | None = None
        self.smoke_test_role_output: CfnOutput | None = None
        if config.smoke_test_trusted_account:
            self._create_smoke_test_role(config.smoke_test_trusted_account)

    def _share_with_other_stamps(self, config: EnvironmentConfig) -> None:
        """The pool's ids as SSM parameters (``/movies/<env>/auth/...``), which the other stamps read
        (stacks/shared_auth.py) and operators' tooling may too. Identifiers only, never a secret."""
        for construct_id, name, value in (
            ("UserPoolIdParameter", USER_POOL_ID, self.user_pool.user_pool_id),
            ("MachineClientIdParameter", MACHINE_CLIENT_ID, self.machine_client_id),
            ("DomainUrlParameter", DOMAIN_URL, self.domain_url),
        ):
            ssm.StringParameter(
                self,
                construct_id,
                parameter_name=auth_parameter(config, name),
                string_value=value,
                description=f"movies {config.name}: the shared user pool's {name} (read by the other stamps)",
            )

    def _create_smoke_test_role(self, pipeline_account: str) -> None:
        """A role the pipeline account assumes to read the machine client's secret, and nothing else.

        The smoke test runs in the pipeline account (often another account than this one) and needs a
        client-credentials token. Rather than copying the client secret anywhere, the test reads it from
        Cognito at run time through this role: one action on this user pool.
        """
        self.smoke_test_role = iam.Role(
            self,
            "SmokeTestRole",
            role_name=smoke_test_role_name(self.stack_name, self.region),
            assumed_by=iam.AccountPrincipal(pipeline_account),
            description="Assumed by the delivery pipeline's smoke test to read the machine client's secret",
            max_session_duration=Duration.hours(1),
        )
        self.smoke_test_role.add_to_policy(
            iam.PolicyStatement(
                actions=["cognito-idp:DescribeUserPoolClient"],
                resources=[self.user_pool.user_pool_arn],
            )
        )
        self.smoke_test_role_output = CfnOutput(self, "SmokeTestRoleArn", value=self.smoke_test_role.role_arn)


def smoke_test_role_name(stack_name: str, region: str) -> str:
    """Physical name of the smoke-test role: the pipeline needs it to scope its ``sts:AssumeRole`` policy.

    IAM names are global per account, so the region is part of it (stamps of one account in two regions).
    """
    return f"{stack_name}-smoke-test-{region}"[:64]
