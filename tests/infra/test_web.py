"""The web edge (issue 14): CloudFront in front of the private web bucket (OAC) and the ALB, its behaviours and
policies, the security headers, the deployment of the front end, the SPA's Cognito client, and the ALB that
answers CloudFront only."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from contract import web
from contract.permissions import PERMISSIONS, SCOPE_PREFIX
from stacks.components.public_edge import GEODE_API_RULE_PRIORITY, PUBLIC_HEALTH_RULE_PRIORITY
from tests.infra.helpers import container_of, dumps, env_vars, render

pytestmark = pytest.mark.infra

CACHING_DISABLED = "4135ea2d-6df8-44a3-9df3-4b5a84be39ad"
ALL_VIEWER_EXCEPT_HOST_HEADER = "b689b0a8-53d0-40ab-baf2-68738e2966ac"
ALL_METHODS = ["GET", "HEAD", "OPTIONS", "PUT", "PATCH", "POST", "DELETE"]
WEB_BUCKET, LOG_BUCKET, SECRET = "WebContent62D64E3D", "WebLogsD9759FC4", "OriginVerifySecret1DED2FB3"


def _resources(env) -> dict:
    return env.templates["Compute"]["Resources"]


def _distribution(env) -> dict:
    return env.only("Compute", "AWS::CloudFront::Distribution")["Properties"]["DistributionConfig"]


def _distribution_id(env) -> str:
    (logical_id,) = env.resources("Compute", "AWS::CloudFront::Distribution")
    return logical_id


def _behaviours(env) -> dict[str, dict]:
    """Cache behaviours by path pattern; the default one under ``"*"``."""
    config = _distribution(env)
    return {"*": config["DefaultCacheBehavior"], **{b["PathPattern"]: b for b in config["CacheBehaviors"]}}


def _origin(env, behaviour: dict) -> dict:
    return next(o for o in _distribution(env)["Origins"] if o["Id"] == behaviour["TargetOriginId"])


def _bucket_policy(env, bucket: str) -> list[dict]:
    (policy,) = env.resources("Compute", "AWS::S3::BucketPolicy", {"Properties": {"Bucket": {"Ref": bucket}}}).values()
    return policy["Properties"]["PolicyDocument"]["Statement"]


# --- the web content bucket ------------------------------------------------------------------------------------
def test_web_bucket_is_private_encrypted_versioned(any_env):
    """Block public access, SSE-S3, bucket-owner-enforced (no ACLs), versioned, named for the publish grant."""
    props = _resources(any_env)[WEB_BUCKET]["Properties"]
    assert all(props["PublicAccessBlockConfiguration"].values())
    rule = props["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
    assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    assert props["OwnershipControls"]["Rules"] == [{"ObjectOwnership": "BucketOwnerEnforced"}]
    assert props["VersioningConfiguration"] == {"Status": "Enabled"}
    assert render(props["BucketName"]) == f"movies-{any_env.name}-web-<AWS::AccountId>-eu-west-1"


@pytest.mark.parametrize(("env_name", "policy"), [("dev", "Delete"), ("prod", "Retain")])
def test_web_bucket_is_retained_in_prod(synthesized, env_name, policy):
    """It holds every published poster: retained on stack deletion where data is kept (prod)."""
    assert _resources(synthesized[env_name])[WEB_BUCKET]["DeletionPolicy"] == policy


def test_web_bucket_is_read_only_by_this_distribution_through_oac(any_env):
    """The only Allow of the bucket policy: cloudfront.amazonaws.com may s3:GetObject, on condition that the
    request comes from this very distribution (AWS:SourceArn)."""
    allows = [s for s in _bucket_policy(any_env, WEB_BUCKET) if s["Effect"] == "Allow"]
    assert len(allows) == 1
    (allow,) = allows
    assert allow["Principal"] == {"Service": "cloudfront.amazonaws.com"}
    assert allow["Action"] == "s3:GetObject"
    source = allow["Condition"]["StringEquals"]["AWS:SourceArn"]
    assert render(source).endswith(f":distribution/<{_distribution_id(any_env)}>")


def test_web_bucket_denies_requests_without_tls(any_env):
    """A Deny on aws:SecureTransport false covers every principal and action."""
    denies = [s for s in _bucket_policy(any_env, WEB_BUCKET) if s["Effect"] == "Deny"]
    assert any(s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}} and s["Action"] == "s3:*" for s in denies)


def test_origin_access_control_signs_every_request_to_the_bucket(any_env):
    """One OAC (S3, SigV4, always sign) and the bucket origins use it, without a legacy OAI."""
    oac = any_env.only("Compute", "AWS::CloudFront::OriginAccessControl")["Properties"]["OriginAccessControlConfig"]
    assert (oac["OriginAccessControlOriginType"], oac["SigningBehavior"], oac["SigningProtocol"]) == (
        "s3",
        "always",
        "sigv4",
    )
    for pattern in ("*", web.POSTERS_PATH_PATTERN):
        origin = _origin(any_env, _behaviours(any_env)[pattern])
        assert WEB_BUCKET in dumps(origin["DomainName"])
        assert "OriginAccessControl" in dumps(origin["OriginAccessControlId"])
        assert origin["S3OriginConfig"] == {"OriginAccessIdentity": ""}


# --- behaviours -----------------------------------------------------------------------------------------------------
def test_distribution_has_exactly_the_contract_behaviours(any_env):
    """Default (the app), /api/*, /health, /docs and /openapi.json (the ALB), /posters/* (the bucket): nothing else."""
    assert set(_behaviours(any_env)) == {
        "*", web.API_PATH_PATTERN, web.HEALTH_PATH, *web.API_DOCS_PATHS, web.POSTERS_PATH_PATTERN
    }


def test_default_behaviour_serves_the_app_from_the_bucket_over_https(any_env):
    """index.html is the root object, HTTP redirects to HTTPS, app routes are rewritten by the viewer function."""
    config = _distribution(any_env)
    default = config["DefaultCacheBehavior"]
    assert config["DefaultRootObject"] == web.INDEX_DOCUMENT
    assert default["ViewerProtocolPolicy"] == "redirect-to-https"
    (association,) = default["FunctionAssociations"]
    assert association["EventType"] == "viewer-request"
    assert "WebSpaRouting" in dumps(association["FunctionARN"])


def test_static_cache_policy_honours_the_objects_cache_control(any_env):
    """Min TTL 0: an object's ``no-cache`` (index.html, config.json) really revalidates at the edge."""
    policy_id = _behaviours(any_env)["*"]["CachePolicyId"]["Ref"]
    config = _resources(any_env)[policy_id]["Properties"]["CachePolicyConfig"]
    assert config["MinTTL"] == 0


@pytest.mark.parametrize("pattern", [web.API_PATH_PATTERN, web.HEALTH_PATH, *web.API_DOCS_PATHS])
def test_api_paths_go_to_the_alb_uncached_with_every_viewer_header_but_host(any_env, pattern):
    """Managed CachingDisabled and AllViewerExceptHostHeader (the Authorization header reaches the gateway), all
    methods, HTTPS only (a redirect would drop a POST body)."""
    behaviour = _behaviours(any_env)[pattern]
    assert behaviour["CachePolicyId"] == CACHING_DISABLED
    assert behaviour["OriginRequestPolicyId"] == ALL_VIEWER_EXCEPT_HOST_HEADER
    assert behaviour["AllowedMethods"] == ALL_METHODS
    assert behaviour["ViewerProtocolPolicy"] == "https-only"
    assert "CustomOriginConfig" in _origin(any_env, behaviour)


def test_alb_origin_sends_the_secret_header_as_a_deploy_time_reference(any_env):
    """CloudFront adds X-Origin-Verify with a Secrets Manager dynamic reference: the value is in no template."""
    origin = _origin(any_env, _behaviours(any_env)[web.API_PATH_PATTERN])
    (header,) = origin["OriginCustomHeaders"]
    assert header["HeaderName"] == web.ORIGIN_VERIFY_HEADER
    assert render(header["HeaderValue"]) == f"{{{{resolve:secretsmanager:<{SECRET}>:SecretString:::}}}}"


def test_origin_secret_is_generated_by_secrets_manager(any_env):
    """The secret has a generator and no value; alphanumeric, as ALB header conditions need."""
    props = _resources(any_env)[SECRET]["Properties"]
    assert "SecretString" not in props
    assert props["GenerateSecretString"]["ExcludePunctuation"] is True


@pytest.mark.parametrize(
    ("env_name", "protocol", "domain"), [("dev", "http-only", "Alb16C2F182"), ("prod", "https-only", "movies.example")]
)
def test_alb_origin_protocol_follows_the_variant(synthesized, env_name, protocol, domain):
    """Trial: the ALB's DNS name over HTTP; with a domain: that name (the certificate's) over TLS 1.2."""
    env = synthesized[env_name]
    origin = _origin(env, _behaviours(env)[web.API_PATH_PATTERN])
    assert origin["CustomOriginConfig"]["OriginProtocolPolicy"] == protocol
    assert origin["CustomOriginConfig"]["OriginSSLProtocols"] == ["TLSv1.2"]
    assert domain in dumps(origin["DomainName"])


def test_posters_are_cached_for_a_year_and_marked_immutable(any_env):
    """/posters/*: the bucket, TTLs of a year, and Cache-Control immutable unless the object sets its own."""
    behaviour = _behaviours(any_env)[web.POSTERS_PATH_PATTERN]
    cache = _resources(any_env)[behaviour["CachePolicyId"]["Ref"]]["Properties"]["CachePolicyConfig"]
    assert cache["MinTTL"] == cache["DefaultTTL"] == cache["MaxTTL"] == 365 * 24 * 3600
    headers = _resources(any_env)[behaviour["ResponseHeadersPolicyId"]["Ref"]]["Properties"]
    (custom,) = headers["ResponseHeadersPolicyConfig"]["CustomHeadersConfig"]["Items"]
    assert custom == {"Header": "Cache-Control", "Value": web.IMMUTABLE, "Override": False}


# --- security headers -------------------------------------------------------------------------------------------
def _security_config(env, behaviour: dict) -> dict:
    policy = _resources(env)[behaviour["ResponseHeadersPolicyId"]["Ref"]]["Properties"]
    return policy["ResponseHeadersPolicyConfig"]["SecurityHeadersConfig"]


def test_every_behaviour_sends_the_contract_security_headers(any_env):
    """HSTS, nosniff, frame options and referrer policy equal contract.web.SECURITY_HEADERS, on every path."""
    expected = web.SECURITY_HEADERS
    for pattern, behaviour in _behaviours(any_env).items():
        config = _security_config(any_env, behaviour)
        hsts = config["StrictTransportSecurity"]
        subdomains = "; includeSubDomains" if hsts["IncludeSubdomains"] else ""
        rendered = f"max-age={hsts['AccessControlMaxAgeSec']}{subdomains}"
        assert rendered == expected["Strict-Transport-Security"], pattern
        assert config["ContentTypeOptions"] == {"Override": True}
        assert config["FrameOptions"]["FrameOption"] == expected["X-Frame-Options"]
        assert config["ReferrerPolicy"]["ReferrerPolicy"] == expected["Referrer-Policy"]


def test_csp_is_the_contract_policy_with_the_token_endpoint_and_uploads_origins(any_env):
    """connect-src allows only the app itself, the Cognito domain (token endpoint) and the uploads bucket's
    endpoints; no inline script anywhere."""
    config = _security_config(any_env, _behaviours(any_env)["*"])
    csp = render(config["ContentSecurityPolicy"]["ContentSecurityPolicy"])
    bucket = f"movies-{any_env.name}-poster-uploads-<AWS::AccountId>-eu-west-1"
    expected = web.content_security_policy(
        [
            "https://<import>.auth.eu-west-1.amazoncognito.com",
            f"https://{bucket}.s3.eu-west-1.amazonaws.com",
            f"https://{bucket}.s3.amazonaws.com",
        ]
    )
    assert csp == expected
    assert "unsafe-inline" not in csp


# --- logs -----------------------------------------------------------------------------------------------------------
def test_distribution_logs_to_its_own_log_bucket(any_env):
    """Standard logs go to a private, TLS-only bucket with ObjectWriter ownership (log delivery writes ACLs),
    expiring after access_log_expiry_days; the web bucket's server access logs go there too."""
    assert LOG_BUCKET in dumps(_distribution(any_env)["Logging"]["Bucket"])
    props = _resources(any_env)[LOG_BUCKET]["Properties"]
    assert props["OwnershipControls"]["Rules"] == [{"ObjectOwnership": "ObjectWriter"}]
    assert all(props["PublicAccessBlockConfiguration"].values())
    expiry = any_env.stage.config.access_log_expiry_days
    assert props["LifecycleConfiguration"]["Rules"][0]["ExpirationInDays"] == expiry
    assert _resources(any_env)[WEB_BUCKET]["Properties"]["LoggingConfiguration"]["DestinationBucketName"] == {
        "Ref": LOG_BUCKET
    }
    assert _resources(any_env)[LOG_BUCKET]["DeletionPolicy"] == "Retain"


# --- the SPA routing function (run with Node, which jsii already needs) ----------------------------------------
@pytest.mark.parametrize(
    ("uri", "rewritten"),
    [
        ("/", "/index.html"),
        ("/movies/42", "/index.html"),
        ("/orders", "/index.html"),
        ("/config.json", "/config.json"),
        ("/assets/app.3f2a.js", "/assets/app.3f2a.js"),
        ("/index.html", "/index.html"),
    ],
)
def test_spa_routing_function_sends_app_routes_to_index(any_env, uri, rewritten):
    """The function's own code: a path without a file extension loads index.html, files pass unchanged."""
    node = shutil.which("node")
    assert node, "node is needed by jsii, hence present"
    (function,) = any_env.resources("Compute", "AWS::CloudFront::Function").values()
    code = function["Properties"]["FunctionCode"]
    script = f"{code}\nconsole.log(handler({{request: {{uri: {json.dumps(uri)}}}}}).uri);"
    result = subprocess.run([node, "-e", script], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == rewritten


# --- deployment of the files ----------------------------------------------------------------------------------
def _deployments(env) -> dict[str, dict]:
    return {k: v["Properties"] for k, v in _resources(env).items() if v["Type"] == "Custom::CDKBucketDeployment"}


def test_pages_revalidate_and_the_deployment_invalidates_the_distribution(any_env):
    """index.html and config.json (everything outside assets/) are uploaded with Cache-Control no-cache, never
    prune (the bucket holds the posters), and the deployment invalidates the distribution."""
    (pages,) = [p for k, p in _deployments(any_env).items() if k.startswith("WebDeployPages")]
    assert pages["SystemMetadata"] == {"cache-control": web.REVALIDATE}
    assert pages["Prune"] is False
    assert pages["DistributionId"] == {"Ref": _distribution_id(any_env)}
    assert pages["DistributionPaths"] == ["/*"]


def test_config_json_carries_the_spa_client_and_cognito_domain(any_env):
    """config.json's deploy-time values are the SPA client's id and the Cognito domain (source markers)."""
    (pages,) = [p for k, p in _deployments(any_env).items() if k.startswith("WebDeployPages")]
    markers = dumps(pages["SourceMarkers"])
    assert "WebSpaClient" in markers
    assert "UserPoolDomain" in markers


def _build_with_web_dir(monkeypatch, web_dir):
    from stacks.application import build_app
    from stacks.components import web_front_end
    from tests.infra.helpers import cdk_context, environment_without

    monkeypatch.setattr(web_front_end, "WEB_DIR", web_dir)
    with environment_without("CDK_DEFAULT_ACCOUNT", "CDK_DEFAULT_REGION"):
        return build_app(context={**cdk_context(), "env": "dev"}, nag=False, validation=False)


def test_assets_are_deployed_immutable_under_their_version_before_the_pages(monkeypatch, tmp_path):
    """With an assets/ folder: a second deployment uploads it under assets/<content version>/ with the immutable
    Cache-Control, the uploaded index.html names that folder, and the pages deployment waits for the assets (a
    new index.html names new asset URLs)."""
    from stacks.components.web_deployment import assets_version

    (tmp_path / "assets").mkdir()
    (tmp_path / "index.html").write_text('<!doctype html><script type="module" src="/assets/app.js"></script>')
    (tmp_path / "assets" / "app.js").write_text('import "./ui.js";')
    (tmp_path / "assets" / "ui.js").write_text("export {};")
    version = assets_version(tmp_path / "assets")
    app, stage = _build_with_web_dir(monkeypatch, tmp_path)
    assembly = app.synth()
    template = assembly.get_stack_artifact(stage.compute.artifact_id).template
    deployments = {k: v for k, v in template["Resources"].items() if v["Type"] == "Custom::CDKBucketDeployment"}
    (assets_id,) = [k for k in deployments if k.startswith("WebDeployAssets")]
    (pages_id,) = [k for k in deployments if k.startswith("WebDeployPages")]
    assets = deployments[assets_id]["Properties"]
    assert assets["SystemMetadata"] == {"cache-control": web.IMMUTABLE}
    assert assets["DestinationBucketKeyPrefix"] == f"{web.ASSETS_PREFIX}{version}/"
    assert assets["Prune"] is False
    assert assets_id in deployments[pages_id]["DependsOn"]
    uploaded = [p.read_text() for p in Path(assembly.directory).glob("asset.*/index.html")]
    assert uploaded == [f'<!doctype html><script type="module" src="/assets/{version}/app.js"></script>']


