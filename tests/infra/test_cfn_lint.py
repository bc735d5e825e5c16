"""cfn-lint over every synthesized template of both environments: no errors and no warnings.

The configuration (and the documented list of ignored checks, empty today) is in .cfnlintrc.yaml.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.infra.helpers import REPO_ROOT

pytestmark = pytest.mark.infra


def _cfn_lint() -> str:
    found = Path(sys.executable).with_name("cfn-lint")
    if found.exists():
        return str(found)
    on_path = shutil.which("cfn-lint")
    if on_path is None:
        pytest.fail("cfn-lint is not installed (pip install -r requirements-dev.txt)")
    return on_path


def run_cfn_lint(templates: list[str]) -> subprocess.CompletedProcess:
    """cfn-lint over ``templates`` with the repository's configuration (every ignored check is explained there)."""
    return subprocess.run(
        [_cfn_lint(), "--config-file", str(REPO_ROOT / ".cfnlintrc.yaml"), "--format", "parseable", *templates],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_templates_pass_cfn_lint(synthesized):
    """cfn-lint reports nothing (errors or warnings) for any stack of dev and prod (every stamp, the geode)."""
    templates = [
        str(path)
        for env in synthesized.values()
        for path in [*env.template_paths.values(), *env.other_template_paths]
    ]
    result = run_cfn_lint(templates)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == ""
