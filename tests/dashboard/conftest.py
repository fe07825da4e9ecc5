"""A headless Chromium from Debian's package, driven by Playwright through its executable path."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from typing import Any

import pytest

from support import need_service

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One browser per module; each test opens its own page.

    Not per session: Playwright's synchronous API keeps an event loop registered while it
    runs, and tests elsewhere that call `asyncio.run` must not find one.
    """
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        need_service("Playwright", f"the playwright package is not installed ({exc})")
    path = chromium_path()
    if path is None:
        need_service("Chromium", "install Debian's chromium package: apt-get install -y chromium")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    opened = context.new_page()
    try:
        yield opened
    finally:
        context.close()
