"""The gateway's 401/403 challenge stays a well-formed header whatever the error message says."""

import re

from gateway.auth import AuthError

# RFC 7235 auth-param: token "=" quoted-string, where a quoted-string has no bare '"' inside.
_PARAM = re.compile(r'^[a-z_]+="(?:[^"\\]|\\.)*"$')


def test_challenge_with_quotes_in_the_message_is_well_formed():
    """PyJWT quotes claim names in its messages; the challenge must still parse param by param."""
    challenge = AuthError(401, 'invalid token: Token is missing the "exp" claim', "invalid_token").www_authenticate()
    scheme, _, params = challenge.partition(" ")
    assert scheme == "Bearer"
    parts = [p.strip() for p in params.split(", ")]
    assert all(_PARAM.match(p) for p in parts), parts
    assert "error_description=\"invalid token: Token is missing the 'exp' claim\"" in parts


def test_insufficient_scope_challenge_names_the_scope():
    """A 403 tells the client which permission it lacks."""
    challenge = AuthError(403, "needs billing.write", "insufficient_scope", "billing.write").www_authenticate()
    assert 'error="insufficient_scope"' in challenge and 'scope="billing.write"' in challenge
