"""Who is calling (a verified :class:`Principal`) and why a request is refused (:class:`AuthError`)."""

from __future__ import annotations

from dataclasses import dataclass

from contract import messaging


class AuthError(Exception):
    """The request is not allowed: ``status`` 401 (who are you?), 403 (not allowed) or 503 (cannot check)."""

    def __init__(self, status: int, message: str, oauth_error: str | None = None, scope: str | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.oauth_error = oauth_error
        self.scope = scope

    def www_authenticate(self) -> str | None:
        """The RFC 6750 challenge for 401 and 403 answers."""
        if self.status not in (401, 403):
            return None
        parts = ['Bearer realm="api"']
        if self.oauth_error:
            # A quoted-string cannot hold a bare '"' (PyJWT messages quote claim names): swap them for "'".
            description = self.message.replace("\\", "/").replace('"', "'")
            parts.append(f'error="{self.oauth_error}"')
            parts.append(f'error_description="{description}"')
        if self.scope:
            parts.append(f'scope="{self.scope}"')
        return ", ".join(parts)


@dataclass(frozen=True)
class Principal:
    """Who is calling and what they may do."""

    subject: str
    client_id: str
    username: str
    permissions: frozenset[str]

    def log_name(self) -> str:
        """A short identity for log lines: user name or client id (never the token)."""
        return self.username or f"client:{self.client_id}"

    def message_headers(self) -> dict[str, str]:
        """Identity for the billing message headers (``x-principal-*``)."""
        return {
            messaging.PRINCIPAL_SUB: self.subject,
            messaging.PRINCIPAL_CLIENT_ID: self.client_id,
            messaging.PRINCIPAL_USERNAME: self.username,
        }
