"""The local system: private PostgreSQL + RabbitMQ + the three services on one machine.

``python -m local_system up`` (what ``make up`` runs) and the test fixtures both use :class:`LocalSystem`.
Standard library only (plus the stdlib-only ``contract`` package), so it runs before the virtualenv exists.
"""

from local_system.processes import LocalSystemError
from local_system.profiles import DATABASES, SERVICES, Profile, get_profile
from local_system.system import LocalSystem, PartStatus

__all__ = ["DATABASES", "SERVICES", "LocalSystem", "LocalSystemError", "PartStatus", "Profile", "get_profile"]
