"""Which permission each gateway route needs, declared on the route itself.

A view is marked with :func:`requires`; the authentication hook in ``gateway.routes`` (which hands the
permission to the authenticator) and the OpenAPI document (``gateway.openapi``) both read that mark, so a
route and its permission cannot drift apart::

    @api.post("/billing")
    @requires(WRITE_BILLING)
    def post_order(): ...

    @api.route("/movies", methods=[...])
    @requires(read=READ_MOVIES, write=WRITE_MOVIES)     # GET/HEAD/OPTIONS need read, the rest write
    def movies(): ...
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

#: Methods that only read: they need a route's ``read`` permission, every other method its ``write`` one.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_ATTRIBUTE = "required_permission"

View = TypeVar("View", bound=Callable[..., object])


@dataclass(frozen=True)
class Requirement:
    """The permission a route needs: ``read`` for safe methods, ``write`` for the others (often the same)."""

    read: str
    write: str

    def permission(self, method: str) -> str:
        """The permission a request with ``method`` needs."""
        return self.read if method.upper() in SAFE_METHODS else self.write


def requires(permission: str | None = None, *, read: str | None = None, write: str | None = None):
    """Mark a view with the permission it needs: one for every method, or ``read=`` and ``write=``."""
    if permission is not None and (read or write):
        raise TypeError("give one permission, or read= and write=, not both")
    requirement = Requirement(read or permission or "", write or permission or "")
    if not requirement.read or not requirement.write:
        raise TypeError("a route needs a permission for reads and for writes")

    def mark(view: View) -> View:
        setattr(view, _ATTRIBUTE, requirement)
        return view

    return mark


def requirement_of(view: Callable[..., object] | None) -> Requirement | None:
    """The requirement ``view`` was marked with, or None."""
    return getattr(view, _ATTRIBUTE, None)
