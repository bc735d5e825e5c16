"""The Lambda asset's sources: which folders the three functions need, and a copy of them in asset layout.

The asset is one folder: this package as ``posters/`` and the repository's ``contract/`` package (standard
library only; the filters import ``contract.posters`` and ``contract.web``), plus Pillow's wheels for the
Lambda architecture, which the stack's bundling installs next to them (``requirements.txt``). Handlers:
``posters.validate.handler``, ``posters.resize.handler``, ``posters.publish.handler``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_DIR.parents[1]
#: Folder in the asset -> the folder of this repository it is a copy of.
SOURCES: dict[str, Path] = {"posters": PACKAGE_DIR, "contract": REPO_ROOT / "contract"}
#: Handler setting of each filter's function.
HANDLERS: dict[str, str] = {name: f"posters.{name}.handler" for name in ("validate", "resize", "publish")}
REQUIREMENTS = PACKAGE_DIR / "requirements.txt"
#: Not shipped: caches, and this module (it builds the asset, nothing on Lambda imports it).
_IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", "asset.py")


def copy_sources(target: Path) -> Path:
    """Copy the asset's Python sources into ``target`` (created; existing copies replaced); returns it."""
    target.mkdir(parents=True, exist_ok=True)
    for name, source in SOURCES.items():
        shutil.rmtree(target / name, ignore_errors=True)
        shutil.copytree(source, target / name, ignore=_IGNORED)
    return target
