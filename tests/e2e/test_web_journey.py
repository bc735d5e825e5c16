"""The web front end in a real browser (Debian's Chromium): the journey of issue 14 and its promises.

Sign in through the emulated managed login, create a movie, upload a poster and see its thumbnail, place an
order and see it stored, buy a copy and see the purchase confirmed and the stock go down. Screenshots of every
step: .run/test/screenshots/ (two are copied to docs/images/).
"""

from __future__ import annotations

import re
import uuid

import pytest
from playwright.sync_api import expect

from tests.e2e.browser_support import STEP_TIMEOUT_MS, png, screenshot, sign_in, wait_until_loaded


def _create_movie(page, title: str, description: str = "", price: str = "", stock: str = "") -> None:
    page.get_by_label("Title", exact=True).fill(title)
    page.get_by_label("Description (optional)").fill(description)
    page.get_by_label("Price (optional)").fill(price)
    page.get_by_label("Stock (optional)").fill(stock)
    page.get_by_role("button", name="Create movie").click()
    expect(page.get_by_role("status")).to_contain_text(f"Created “{title}”")


def _movie(page, title: str):
    return page.locator("li.movie", has=page.get_by_role("heading", name=title, exact=True))


def _upload_poster(page, title: str, data: bytes, mime: str = "image/png") -> None:
    _movie(page, title).get_by_label(f"Upload poster for {title}").set_input_files(
        {"name": "poster.png", "mimeType": mime, "buffer": data}
    )


def test_journey_sign_in_create_movie_poster_and_order(page, site, demo_login):
    """A person signs in, creates a movie with a price and stock (both shown), uploads its poster (thumbnail
    shown), places an order and sees it stored, buys one copy and sees it confirmed with the stock one lower,
    downloads its invoice; every step leaves a screenshot, and no step breaks the Content-Security-Policy."""
    username, password = demo_login
    page.goto(site)
    expect(page.get_by_role("heading", name="Welcome")).to_be_visible()
    screenshot(page, "web-1-signed-out")
    page.get_by_role("button", name="Sign in").last.click()
    page.wait_for_url("**/oauth2/authorize**")
    page.get_by_label("User name").fill(username)
    page.get_by_label("Password").fill(password)
    screenshot(page, "web-2-managed-login")
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#who")).to_contain_text(f"Signed in as {username}", timeout=STEP_TIMEOUT_MS)
    wait_until_loaded(page)

    title = f"Stalker {uuid.uuid4().hex[:6]}"
    _create_movie(page, title, "Tarkovsky, 1979: a guide leads two men through the Zone.", price="19.9", stock="3")
    expect(_movie(page, title)).to_contain_text("Price 19.90 · 3 in stock")
    screenshot(page, "web-3-movie-created")

    _upload_poster(page, title, png())
    thumbnail = _movie(page, title).get_by_role("img", name=f"Poster of {title}")
    expect(thumbnail).to_be_visible(timeout=STEP_TIMEOUT_MS)
    assert page.evaluate("img => img.naturalWidth", thumbnail.element_handle()) > 0
    expect(page.get_by_role("status")).to_contain_text("published")
    screenshot(page, "web-4-poster-published")

    page.get_by_label("Number of items").fill("3")
    page.get_by_label("Total amount").fill("42.50")
    page.get_by_role("button", name="Place order").click()
    expect(page.locator("#order-result")).to_contain_text("Order accepted")
    expect(page.locator("#order-result")).to_contain_text("stored (3 items, 42.50)", timeout=STEP_TIMEOUT_MS)
    expect(page.locator("#orders-body")).to_contain_text("42.50")
    screenshot(page, "web-5-order-stored")

    _movie(page, title).get_by_role("button", name=f"Buy 1 of {title}").click()
    expect(page.locator("#order-result")).to_contain_text("confirmed (1 \u00d7 19.90 = 19.90)", timeout=STEP_TIMEOUT_MS)
    expect(_movie(page, title)).to_contain_text("Price 19.90 · 2 in stock")
    screenshot(page, "web-5b-purchase-confirmed")

    # Its invoice: once the invoicer announced it, My orders offers a link (a presigned S3 GET, no token).
    invoice_button = page.locator("#orders-body").get_by_role("button", name=re.compile("^Invoice link")).first
    for _ in range(50):
        if invoice_button.count():
            break
        page.get_by_role("button", name="Refresh my orders").click()
        page.wait_for_timeout(200)
    invoice_button.click()
    link = page.locator("#orders-body").get_by_role("link", name=re.compile("^Invoice PDF")).first
    expect(link).to_be_visible(timeout=STEP_TIMEOUT_MS)
    document = page.request.get(link.get_attribute("href"))
    assert document.status == 200 and document.body().startswith(b"%PDF-")
    # The picture for the docs: the journey's movie alone (the test database holds other tests' movies too).
    page.get_by_label("Search by title").fill(title)
    page.get_by_role("button", name="Search").click()
    expect(page.locator("li.movie")).to_have_count(1)
    screenshot(page, "web-6-movie-and-order", full_page=False)
    assert [p for p in page.problems if "Content Security Policy" in p or "CSP" in p] == []


