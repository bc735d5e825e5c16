"""The docs stay true to the code: env tables match the contract, relative links and their anchors resolve."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from contract.environment import Variable, variables_of
from contract.services import SERVICE_NAMES
from tests.scripts import load_script

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "service_docs.py"



service_docs = load_script("service_docs")

DOCUMENTS = sorted(
    [ROOT / "README.md", *(ROOT / "docs").glob("*.md"), *(ROOT / "services").glob("*/README.md")]
)
# [text](target) outside code; the target ends at whitespace or the closing parenthesis.
_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)[^)]*\)")
_FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)
_INLINE_CODE = re.compile(r"`[^`\n]*`")


def relative_link_targets(markdown: str) -> list[str]:
    """Link targets of ``markdown`` that point into the repository or the page itself (no URL scheme)."""
    text = _INLINE_CODE.sub("", _FENCE.sub("", markdown))
    return [target for target in _LINK.findall(text) if not re.match(r"^[a-z][a-z0-9+.-]*:", target)]


def anchors(markdown: str) -> set[str]:
    """The #fragments a Markdown page offers: GitHub's heading slugs and explicit ``<a id="...">``."""
    headings = re.findall(r"^#{1,6} (.+)$", _FENCE.sub("", markdown), re.MULTILINE)
    slugs = {re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-") for heading in headings}
    return slugs | set(re.findall(r'<a id="([^"]+)"', markdown))


def broken_links(path: Path) -> list[str]:
    """Relative links of the Markdown file ``path`` whose file does not exist, or whose #anchor it lacks."""
    broken = []
    for target in relative_link_targets(path.read_text(encoding="utf-8")):
        file_part, _, fragment = target.partition("#")
        linked = (path.parent / file_part) if file_part else path
        if not linked.exists():
            broken.append(target)
        elif fragment and linked.suffix == ".md" and fragment not in anchors(linked.read_text(encoding="utf-8")):
            broken.append(target)
    return broken


# --- the environment tables --------------------------------------------------------------------------------


def test_every_service_readme_table_matches_the_contract():
    assert service_docs.stale_readmes() == [], "run: python3 scripts/service_docs.py"


def test_check_mode_as_a_script_passes():
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--check"], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("service", SERVICE_NAMES)
def test_table_lists_exactly_the_variables_the_service_reads(service):
    table = service_docs.render_table(variables_of(service))
    names = re.findall(r"^\| `([A-Z0-9_]+)` \|", table, re.MULTILINE)
    assert names == [variable.name for variable in variables_of(service)]


def test_render_marks_required_secret_and_empty_defaults_and_escapes_cells():
    table = service_docs.render_table(
        (
            Variable("NEEDED", None, "Must be set.", secret=True),
            Variable("OPTIONAL", "", "Empty: <computed>."),
            Variable("PIPE", "a|b", "x | y"),
        )
    )
    lines = table.splitlines()
    assert lines[0] == "| name | default | secret | meaning |"
    assert lines[2] == "| `NEEDED` | required | yes | Must be set. |"
    assert lines[3] == "| `OPTIONAL` | (empty) |  | Empty: &lt;computed&gt;. |"
    assert lines[4] == "| `PIPE` | `a\\|b` |  | x \\| y |"


def test_replace_table_touches_only_the_text_between_the_markers():
    text = f"before\n{service_docs.BEGIN}\nold table\n{service_docs.END}\nafter\n"
    updated = service_docs.replace_table(text, "NEW")
    assert updated == f"before\n{service_docs.BEGIN}\nNEW\n{service_docs.END}\nafter\n"
    assert service_docs.replace_table(updated, "NEW") == updated


@pytest.mark.parametrize(
    "text", ["no markers at all", f"{service_docs.BEGIN}\nonly the start", f"{service_docs.END}\n{service_docs.BEGIN}"]
)
def test_replace_table_refuses_missing_or_misordered_markers(text):
    with pytest.raises(service_docs.MarkerError):
        service_docs.replace_table(text, "NEW")


def test_a_stale_table_is_reported_and_rewritten(tmp_path):
    for service in SERVICE_NAMES:
        readme = service_docs.readme_path(service, tmp_path)
        readme.parent.mkdir(parents=True)
        readme.write_text(f"# {service}\n{service_docs.BEGIN}\n| stale |\n{service_docs.END}\n", encoding="utf-8")
    (tmp_path / "services" / "billing" / "README.md").unlink()
    assert service_docs.stale_readmes(tmp_path) == list(SERVICE_NAMES)

    service_docs.readme_path("billing", tmp_path).write_text(f"{service_docs.BEGIN}\n{service_docs.END}\n")
    assert service_docs.write_readmes(tmp_path) == list(SERVICE_NAMES)
    assert service_docs.stale_readmes(tmp_path) == []


# --- links -------------------------------------------------------------------------------------------------


def test_the_documents_exist():
    names = {path.relative_to(ROOT).as_posix() for path in DOCUMENTS}
    assert {"README.md", *(f"services/{name}/README.md" for name in SERVICE_NAMES)} <= names
    assert any(name.startswith("docs/") for name in names)


@pytest.mark.parametrize("path", DOCUMENTS, ids=lambda path: path.relative_to(ROOT).as_posix())
def test_every_relative_link_resolves(path):
    assert broken_links(path) == []


def test_link_check_finds_broken_files_and_anchors_and_ignores_code_and_urls(tmp_path):
    (tmp_path / "there.md").write_text("# The `part` (one)\n", encoding="utf-8")
    page = tmp_path / "page.md"
    page.write_text(
        "## Here\n[ok](there.md#the-part-one) [gone](missing.md) [web](https://example.com/x) [anchor](#here)\n"
        "[no such part](there.md#nothing) [no such anchor](#nowhere)\n"
        "`[inline](nowhere.md)`\n```\n[fenced](nowhere-either.md)\n```\n",
        encoding="utf-8",
    )
    assert broken_links(page) == ["missing.md", "there.md#nothing", "#nowhere"]
