"""The local system: private PostgreSQL + RabbitMQ + the three services on one machine.

``python -m local_system up`` (what ``make up`` runs) and the test fixtures both use :class:`LocalSystem`.
Standard library only, so it runs before the virtualenv exists.
"""

from local_system.processes import LocalSystemError
from local_system.profiles import DATABASES, SERVICES, Profile, get_profile

__all__ = ["DATABASES", "SERVICES", "LocalSystem", "LocalSystemError", "PartStatus", "Profile", "get_profile"]


def __getattr__(name: str):
    # LocalSystem and PartStatus pull in every part (system.py imports identity.py): loaded on first use, so
    # that ``python -m local_system.identity`` (Compose's identity-init) runs identity.py once, as __main__.
    if name in ("LocalSystem", "PartStatus"):
        from local_system import system

        return getattr(system, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