def test_edit_and_delete_a_movie(page, site, demo_login):
    """An editor changes a movie's title through the form and deletes it; the list follows both."""
    sign_in(page, site, *demo_login)
    title = f"Solaris {uuid.uuid4().hex[:6]}"
    _create_movie(page, title)
    _movie(page, title).get_by_role("button", name=f"Edit {title}").click()
    page.get_by_label("Title", exact=True).fill(f"{title} (1972)")
    page.get_by_role("button", name="Save changes").click()
    expect(page.get_by_role("status")).to_contain_text(f"Saved “{title} (1972)”")
    renamed = f"{title} (1972)"
    _movie(page, renamed).get_by_role("button", name=f"Delete {renamed}").click()
    expect(page.get_by_role("status")).to_contain_text(f"Deleted “{renamed}”")
    expect(_movie(page, renamed)).to_have_count(0)


def test_price_and_stock_set_with_the_keyboard_and_a_refused_price_shown(page, site, demo_login):
    """An editor reaches price and stock from the title with Tab and saves with Enter: a price with three
    decimals shows the API's 400 naming price; corrected, the list shows the new price and stock."""
    sign_in(page, site, *demo_login)
    title = f"Mirror {uuid.uuid4().hex[:6]}"
    _create_movie(page, title)
    expect(_movie(page, title)).to_contain_text("No price · Not for sale")
    _movie(page, title).get_by_role("button", name=f"Edit {title}").click()
    expect(page.get_by_label("Title", exact=True)).to_be_focused()
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    expect(page.get_by_label("Price (optional)")).to_be_focused()
    page.keyboard.type("1.005")
    page.keyboard.press("Tab")
    page.keyboard.type("2")
    page.keyboard.press("Enter")
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("400")
    expect(alert).to_contain_text("price must have at most two decimal places")
    page.get_by_label("Price (optional)").fill("12.5")
    page.keyboard.press("Enter")
    expect(page.get_by_role("status")).to_contain_text(f"Saved “{title}”")
    expect(_movie(page, title)).to_contain_text("Price 12.50 · 2 in stock")


def test_search_shows_only_matching_movies(page, site, demo_login):
    """The search box asks the API for matching titles and lists only those."""
    sign_in(page, site, *demo_login)
    marker = uuid.uuid4().hex[:8]
    _create_movie(page, f"Mirror {marker}")
    _create_movie(page, f"Nostalghia {uuid.uuid4().hex[:8]}")
    page.get_by_label("Search by title").fill(marker)
    page.get_by_role("button", name="Search").click()
    expect(page.locator("li.movie")).to_have_count(1)
    expect(page.locator("#movie-count")).to_contain_text(f"1 movie matching “{marker}”")


def test_page_has_no_csp_violations_and_sends_the_policy(page, site, demo_login):
    """Signed in with movies and orders shown, the page breaks no rule of its strict CSP (no inline script or
    style, no eval), and the policy really is enforced on the document."""
    response = page.goto(site)
    assert "script-src 'self'" in response.headers["content-security-policy"]
    sign_in(page, site, *demo_login)
    page.get_by_role("button", name="Refresh my orders").click()
    expect(page.get_by_role("heading", name="My orders")).to_be_visible()
    # An inline script injected now must be refused: proof the policy is active, not just sent.
    page.evaluate("() => { const s = document.createElement('script'); s.textContent = 'window.bad = 1';"
                  " document.body.append(s); }")
    assert page.evaluate("() => window.bad") is None
    violations = [p for p in page.problems if "CSP violation" in p]
    assert violations == ["CSP violation: script-src-elem inline"], page.problems


