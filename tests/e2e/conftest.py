"""Fixtures for end-to-end tests: the full local system (test profile) and clients for it."""

from __future__ import annotations

import contextlib

import pytest
import requests

from contract.services import BILLING

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


@pytest.fixture
def billing_db(postgres, local_system):
    """An autocommit connection to billing_db, for checking what landed."""
    with postgres.connect(BILLING.database) as conn:
        yield conn


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
