"""Snapshot of every stack template per environment, so an intentional change is one reviewed diff.

Asset hashes (which change with every edit under services/) and the web assets' version (with every edit under
web/assets/) are normalised. After an intentional change,
regenerate and review the diff:

    UPDATE_SNAPSHOTS=1 .venv/bin/python -m pytest tests/infra/test_snapshots.py
    git diff tests/infra/snapshots/
"""

from __future__ import annotations

import difflib
import json
import os
import re
from pathlib import Path

import pytest

from tests.infra.helpers import ENVIRONMENTS, STACKS

pytestmark = pytest.mark.infra

SNAPSHOT_DIR = Path(__file__).parent / "snapshots"
ASSET_HASH = re.compile(r"\b[0-9a-f]{64}\b")
#: The web front end's assets folder is named after their content (stacks/components/web_front_end.py).
ASSETS_VERSION = re.compile(r"(?<=assets/)[0-9a-f]{12}(?=/)")


def normalise(template: dict) -> str:
    """Stable text of a template: sorted keys, asset hashes and the web assets' version replaced by placeholders."""
    text = ASSET_HASH.sub("<asset-hash>", json.dumps(template, indent=1, sort_keys=True))
    return ASSETS_VERSION.sub("<assets-version>", text) + "\n"


def assert_matches_snapshot(actual: str, path: Path, label: str) -> None:
    """``actual`` equals the reviewed snapshot at ``path``; with UPDATE_SNAPSHOTS=1, (re)write it instead."""
    if os.environ.get("UPDATE_SNAPSHOTS") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(actual)
        return
    assert path.exists(), f"missing snapshot {path}: run with UPDATE_SNAPSHOTS=1 and commit it"
    expected = path.read_text()
    if actual != expected:
        diff = "".join(
            difflib.unified_diff(
                expected.splitlines(keepends=True),
                actual.splitlines(keepends=True),
                fromfile=f"snapshot/{label}",
                tofile="synthesized",
                n=2,
            )
        )
        pytest.fail(f"{label} differs from its snapshot (UPDATE_SNAPSHOTS=1 to accept):\n{diff[:6000]}")


@pytest.mark.parametrize("stack", STACKS)
@pytest.mark.parametrize("env_name", ENVIRONMENTS)
def test_template_matches_snapshot(synthesized, env_name, stack):
    """The synthesized template equals the reviewed snapshot (UPDATE_SNAPSHOTS=1 rewrites it)."""
    actual = normalise(synthesized[env_name].templates[stack])
    assert_matches_snapshot(actual, SNAPSHOT_DIR / env_name / f"{stack}.json", f"{env_name}/{stack}")


#: Templates of prod's other parts with a snapshot of their own: the geode, and the second stamp's Auth stack
#: (the one stack that differs from the first stamp's in kind; its other stacks are the same code).
OTHER_PARTS = [("geode (global DNS, health checks)", "Geode", "Geode"), ("stamp us", "Auth", "us-Auth")]


@pytest.mark.parametrize(("part", "stack", "name"), OTHER_PARTS)
def test_other_parts_match_their_snapshots(prod, part, stack, name):
    """prod's geode and second stamp's Auth stack equal their reviewed snapshots (UPDATE_SNAPSHOTS=1 rewrites)."""
    actual = normalise(prod.parts[part][1][stack])
    assert_matches_snapshot(actual, SNAPSHOT_DIR / "prod" / f"{name}.json", f"prod/{name}")
