"""The posters Lambda asset (functions/posters/asset.py) holds everything the filters import: nothing else."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from functions.posters import asset


def test_asset_sources_import_on_their_own(tmp_path):
    """Copied in asset layout (posters/ + contract/) the three handlers import with nothing else of the
    repository on the path, and pull in no module of services/ or local_system/."""
    asset.copy_sources(tmp_path)
    modules = [handler.rsplit(".", 1)[0] for handler in asset.HANDLERS.values()]
    code = (
        "import importlib, json, sys\n"
        f"mods = [importlib.import_module(m) for m in {modules!r}]\n"
        "assert all(callable(m.handler) for m in mods)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout)
    assert "posters.validate" in loaded and "contract.posters" in loaded
    assert not [m for m in loaded if m.split(".")[0] in ("local_system", "services", "functions", "common")]


def test_asset_has_no_caches_or_tests(tmp_path):
    """Only sources go into the asset: no __pycache__ (it would change the asset hash on every run), not the
    module that builds it."""
    asset.copy_sources(tmp_path)
    names = {path.name for path in tmp_path.rglob("*")}
    assert "__pycache__" not in names and not [n for n in names if n.endswith(".pyc")]
    assert "asset.py" not in names
    assert set(os.listdir(tmp_path)) == {"posters", "contract"}

