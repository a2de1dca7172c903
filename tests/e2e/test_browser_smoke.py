"""The browser plumbing works on this machine: Chromium starts, pages served in the session's
event loop load the console's vendored htmx, its SSE extension and Chart.js, clicks reach the
server, server-sent events reach the page, and screenshots are written.

The pages come from a tiny app of this file, not from the console, so these tests say only
whether the browser tests can run at all."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Page, expect
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from tests.support import browser as browser_support
from tests.support.http import listening

VENDOR = Path(__file__).resolve().parents[2] / "services" / "console" / "static" / "vendor"

PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>Browser smoke test</title>
  <script src="/vendor/htmx.org/htmx.min.js"></script>
  <script src="/vendor/htmx-ext-sse/sse.min.js"></script>
  <script src="/vendor/chart.js/chart.umd.min.js"></script>
</head>
<body hx-ext="sse">
  <h1>Browser smoke test</h1>
  <button id="ask" hx-post="/greeting" hx-vals='{"name": "Ada"}' hx-target="#greeting">Ask</button>
  <p id="greeting">nothing yet</p>
  <div sse-connect="/events"><p id="stock" sse-swap="stock">waiting</p></div>
  <canvas id="chart" width="300" height="150"></canvas>
</body>
</html>
"""


async def home(request: Request) -> HTMLResponse:
    return HTMLResponse(PAGE)


async def greeting(request: Request) -> HTMLResponse:
    form = await request.form()  # python-multipart parses htmx's form encoding
    return HTMLResponse(f"<strong>Hello, {form['name']}</strong>")


async def events(request: Request) -> EventSourceResponse:
    async def stream() -> AsyncIterator[ServerSentEvent]:
        yield ServerSentEvent(data="<span>12 in stock</span>", event="stock")
        await asyncio.Event().wait()  # open until the page goes

    return EventSourceResponse(stream())


app = Starlette(
    routes=[
        Route("/", home),
        Route("/greeting", greeting, methods=["POST"]),
        Route("/events", events),
        Mount("/vendor", StaticFiles(directory=VENDOR)),
    ]
)


@pytest.fixture
async def site() -> AsyncIterator[str]:
    async with listening(app) as url:
        yield url


async def test_a_click_reaches_the_server_and_its_answer_is_shown(page: Page, site: str) -> None:
    await page.goto(site)
    await expect(page.locator("#greeting")).to_have_text("nothing yet")

    await page.get_by_role("button", name="Ask").click()

    await expect(page.locator("#greeting")).to_have_text("Hello, Ada")
    await page.close()  # before the server stops, which waits for open connections


async def test_server_sent_events_reach_the_page(page: Page, site: str) -> None:
    await page.goto(site)

    await expect(page.locator("#stock")).to_have_text("12 in stock")
    await page.close()


async def test_the_vendored_libraries_are_the_pinned_ones(page: Page, site: str) -> None:
    await page.goto(site)

    versions = await page.evaluate("() => [htmx.version, Chart.version]")
    assert versions == ["2.0.11", "4.6.1"]
    drawn = await page.evaluate(
        """() => new Chart(document.getElementById('chart'), {
            type: 'bar',
            data: {labels: ['web', 'store'], datasets: [{label: 'orders', data: [3, 5]}]},
            options: {animation: false},
        }).data.datasets[0].data.length"""
    )
    assert drawn == 2
    await page.close()


@pytest.mark.parametrize("viewport", ["tablet"])
async def test_a_tablet_page_is_screenshot(
    page: Page, site: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(browser_support, "SCREENSHOTS", tmp_path)
    await page.goto(site)
    await expect(page.locator("#stock")).to_have_text("12 in stock")

    path = await browser_support.screenshot(page, "smoke", full_page=False)

    assert path == tmp_path / "smoke.png"
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", header[16:24]) == (820, 1180)
    await page.close()
