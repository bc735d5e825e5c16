"""Find (and, as root, install from apt) the PostgreSQL, RabbitMQ, Redis and Prometheus binaries, and the
Chromium the browser tests drive."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
from pathlib import Path

from local_system.processes import LocalSystemError

APT_PACKAGES = ("postgresql", "rabbitmq-server", "redis-server", "prometheus", "prometheus-postgres-exporter")
RABBITMQ_SCRIPTS = Path("/usr/lib/rabbitmq/bin")
#: Debian's Chromium: the browser tests (tests/e2e/test_web_journey.py) drive it with Playwright; Playwright's
#: own browser downloads are never used.
CHROMIUM = Path("/usr/bin/chromium")

_apt_updated = False


def postgres_bin_dir() -> Path | None:
    """Directory holding initdb/pg_ctl/postgres of the newest installed PostgreSQL, or None."""
    candidates = []
    for initdb in glob.glob("/usr/lib/postgresql/*/bin/initdb"):
        version = Path(initdb).parent.parent.name
        if os.access(initdb, os.X_OK) and version.isdigit():
            candidates.append((int(version), Path(initdb).parent))
    if candidates:
        return max(candidates)[1]
    # Non-Debian layouts put the server binaries on PATH.
    found = shutil.which("initdb")
    return Path(found).parent if found and shutil.which("pg_ctl") else None


def rabbitmq_scripts_dir() -> Path | None:
    """Directory of the real rabbitmq-server/rabbitmqctl scripts, or None.

    Debian's /usr/sbin/rabbitmq-server is a wrapper that switches to the ``rabbitmq`` user and drops our
    environment, so the private node is started with the scripts behind it.
    """
    if (RABBITMQ_SCRIPTS / "rabbitmq-server").exists():
        return RABBITMQ_SCRIPTS
    found = shutil.which("rabbitmq-server")
    return Path(found).resolve().parent if found else None


def missing_packages() -> list[str]:
    """The apt packages whose binaries are not installed."""
    missing = []
    if postgres_bin_dir() is None or shutil.which("psql") is None:
        missing.append("postgresql")
    if rabbitmq_scripts_dir() is None:
        missing.append("rabbitmq-server")
    # One binary per package (Debian's prometheus also ships promtool, which the tests use).
    for binary, package in (
        ("redis-server", "redis-server"),
        ("prometheus", "prometheus"),
        ("prometheus-postgres-exporter", "prometheus-postgres-exporter"),
    ):
        if shutil.which(binary) is None:
            missing.append(package)
    return missing


def apt_install(packages: list[str]) -> None:
    """Install ``packages`` with apt non-interactively (root only); ``apt-get update`` runs once per process."""
    global _apt_updated
    if os.geteuid() != 0:
        raise LocalSystemError(
            f"missing: {' '.join(packages)}. Install them, then run this again:\n"
            f"    sudo apt-get update && sudo apt-get install -y {' '.join(packages)}"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    print(f"installing {' '.join(packages)} with apt-get (once per machine) ...", file=sys.stderr, flush=True)
    if not _apt_updated:
        subprocess.run(["apt-get", "update"], check=True, env=env, stdin=subprocess.DEVNULL)
        _apt_updated = True
    subprocess.run(
        ["apt-get", "install", "-y", *packages],
        check=True,
        env=env,
        stdin=subprocess.DEVNULL,
    )


def ensure_servers() -> None:
    """Make sure the PostgreSQL, RabbitMQ, Redis and Prometheus servers are installed (installing them as root)."""
    missing = missing_packages()
    if missing:
        apt_install(missing)
        still_missing = missing_packages()
        if still_missing:
            raise LocalSystemError(f"apt-get finished but these are still missing: {' '.join(still_missing)}")


def ensure_venv_support() -> None:
    """Make sure ``python3 -m venv`` works (Debian ships ensurepip separately, in python3-venv)."""
    try:
        import ensurepip  # noqa: F401
    except ImportError:
        version = f"{sys.version_info.major}.{sys.version_info.minor}"
        apt_install([f"python{version}-venv"])


def ensure_browser() -> bool:
    """Install Debian's chromium for the browser tests when it is missing (root only); True when it is there.

    Not root: say how to install it and return False (the browser tests then skip with that reason); the
    rest of the test run does not need it.
    """
    if CHROMIUM.exists():
        return True
    if os.geteuid() != 0:
        print(f"{CHROMIUM} is missing, so the browser tests will be skipped; install it with:\n"
              "    sudo apt-get update && sudo apt-get install -y chromium", file=sys.stderr)
        return False
    apt_install(["chromium"])
    return CHROMIUM.exists()
