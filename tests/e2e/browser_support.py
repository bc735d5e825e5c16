"""Real-browser helpers: Debian's Chromium driven by Playwright (from PyPI; no browser download, ever).

One Chromium per test session (``browser`` fixture in tests/e2e/conftest.py); each test gets its own context
(fresh cookies and sessionStorage). Screenshots go to ``.run/test/screenshots/`` (ignored by git).
"""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

from local_system.profiles import REPO_ROOT

CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
SCREENSHOTS = REPO_ROOT / ".run" / "test" / "screenshots"
#: Milliseconds a browser step may wait for the page (sign-in, an order stored, a poster processed).
STEP_TIMEOUT_MS = 30_000


def png(width: int = 200, height: int = 300, colour: tuple[int, int, int] = (200, 40, 60)) -> bytes:
    """A valid PNG of one colour with a darker frame, built with zlib (no imaging library needed)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    dark = bytes(channel // 3 for channel in colour)
    rows = []
    for y in range(height):
        row = bytearray(b"\x00")  # filter type None
        for x in range(width):
            edge = x < 8 or y < 8 or x >= width - 8 or y >= height - 8
            row += dark if edge else bytes(colour)
        rows.append(bytes(row))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"".join(rows))) + chunk(
        b"IEND", b""
    )


def screenshot(page, name: str, full_page: bool = True) -> Path:
    """Save a screenshot of the current step as ``<name>.png`` (the whole page, or what the window shows)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path


def sign_in(page, site: str, username: str, password: str) -> None:
    """Open the site and sign in through the (emulated) managed login with the mouse."""
    from playwright.sync_api import expect

    page.goto(site)
    page.get_by_role("button", name="Sign in").last.click()
    page.wait_for_url("**/oauth2/authorize**")
    page.get_by_label("User name").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#who")).to_contain_text(f"Signed in as {username}", timeout=STEP_TIMEOUT_MS)
    wait_until_loaded(page)


def wait_until_loaded(page) -> None:
    """Wait until the signed-in page has loaded its movies and orders (``aria-busy`` back to false)."""
    from playwright.sync_api import expect

    expect(page.locator("main")).to_have_attribute("aria-busy", "false", timeout=STEP_TIMEOUT_MS)
