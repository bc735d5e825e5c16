"""Limits of the public movie API: enforced by inventory, quoted by the gateway's OpenAPI document."""

TITLE_MAX_LENGTH = 200
DESCRIPTION_MAX_LENGTH = 2000
# PostgreSQL bigint: a larger id cannot exist; it is answered 404 without asking the database.
MAX_MOVIE_ID = 2**63 - 1
