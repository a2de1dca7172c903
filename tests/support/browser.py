"""Pages in a real browser: Chromium driven by Playwright's async API, for tests that use a
screen as a person does (click, type, read what is shown).

Playwright's own browser downloads are not used: the tests drive the machine's Chromium, which
`tools.chromium()` finds or installs (`make test` does that before pytest starts). The fixtures
are async and run in pytest-asyncio's session event loop, like the rest of the suite, so a test
can serve an app with `tests.support.http.listening`, or use the e2e stack, and browse it in
the same loop.

Fixtures (tests/e2e/conftest.py imports them):

- `browser`: one headless Chromium for the session.
- `page`: a new page in a browser context of its own (fresh cookies and storage), at the size
  the `viewport` fixture names: "desktop" unless a test overrides it, with
  `@pytest.mark.parametrize("viewport", ["tablet"])`. Uncaught JavaScript errors on the page fail
  the test.
- `new_page`: the same as a factory, for tests that need several people at once
  (`await new_page("tablet")`).

`screenshot(page, "name")` saves docs/screenshots/name.png.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Error, Page, Playwright, async_playwright, expect

from tests.support.tools import ToolUnavailable, chromium, say

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "docs" / "screenshots"

# A laptop, and a tablet held upright (what store staff carry: 10-inch class, CSS pixels).
VIEWPORTS: dict[str, dict[str, Any]] = {
    "desktop": {"viewport": {"width": 1280, "height": 800}},
    "tablet": {"viewport": {"width": 820, "height": 1180}, "has_touch": True},
}
# How long an action or an `expect(...)` waits for the page, in milliseconds (Playwright's
# default is 5 s for expectations): generous, as the e2e stack shares two cores with the tests.
TIMEOUT_MS = 10_000

NewPage = Callable[..., Awaitable[Page]]


async def launch_chromium(playwright: Playwright) -> Browser:
    """A headless Chromium: the machine's, found (or installed) in a worker thread, so an
    `apt-get install` never holds up the session's event loop. Raises `ToolUnavailable`."""
    executable = await asyncio.to_thread(chromium, log=say)
    return await playwright.chromium.launch(
        executable_path=str(executable),
        headless=True,
        # Chromium's sandbox cannot run as root, nor in most containers; the tests open only
        # pages they serve themselves. (Playwright's default as well; said here on purpose.)
        chromium_sandbox=False,
        # Containers often have a small /dev/shm, where Chromium would crash.
        args=["--disable-dev-shm-usage"],
    )


@contextlib.asynccontextmanager
async def running_chromium() -> AsyncIterator[Browser]:
    """A headless Chromium for the duration of the block; outside pytest too."""
    async with async_playwright() as playwright:
        browser = await launch_chromium(playwright)
        try:
            yield browser
        finally:
            await browser.close()


async def screenshot(page: Page, name: str, *, full_page: bool = True) -> Path:
    """Save what `page` shows as docs/screenshots/<name>.png; returns the path."""
    path = SCREENSHOTS / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=path, full_page=full_page, animations="disabled")
    return path


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    expect.set_options(timeout=TIMEOUT_MS)
    try:
        async with running_chromium() as browser:
            yield browser
    except ToolUnavailable as error:
        pytest.fail(f"no Chromium for the browser tests: {error}", pytrace=False)


@pytest.fixture
def viewport() -> str:
    """The size `page` opens at; override with `@pytest.mark.parametrize("viewport", [...])`."""
    return "desktop"


@pytest.fixture
async def new_page(browser: Browser) -> AsyncIterator[NewPage]:
    """Open pages in browser contexts of their own (separate cookies: separate people); closed,
    and checked for uncaught JavaScript errors, when the test ends."""
    opened: list[tuple[Page, list[Error]]] = []

    async def open_page(viewport: str = "desktop", **options: Any) -> Page:
        context = await browser.new_context(**{**VIEWPORTS[viewport], **options})
        context.set_default_timeout(TIMEOUT_MS)
        page = await context.new_page()
        errors: list[Error] = []
        page.on("pageerror", lambda error: errors.append(error))  # Playwright wraps handlers
        opened.append((page, errors))
        return page

    yield open_page
    for page, _ in opened:
        await page.context.close()
    failures = [f"{page.url}: {error.message}" for page, errors in opened for error in errors]
    assert not failures, "uncaught JavaScript errors:\n" + "\n".join(failures)


@pytest.fixture
async def page(new_page: NewPage, viewport: str) -> Page:
    return await new_page(viewport)
