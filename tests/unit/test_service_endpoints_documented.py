"""Each service README's endpoint table lists exactly the routes its app serves, with the permission the
gateway actually demands for them (``gateway.access`` declarations), so the docs cannot drift from the code.

The apps are built in-process by their factories, which connect to nothing (no servers needed).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from flask import Flask

from contract.services import SERVICE_NAMES
from gateway.access import requirement_of

REPO_ROOT = Path(__file__).resolve().parents[2]
# Flask adds HEAD to every GET route and OPTIONS to every route; a table row for them says nothing new.
_IMPLICIT = frozenset({"HEAD", "OPTIONS"})
_PARAMETER = re.compile(r"<[^>]*>")


def _normalise(path: str) -> str:
    """``/api/movies/<int:movie_id>`` and ``/api/movies/<id>`` both become ``/api/movies/<>``."""
    return _PARAMETER.sub("<>", path)


def endpoint_rows(readme: str) -> list[tuple[str, str, str]]:
    """(method, normalised path, permission) for every method and path of the README's endpoint table."""
    lines = readme.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| method | path | permission"))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        method_cell, path_cell, permission_cell = (cell.strip() for cell in line.strip("|").split("|")[:3])
        permission = permission_cell.strip("`")
        for method in (m.strip() for m in method_cell.split(",")):
            for path in re.findall(r"`([^`]+)`", path_cell):
                rows.append((method, _normalise(path), permission))
    return rows


def _apps(monkeypatch: pytest.MonkeyPatch) -> dict[str, Flask]:
    for name, value in {
        "DATABASE_USER": "docs", "RABBITMQ_USER": "docs", "RABBITMQ_PASSWORD": "docs", "AUTH_REQUIRED": "false",
    }.items():
        monkeypatch.setenv(name, value)
    import billing
    import gateway
    import inventory

    return {"inventory": inventory.create_app(), "billing": billing.create_app(), "gateway": gateway.create_app()}


@pytest.fixture(scope="module")
def apps() -> dict[str, Flask]:
    """The three apps, built once."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        return _apps(monkeypatch)


def served(app: Flask) -> set[tuple[str, str]]:
    """(method, normalised path) of every route of ``app`` except Flask's static files."""
    return {
        (method, _normalise(rule.rule))
        for rule in app.url_map.iter_rules()
        if rule.endpoint != "static"
        for method in rule.methods - _IMPLICIT
    }


def gateway_permission(gateway_app: Flask, method: str, path: str) -> str:
    """The permission the gateway demands for ``method`` on ``path`` ("none" for unprotected routes)."""
    concrete = path.replace("<>", "1")
    adapter = gateway_app.url_map.bind("localhost")
    endpoint, _ = adapter.match(concrete, method=method)
    requirement = requirement_of(gateway_app.view_functions[endpoint])
    return requirement.permission(method) if requirement else "none"


@pytest.mark.parametrize("service", SERVICE_NAMES)
def test_endpoint_table_lists_exactly_the_served_routes(apps, service):
    """Every route the app serves has a row, and every row is a route the app serves."""
    rows = endpoint_rows((REPO_ROOT / "services" / service / "README.md").read_text())
    documented = {(method, path) for method, path, _ in rows if method not in _IMPLICIT}
    assert documented == served(apps[service])


@pytest.mark.parametrize("service", SERVICE_NAMES)
def test_documented_permissions_are_the_ones_the_gateway_demands(apps, service):
    """The permission column of each API row equals the gateway's declaration for that method and path."""
    rows = endpoint_rows((REPO_ROOT / "services" / service / "README.md").read_text())
    api_rows = [(method, path, permission) for method, path, permission in rows if path.startswith("/api/")]
    for method, path, permission in api_rows:
        assert permission == gateway_permission(apps["gateway"], method, path), (method, path)
    others = {permission for _, path, permission in rows if not path.startswith("/api/")}
    assert others <= {"none"}
