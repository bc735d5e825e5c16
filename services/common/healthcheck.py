"""Container health check without curl: ``python -m common.healthcheck [URL]``.

Exits 0 when the URL answers 2xx within the timeout, 1 otherwise. Without a URL it probes
``http://127.0.0.1:$PORT/health`` (PORT as the service reads it), so the one Dockerfile's HEALTHCHECK names
no port. Used by the Dockerfile HEALTHCHECK, Compose and the ECS container health check, so slim images need
no extra tools.
"""

from __future__ import annotations

import sys
import urllib.error
import urllib.request

from common.config import env_int
from contract.environment import PORT


def default_url() -> str:
    """``/health`` of this container, on the port the service listens on."""
    return f"http://127.0.0.1:{env_int(PORT, minimum=1)}/health"


def check(url: str, timeout: float = 3.0) -> bool:
    """True when ``url`` answers with a 2xx status within ``timeout`` seconds."""
    if not url.startswith(("http://127.0.0.1", "http://localhost")):
        # A health check only ever probes the container itself; refuse anything else.
        return False
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - scheme checked above
            return 200 <= response.status < 300
    except (urllib.error.URLError, OSError, ValueError):
        return False


def main(argv: list[str]) -> int:
    """Entry point: the URL to probe as the one optional argument (default: :func:`default_url`)."""
    if len(argv) > 2:
        print("usage: python -m common.healthcheck [http://127.0.0.1:PORT/health]", file=sys.stderr)
        return 2
    return 0 if check(argv[1] if len(argv) == 2 else default_url()) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