def test_a_changed_asset_gets_a_new_version(tmp_path):
    """The version is the assets' content: one changed byte, another folder (so a year of caching is safe)."""
    from stacks.components.web_deployment import assets_version

    (tmp_path / "app.js").write_text("export const a = 1;")
    before = assets_version(tmp_path)
    (tmp_path / "app.js").write_text("export const a = 2;")
    assert assets_version(tmp_path) != before


def test_missing_web_folder_fails_synthesis_clearly(monkeypatch, tmp_path):
    """No web/index.html: synthesis stops with a message naming the missing file, not a CDK asset error."""
    with pytest.raises(FileNotFoundError, match=r"index\.html"):
        _build_with_web_dir(monkeypatch, tmp_path)


# --- the SPA's Cognito client and the gateway ------------------------------------------------------------------
def _spa_client(env) -> dict:
    (client,) = env.resources(
        "Compute", "AWS::Cognito::UserPoolClient", {"Properties": {"ClientName": f"movies-{env.name}-web"}}
    ).values()
    return client["Properties"]


def test_spa_client_is_public_and_uses_the_code_flow_only(any_env):
    """No secret (a browser cannot keep one), authorization code only (PKCE: Cognito requires the verifier
    when the authorization request carried a challenge), Cognito users only."""
    client = _spa_client(any_env)
    assert client["GenerateSecret"] is False
    assert client["AllowedOAuthFlows"] == ["code"]
    assert client["AllowedOAuthFlowsUserPoolClient"] is True
    assert client["SupportedIdentityProviders"] == ["COGNITO"]


