"""Errors shared across services that need no database or broker driver to import."""


class DependencyUnavailable(RuntimeError):
    """A backing service (database, broker) cannot be used right now: answered 503 with Retry-After.

    Subclasses name the dependency; that name, never the internal detail, goes into the client's message.
    """

    dependency = "a backing service"
