"""Fixtures for end-to-end tests: the full local system (test profile) and clients for it."""

from __future__ import annotations

import contextlib

import pytest
import requests

from contract.services import BILLING
from local_system.credentials import BILLING_SHARD_DATABASES

pytestmark = pytest.mark.e2e


@pytest.fixture
def urls(local_system) -> dict[str, str]:
    """Base URLs of the three services of the running test system."""
    return local_system.urls()


@pytest.fixture
def gateway(gateway_url) -> str:
    """Base URL of the gateway."""
    return gateway_url


@pytest.fixture(scope="session")
def access_token(full_test_system) -> str:
    """A real access token of the demo user (all permissions), issued by the local Cognito emulator."""
    return full_test_system.token()


@pytest.fixture
def anonymous_http():
    """A keep-alive HTTP session without credentials; requests time out, so a hung service fails a test
    instead of the run."""
    with _session() as session:
        yield session


@pytest.fixture
def http(access_token):
    """Like ``anonymous_http``, authenticated as the demo user (the e2e tests run with auth on)."""
    with _session() as session:
        session.headers["Authorization"] = f"Bearer {access_token}"
        yield session


@contextlib.contextmanager
def _session():
    with requests.Session() as session:
        plain_request = session.request

        def request_with_timeout(method, url, **kwargs):
            kwargs.setdefault("timeout", 10)
            return plain_request(method, url, **kwargs)

        session.request = request_with_timeout
        yield session


class ShardCursor:
    """One statement run in every billing shard, the rows of all of them read as one result (shard 0's first).

    A user's orders all live in one shard (docs/patterns/sharding.md), so a query about one user's orders reads
    the same rows, in the same order, as it did when billing_db was the only database.
    """

    def __init__(self, connections):
        self._cursors = [connection.cursor() for connection in connections]

    def __enter__(self) -> ShardCursor:
        return self

    def __exit__(self, *_exc) -> None:
        for cursor in self._cursors:
            cursor.close()

    def execute(self, statement, params=()) -> None:
        """Run ``statement`` in every shard."""
        for cursor in self._cursors:
            cursor.execute(statement, params)

    def fetchall(self) -> list[tuple]:
        """Every shard's rows, shard by shard."""
        return [row for cursor in self._cursors for row in cursor.fetchall()]


class AllShards:
    """Autocommit connections to every billing shard (billing_db, billing_db_shard_1, ...), read through one
    ``cursor()``."""

    def __init__(self, connections):
        self.connections = connections

    def cursor(self) -> ShardCursor:
        """A cursor whose statements run in every shard."""
        return ShardCursor(self.connections)


@pytest.fixture
def billing_db(postgres, local_system):
    """Every billing shard as one read-only view of what landed (a test's user may live in any shard)."""
    with contextlib.ExitStack() as stack:
        yield AllShards([stack.enter_context(postgres.connect(name)) for name in (BILLING.database,
                                                                                 *BILLING_SHARD_DATABASES)])


@pytest.fixture
def amqp(rabbitmq, local_system):
    """A channel on the test broker, for publishing poison messages and reading the dead-letter queue."""
    with rabbitmq.channel() as channel:
        yield channel


# -- the web front end in a real browser ----------------------------------------------------------------------
@pytest.fixture(scope="session")
def browser():
    """One headless Debian Chromium for the whole session (Playwright drives it; nothing is downloaded)."""
    from tests.e2e.browser_support import CHROMIUM

    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: install Debian's chromium (as root `make test` and .ci/run do)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def site(local_system) -> str:
    """The web edge's site of the running test system, e.g. http://127.0.0.1:18000."""
    return local_system.web_url()


@pytest.fixture
def demo_login(local_system) -> tuple[str, str]:
    """User name and password of the demo user (every permission)."""
    return local_system.web_login()


@pytest.fixture
def page(browser, site):
    """A fresh browser context and page; ``page.problems`` collects console errors and CSP violations."""
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    context.set_default_timeout(15_000)
    # Runs before the page's own scripts (injected by the browser, so the page's CSP does not block it).
    context.add_init_script(
        "document.addEventListener('securitypolicyviolation', e => "
        "console.error('CSP violation: ' + e.violatedDirective + ' ' + e.blockedURI));"
    )
    page = context.new_page()
    page.problems = []
    page.on("console", lambda message: message.type == "error" and page.problems.append(message.text))
    page.on("pageerror", lambda error: page.problems.append(f"page error: {error}"))
    try:
        yield page
    finally:
        context.close()