def test_spa_client_calls_back_to_the_distribution(any_env):
    """Callback and logout URL: the distribution's HTTPS origin with a slash (where the app loads)."""
    client = _spa_client(any_env)
    expected = f"https://<{_distribution_id(any_env)}.DomainName>/"
    assert [render(url) for url in client["CallbackURLs"]] == [expected]
    assert [render(url) for url in client["LogoutURLs"]] == [expected]


def test_spa_client_asks_for_identity_and_every_api_scope(any_env):
    """openid and email, plus each API permission as a scope (groups decide what a person gets)."""
    scopes = _spa_client(any_env)["AllowedOAuthScopes"]
    assert scopes == ["openid", "email", *(f"{SCOPE_PREFIX}{name}" for name in PERMISSIONS)]


def test_spa_client_tokens_and_hardening_match_the_other_clients(any_env):
    """One-hour access and id tokens, no user-existence leaks, revocable tokens."""
    client = _spa_client(any_env)
    assert (client["AccessTokenValidity"], client["IdTokenValidity"]) == (60, 60)
    assert client["TokenValidityUnits"] == {"AccessToken": "minutes", "IdToken": "minutes"}
    assert client["PreventUserExistenceErrors"] == "ENABLED"
    assert client["EnableTokenRevocation"] is True