def test_api_error_is_shown_as_a_message(page, site, demo_login):
    """A movie the API refuses (empty title) shows the status and the API's JSON error, in the alert region."""
    sign_in(page, site, *demo_login)
    page.get_by_role("button", name="Create movie").click()
    alert = page.get_by_role("alert").filter(has_text="400")
    expect(alert).to_contain_text("title")
    expect(alert).to_contain_text('{"error":')


def test_keyboard_only_sign_in(page, site, demo_login):
    """Sign-in works with the keyboard alone: Tab to the button, Enter, type, Tab, type, Enter."""
    username, password = demo_login
    page.goto(site)
    expect(page.get_by_role("heading", name="Welcome")).to_be_visible()
    for _ in range(10):
        page.keyboard.press("Tab")
        if page.evaluate("() => document.activeElement.textContent") == "Sign in":
            break
    else:
        pytest.fail("no Sign in button reachable with Tab")
    page.keyboard.press("Enter")
    page.wait_for_url("**/oauth2/authorize**")
    expect(page.get_by_label("User name")).to_be_focused()  # autofocus: typing starts there
    page.keyboard.type(username)
    page.keyboard.press("Tab")
    page.keyboard.type(password)
    page.keyboard.press("Enter")
    expect(page.locator("#who")).to_contain_text(f"Signed in as {username}", timeout=STEP_TIMEOUT_MS)
    wait_until_loaded(page)


def test_wrong_password_is_refused_with_a_message(page, site, demo_login):
    """The managed login refuses a wrong password and says so; the site stays signed out."""
    page.goto(site)
    page.get_by_role("button", name="Sign in").last.click()
    page.get_by_label("User name").fill(demo_login[0])
    page.get_by_label("Password").fill("Wrong-password-1!")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_have_text("Incorrect user name or password.")


def test_forged_callback_state_is_refused(page, site):
    """A return from the login whose state this tab never sent is refused (no token request is made)."""
    page.goto(f"{site}/?code=forged&state=forged")
    expect(page.get_by_role("alert")).to_contain_text("state parameter does not match")
    expect(page.get_by_role("heading", name="Welcome")).to_be_visible()
    assert "code=" not in page.url


def test_sign_out_returns_to_the_signed_out_page(page, site, demo_login):
    """Sign out forgets the tokens and comes back through the login's logout endpoint, signed out."""
    sign_in(page, site, *demo_login)
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Welcome")).to_be_visible()
    assert page.evaluate("() => sessionStorage.getItem('movies.tokens')") is None


def test_viewer_sees_a_403_and_no_editing_controls(page, site, local_system):
    """A viewer (movies.read only) who tries to create a movie gets the API's 403 as a message, and the
    editing controls disappear; the order forms (billing.write) are not offered."""
    name, password = f"viewer-{uuid.uuid4().hex[:6]}", "Viewer-pass-1!"
    local_system.identity.add_user(name, password, ["viewers"])
    sign_in(page, site, name, password)
    page.get_by_label("Title", exact=True).fill("Not allowed")
    page.get_by_role("button", name="Create movie").click()
    expect(page.get_by_role("alert")).to_contain_text("403")
    expect(page.get_by_role("alert")).to_contain_text("movies.write")
    expect(page.get_by_role("button", name="Create movie")).to_be_hidden()
    expect(page.get_by_role("heading", name="Place an order")).to_be_hidden()


def test_rejected_poster_shows_the_reason(page, site, demo_login):
    """A file that claims to be a PNG but is not is rejected by the pipeline; the page shows why."""
    sign_in(page, site, *demo_login)
    title = f"Ivan's Childhood {uuid.uuid4().hex[:6]}"
    _create_movie(page, title)
    _upload_poster(page, title, b"not an image at all" * 10)
    expect(_movie(page, title)).to_contain_text(re.compile("Poster rejected: .+"), timeout=STEP_TIMEOUT_MS)
