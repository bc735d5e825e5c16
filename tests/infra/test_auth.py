"""AuthStack: user pool policy, domain, resource server scopes and the two kinds of app client."""

from __future__ import annotations

import pytest

from tests.infra.helpers import dumps

pytestmark = pytest.mark.infra


def _pool(env):
    return env.only("Auth", "AWS::Cognito::UserPool")["Properties"]


def _clients(env):
    return [c["Properties"] for c in env.resources("Auth", "AWS::Cognito::UserPoolClient").values()]


def test_password_policy_requires_eight_chars_of_all_classes(any_env):
    """At least 8 characters with upper and lower case letters, digits and symbols."""
    policy = _pool(any_env)["Policies"]["PasswordPolicy"]
    assert policy["MinimumLength"] >= 8
    for key in ("RequireLowercase", "RequireUppercase", "RequireNumbers", "RequireSymbols"):
        assert policy[key] is True


def test_self_sign_up_is_disabled(any_env):
    """Only administrators create accounts."""
    assert _pool(any_env)["AdminCreateUserConfig"]["AllowAdminCreateUserOnly"] is True


@pytest.mark.parametrize(("env_name", "mfa"), [("dev", "OPTIONAL"), ("prod", "ON")])
def test_mfa_follows_config(synthesized, env_name, mfa):
    """MFA (TOTP) is optional in dev and required in prod."""
    pool = _pool(synthesized[env_name])
    assert pool["MfaConfiguration"] == mfa
    assert pool["EnabledMfas"] == ["SOFTWARE_TOKEN_MFA"]


@pytest.mark.parametrize(("env_name", "tier"), [("dev", "ESSENTIALS"), ("prod", "PLUS")])
def test_threat_protection_follows_config(synthesized, env_name, tier):
    """prod is on the Plus plan with threat protection enforced; dev on Essentials."""
    pool = _pool(synthesized[env_name])
    assert pool["UserPoolTier"] == tier
    if tier == "PLUS":
        assert pool["UserPoolAddOns"]["AdvancedSecurityMode"] == "ENFORCED"


def test_user_pool_has_a_hosted_domain(any_env):
    """A Cognito prefix domain hosts the login pages and the token endpoint."""
    domain = any_env.only("Auth", "AWS::Cognito::UserPoolDomain")["Properties"]
    assert f"movies-{any_env.name}-" in str(domain["Domain"])


def test_resource_server_defines_the_api_scopes(any_env):
    """movies.read, movies.write, billing.write and billing.read on the movies-api resource server."""
    server = any_env.only("Auth", "AWS::Cognito::UserPoolResourceServer")["Properties"]
    assert server["Identifier"] == "movies-api"
    scopes = sorted(s["ScopeName"] for s in server["Scopes"])
    assert scopes == ["billing.read", "billing.write", "movies.read", "movies.write"]


def test_machine_client_uses_client_credentials_with_a_secret(any_env):
    """The machine client has a secret and only the client-credentials flow with the API scopes."""
    machine = [c for c in _clients(any_env) if c.get("AllowedOAuthFlows") == ["client_credentials"]]
    assert len(machine) == 1
    client = machine[0]
    assert client["GenerateSecret"] is True
    scopes = [dumps(scope) for scope in client["AllowedOAuthScopes"]]
    assert len(scopes) == 4
    for name in ("movies.read", "movies.write", "billing.write", "billing.read"):
        assert any(f'"/{name}"' in scope and "ResourceServer" in scope for scope in scopes), name


def test_browser_client_uses_code_flow_with_the_alb_callback(prod):
    """With a domain, a confidential code-flow client calls back to the ALB's /oauth2/idpresponse."""
    browser = [c for c in _clients(prod) if c.get("AllowedOAuthFlows") == ["code"]]
    assert len(browser) == 1
    assert browser[0]["GenerateSecret"] is True
    assert browser[0]["CallbackURLs"] == ["https://movies.example.com/oauth2/idpresponse"]
    assert "openid" in browser[0]["AllowedOAuthScopes"]


def test_no_browser_client_without_a_domain(dev):
    """The HTTP-only trial has no browser login (Cognito needs HTTPS callbacks)."""
    assert len(_clients(dev)) == 1


def test_user_groups_exist_for_people(any_env):
    """admins, editors, viewers and customers groups carry the permissions the gateway maps them to."""
    groups = any_env.resources("Auth", "AWS::Cognito::UserPoolGroup").values()
    assert sorted(g["Properties"]["GroupName"] for g in groups) == ["admins", "customers", "editors", "viewers"]