def test_gateway_accepts_the_spa_client_and_the_machine_client(any_env):
    """AUTH_ALLOWED_CLIENT_IDS: the machine client (auth stack) and the SPA client, nothing else."""
    allowed = env_vars(container_of(any_env, "gateway"))["AUTH_ALLOWED_CLIENT_IDS"]
    (spa_id,) = any_env.resources(
        "Compute", "AWS::Cognito::UserPoolClient", {"Properties": {"ClientName": f"movies-{any_env.name}-web"}}
    )
    assert render(allowed) == f"<import>,<{spa_id}>"
    assert "MachineClient" in dumps(allowed)


# --- the ALB answers CloudFront only ----------------------------------------------------------------------------
def test_every_forwarding_rule_requires_the_origin_header(any_env):
    """Each listener rule that forwards to the gateway requires X-Origin-Verify equal to the secret, except, with
    the geode edge (prod), its two rules: exactly /health (Route 53's checkers) and /api/* for the geode's name
    behind the ALB's JWT validation (tests/infra/test_geode.py)."""
    rules = list(any_env.resources("Compute", "AWS::ElasticLoadBalancingV2::ListenerRule").values())
    assert rules
    geode_priorities = {PUBLIC_HEALTH_RULE_PRIORITY, GEODE_API_RULE_PRIORITY}
    geode_rules = [rule for rule in rules if rule["Properties"]["Priority"] in geode_priorities]
    assert len(geode_rules) == (2 if any_env.stage.config.geode else 0)
    for rule in geode_rules:
        actions = [action["Type"] for action in rule["Properties"]["Actions"]]
        paths = dumps(rule["Properties"]["Conditions"])
        assert actions == ["jwt-validation", "forward"] or (actions == ["forward"] and '["/health"]' in paths)
    for rule in (rule for rule in rules if rule not in geode_rules):
        (header,) = [c for c in rule["Properties"]["Conditions"] if c["Field"] == "http-header"]
        config = header["HttpHeaderConfig"]
        assert config["HttpHeaderName"] == web.ORIGIN_VERIFY_HEADER
        assert [render(v) for v in config["Values"]] == [f"{{{{resolve:secretsmanager:<{SECRET}>:SecretString:::}}}}"]


def test_no_listener_forwards_by_default(any_env):
    """No listener's default action forwards: without the header a request never reaches the gateway."""
    for listener in any_env.resources("Compute", "AWS::ElasticLoadBalancingV2::Listener").values():
        assert "forward" not in [a["Type"] for a in listener["Properties"]["DefaultActions"]]


def test_api_url_output_is_the_distribution(any_env):
    """The public URL (and the pipeline's smoke test target) is CloudFront's, since the ALB refuses the rest."""
    output = any_env.templates["Compute"]["Outputs"]["ApiUrl"]["Value"]
    assert render(output) == f"https://<{_distribution_id(any_env)}.DomainName>"
