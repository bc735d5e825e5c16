"""Typed access to the objects an application factory builds (instead of string keys into ``app.extensions``).

Each service declares one ``Extension[ItsServices]`` next to its factory; the factory ``install``s the object
and routes read it back with ``current()``, typed, so a misspelt key or a wrong type is an error at the
declaration, not a ``KeyError`` in a request.
"""

from __future__ import annotations

from typing import Generic, TypeVar

from flask import Flask, current_app

T = TypeVar("T")


class Extension(Generic[T]):
    """One typed slot in ``app.extensions``."""

    def __init__(self, key: str):
        self._key = key

    def install(self, app: Flask, value: T) -> T:
        """Attach ``value`` to ``app`` (once per app, in its factory) and return it."""
        if self._key in app.extensions:
            raise RuntimeError(f"{self._key} is already installed on {app.name}")
        app.extensions[self._key] = value
        return value

    def of(self, app: Flask) -> T:
        """The value installed on ``app``."""
        return app.extensions[self._key]

    def current(self) -> T:
        """The value installed on the app handling the current request."""
        return self.of(current_app)  # type: ignore[arg-type]
