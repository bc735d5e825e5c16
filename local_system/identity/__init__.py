"""The local identity provider: an emulated Amazon Cognito (moto in server mode) for ``make up``, tests, Compose.

moto serves the cognito-idp API (``InitiateAuth`` with USER_PASSWORD_AUTH, user pools, groups, clients) and
each pool's JWKS at ``/<pool id>/.well-known/jwks.json``. Its access tokens keep Cognito's issuer form
(``https://cognito-idp.<region>.amazonaws.com/<pool id>``) and carry ``cognito:groups`` but no custom scopes,
so locally permissions come from groups (the contract's group map). The gateway is pointed at it exactly as
it is pointed at Cognito on AWS, except that the JWKS URL is the emulator's.

moto's token signing key ships inside moto and is public: these tokens mean nothing outside this machine.

- :mod:`local_system.identity.cognito`   the cognito-idp API client and the provisioning of a pool
- :mod:`local_system.identity.emulator`  the moto process of one profile (``make up``, the tests)
- ``python -m local_system.identity``    Compose's ``identity-init`` (``__main__.py``)
"""

from local_system.identity.cognito import CognitoApi, CognitoError, PoolInfo
from local_system.identity.emulator import IdentityEmulator

__all__ = ["CognitoApi", "CognitoError", "IdentityEmulator", "PoolInfo"]
