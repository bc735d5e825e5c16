"""WebFrontEnd: the web origin of one environment, a CloudFront distribution in front of S3 and the ALB.

* ``/`` and every other path: the single-page app's static files from a private S3 bucket, read by CloudFront
  with origin access control (OAC); a CloudFront Function sends app routes (no file extension) to
  ``index.html``. ``index.html`` and ``config.json`` revalidate on every use; ``assets/`` is uploaded under a
  folder named after its content (``assets/<version>/``, which the uploaded index.html names), so it is immutable.
* ``/api/*`` and ``/health``: the ALB (the gateway), never cached, every viewer header but Host forwarded,
  with the secret origin header the ALB requires (``PublicEdge``): the app and the API share one origin.
* ``/posters/*``: published posters from the same bucket (the ``publish`` filter writes them), cached long.

Every response carries the security headers of ``contract.web`` (CSP, HSTS, frame options, nosniff, referrer
policy). The SPA's Cognito client (public, authorization code with PKCE) lives here because its callback is
the distribution's URL; the gateway accepts its client id. Rationale and costs: docs/aws-deployment.md,
"The web edge".
"""

from __future__ import annotations

import re
from pathlib import Path

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_cloudfront as cloudfront
from aws_cdk import aws_cloudfront_origins as origins
from aws_cdk import aws_cognito as cognito
from aws_cdk import aws_s3 as s3
from constructs import Construct

from contract import web
from contract.permissions import PERMISSIONS, SCOPE_PREFIX
from stacks.auth import AuthStack
from stacks.components.public_edge import PublicEdge
from stacks.components.web_deployment import WebDeployment
from stacks.config import EnvironmentConfig

REPO_ROOT = Path(__file__).resolve().parents[2]
WEB_DIR = REPO_ROOT / "web"
"""The front end's static files (index.html, assets/): deployed as they are, no build step."""
#: Viewer-request function of the default behaviour: a path without a file extension is an app route.
SPA_ROUTING = """function handler(event) {
  var request = event.request;
  var last = request.uri.split('/').pop();
  if (last.indexOf('.') === -1) {
    request.uri = '/index.html';
  }
  return request;
}
"""
#: Scopes the app asks for: who the person is, and every API permission (groups decide what they get).
SPA_SCOPES = ("openid", "email", *(f"{SCOPE_PREFIX}{name}" for name in PERMISSIONS))
REFERRER_POLICIES = {
    "no-referrer": cloudfront.HeadersReferrerPolicy.NO_REFERRER,
    "same-origin": cloudfront.HeadersReferrerPolicy.SAME_ORIGIN,
    "strict-origin-when-cross-origin": cloudfront.HeadersReferrerPolicy.STRICT_ORIGIN_WHEN_CROSS_ORIGIN,
}


def _spa_client_settings(config: EnvironmentConfig, url: str) -> dict:
    """The SPA client's settings as Cognito's CreateUserPoolClient takes them: the same client the first stamp
    declares with ``cognito.UserPoolClient`` (an additional stamp creates it in the first stamp's region)."""
    return {
        "ClientName": f"{config.prefix}-web",
        "GenerateSecret": False,
        "AllowedOAuthFlowsUserPoolClient": True,
        "AllowedOAuthFlows": ["code"],
        "AllowedOAuthScopes": list(SPA_SCOPES),
        "CallbackURLs": [f"{url}/"],
        "LogoutURLs": [f"{url}/"],
        "SupportedIdentityProviders": ["COGNITO"],
        "AccessTokenValidity": 60,
        "IdTokenValidity": 60,
        "TokenValidityUnits": {"AccessToken": "minutes", "IdToken": "minutes"},
        "PreventUserExistenceErrors": "ENABLED",
        "EnableTokenRevocation": True,
    }


def uploads_origins(bucket_name: str, region: str) -> list[str]:
    """Origins a presigned POST to the uploads bucket may use: boto3 signs for the regional virtual-hosted
    endpoint, older SDK defaults use the global one; both belong in the CSP's connect-src."""
    return [f"https://{bucket_name}.s3.{region}.amazonaws.com", f"https://{bucket_name}.s3.amazonaws.com"]


