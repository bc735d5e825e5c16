"""The emulated managed login's PKCE check, without a server."""

from __future__ import annotations

from local_system.identity.managed_login import s256


def test_s256_matches_rfc_7636_example():
    """The S256 challenge of RFC 7636's example verifier is the RFC's example challenge."""
    assert s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk") == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