class WebFrontEnd(Construct):
    """Web content bucket, distribution (with its logs), security headers, deployment and the SPA client."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: EnvironmentConfig,
        edge: PublicEdge,
        auth: AuthStack,
        web_dir: Path | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        web_dir = web_dir or WEB_DIR
        if not (web_dir / web.INDEX_DOCUMENT).is_file():
            raise FileNotFoundError(
                f"the web front end is missing: no {web_dir / web.INDEX_DOCUMENT} (the web/ folder of the repository)"
            )
        stack = Stack.of(self)
        retain = RemovalPolicy.RETAIN if config.retain_data_on_delete else RemovalPolicy.DESTROY
        # CloudFront standard logs are delivered with an ACL grant, hence ObjectWriter ownership on this bucket.
        self.log_bucket = s3.Bucket(
            self,
            "Logs",
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            object_ownership=s3.ObjectOwnership.OBJECT_WRITER,
            lifecycle_rules=[s3.LifecycleRule(expiration=Duration.days(config.access_log_expiry_days))],
            removal_policy=RemovalPolicy.RETAIN,  # logs are evidence, as the ALB's
        )
        self.bucket = s3.Bucket(
            self,
            "Content",
            bucket_name=config.web_bucket_name(stack.account, stack.region),
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            versioned=True,
            # Old versions of replaced files (and of re-published posters) are not kept for ever.
            lifecycle_rules=[s3.LifecycleRule(noncurrent_version_expiration=Duration.days(30))],
            server_access_logs_bucket=self.log_bucket,
            server_access_logs_prefix="s3-web/",
            removal_policy=retain,  # it also holds the published posters
        )

        uploads = config.poster_uploads_bucket_name(stack.account, stack.region)
        connect = [auth.domain_url, *uploads_origins(uploads, stack.region)]
        self.content_security_policy = web.content_security_policy(connect)
        headers = self._security_headers(self.content_security_policy)
        bucket_origin = origins.S3BucketOrigin.with_origin_access_control(self.bucket)
        alb_origin = self._alb_origin(config, edge)

        self.spa_routing = cloudfront.Function(
            self,
            "SpaRouting",
            code=cloudfront.FunctionCode.from_inline(SPA_ROUTING),
            runtime=cloudfront.FunctionRuntime.JS_2_0,
            comment="Single-page app routes (paths without a file extension) load index.html",
        )
        # Honours the objects' Cache-Control exactly (min TTL 0: "no-cache" really revalidates).
        self.static_cache = cloudfront.CachePolicy(
            self,
            "StaticCache",
            comment="Static files: the objects' own Cache-Control",
            min_ttl=Duration.seconds(0),
            default_ttl=Duration.days(1),
            max_ttl=Duration.days(365),
            enable_accept_encoding_gzip=True,
            enable_accept_encoding_brotli=True,
        )
        # A published poster never changes (its key names the upload): cached for a year at the edge and in the
        # browser, whatever metadata the object carries.
        self.posters_cache = cloudfront.CachePolicy(
            self,
            "PostersCache",
            comment="Published posters: immutable",
            min_ttl=Duration.days(365),
            default_ttl=Duration.days(365),
            max_ttl=Duration.days(365),
        )
        self.posters_headers = self._security_headers(self.content_security_policy, cache_control=web.IMMUTABLE)
        api = cloudfront.BehaviorOptions(
            origin=alb_origin,
            viewer_protocol_policy=cloudfront.ViewerProtocolPolicy.HTTPS_ONLY,
            allowed_methods=cloudfront.AllowedMethods.ALLOW_ALL,
            cache_policy=cloudfront.CachePolicy.CACHING_DISABLED,
            origin_request_policy=cloudfront.OriginRequestPolicy.ALL_VIEWER_EXCEPT_HOST_HEADER,
            response_headers_policy=headers,
        )
        self.distribution = cloudfront.Distribution(
            self,
            "Distribution",
            comment=f"movies {config.name}: web front end, /api and posters",
            default_root_object=web.INDEX_DOCUMENT,
            http_version=cloudfront.HttpVersion.HTTP2_AND_3,
            price_class=cloudfront.PriceClass.PRICE_CLASS_100,
            enable_logging=True,
            log_bucket=self.log_bucket,
            log_file_prefix="cloudfront/",
            default_behavior=cloudfront.BehaviorOptions(
                origin=bucket_origin,
                viewer_protocol_policy=cloudfront.ViewerProtocolPolicy.REDIRECT_TO_HTTPS,
                cache_policy=self.static_cache,
                response_headers_policy=headers,
                function_associations=[
                    cloudfront.FunctionAssociation(
                        function=self.spa_routing, event_type=cloudfront.FunctionEventType.VIEWER_REQUEST
                    )
                ],
            ),
            additional_behaviors={
                web.API_PATH_PATTERN: api,
                web.HEALTH_PATH: api,
                **{path: api for path in web.API_DOCS_PATHS},
                web.POSTERS_PATH_PATTERN: cloudfront.BehaviorOptions(
                    origin=bucket_origin,
                    viewer_protocol_policy=cloudfront.ViewerProtocolPolicy.REDIRECT_TO_HTTPS,
                    cache_policy=self.posters_cache,
                    response_headers_policy=self.posters_headers,
                ),
            },
        )
        self.url = f"https://{self.distribution.distribution_domain_name}"

        if auth.remote:
            # An additional stamp: its client is created in the first stamp's pool, in that region.
            self.spa_client_id = auth.create_client(self, "SpaClient", _spa_client_settings(config, self.url))
        else:
            self.spa_client = cognito.UserPoolClient(
                self,
                "SpaClient",
                user_pool=auth.user_pool,
                user_pool_client_name=f"{config.prefix}-web",
                # A public client: the browser cannot keep a secret. Cognito requires PKCE (S256) from a public
                # client's code exchange when the authorization request carries a code_challenge, which the app
                # sends.
                generate_secret=False,
                o_auth=cognito.OAuthSettings(
                    flows=cognito.OAuthFlows(authorization_code_grant=True),
                    scopes=[cognito.OAuthScope.custom(scope) for scope in SPA_SCOPES],
                    callback_urls=[f"{self.url}/"],
                    logout_urls=[f"{self.url}/"],
                ),
                supported_identity_providers=[cognito.UserPoolClientIdentityProvider.COGNITO],
                access_token_validity=Duration.hours(1),
                id_token_validity=Duration.hours(1),
                prevent_user_existence_errors=True,
                enable_token_revocation=True,
            )
            self.spa_client_id = self.spa_client.user_pool_client_id
        # The custom scopes exist once the resource server does (it is in the auth stack, deployed before).
        base = auth.domain_url
        settings = {
            "auth": {
                "authorize_url": f"{base}/oauth2/authorize",
                "token_url": f"{base}/oauth2/token",
                "logout_url": f"{base}/logout",
                "client_id": self.spa_client_id,
                "scopes": list(SPA_SCOPES),
            },
            "api": "/api",
        }
        self.deployment = WebDeployment(self, web_dir, self.bucket, self.distribution, settings)

    @staticmethod
    def _alb_origin(config: EnvironmentConfig, edge: PublicEdge) -> origins.HttpOrigin:
        """The ALB as CloudFront's origin, with the secret header it requires (a CloudFormation dynamic reference:
        the value is resolved at deploy time and never written into the template)."""
        secret_header = {web.ORIGIN_VERIFY_HEADER: edge.origin_verify_secret.secret_value.unsafe_unwrap()}
        if config.https_enabled:
            # The ALB's certificate names the domain: CloudFront connects to it by that name, over TLS.
            return origins.HttpOrigin(
                config.domain_name,
                protocol_policy=cloudfront.OriginProtocolPolicy.HTTPS_ONLY,
                origin_ssl_protocols=[cloudfront.OriginSslPolicy.TLS_V1_2],
                custom_headers=secret_header,
            )
        # The HTTP-only trial: CloudFront reaches the ALB over HTTP (docs/aws-deployment.md: the trial variant).
        return origins.HttpOrigin(
            edge.alb.load_balancer_dns_name,
            protocol_policy=cloudfront.OriginProtocolPolicy.HTTP_ONLY,
            custom_headers=secret_header,
        )

    def _security_headers(self, csp: str, cache_control: str | None = None) -> cloudfront.ResponseHeadersPolicy:
        """The headers of ``contract.web.SECURITY_HEADERS`` plus the CSP (and a default Cache-Control)."""
        hsts = web.SECURITY_HEADERS["Strict-Transport-Security"]
        max_age = int(re.search(r"max-age=(\d+)", hsts).group(1))
        name = "PostersHeaders" if cache_control else "SecurityHeaders"
        custom = None
        if cache_control:
            custom = cloudfront.ResponseCustomHeadersBehavior(
                custom_headers=[
                    # Only when the object has none of its own.
                    cloudfront.ResponseCustomHeader(header="Cache-Control", value=cache_control, override=False)
                ]
            )
        return cloudfront.ResponseHeadersPolicy(
            self,
            name,
            comment="contract.web security headers" + (" and immutable caching" if cache_control else ""),
            security_headers_behavior=cloudfront.ResponseSecurityHeadersBehavior(
                content_security_policy=cloudfront.ResponseHeadersContentSecurityPolicy(
                    content_security_policy=csp, override=True
                ),
                strict_transport_security=cloudfront.ResponseHeadersStrictTransportSecurity(
                    access_control_max_age=Duration.seconds(max_age),
                    include_subdomains="includeSubDomains" in hsts,
                    override=True,
                ),
                content_type_options=cloudfront.ResponseHeadersContentTypeOptions(override=True),
                frame_options=cloudfront.ResponseHeadersFrameOptions(
                    frame_option=cloudfront.HeadersFrameOption(web.SECURITY_HEADERS["X-Frame-Options"]), override=True
                ),
                referrer_policy=cloudfront.ResponseHeadersReferrerPolicy(
                    referrer_policy=REFERRER_POLICIES[web.SECURITY_HEADERS["Referrer-Policy"]], override=True
                ),
            ),
            custom_headers_behavior=custom,
        )
