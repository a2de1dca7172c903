"""The command center (admin keys): orders per minute by channel and status, quote-to-order
conversion, exceptions and stores, kept live by server-sent events."""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sse_starlette import EventSourceResponse

from services.console.gateway import Gateway, Refused, SignedOut
from services.console.sessions import Session
from services.console.web import AdminSession, Console, render, sessions_of

router = APIRouter()

WINDOW_MINUTES = 60


async def numbers(gateway: Gateway, session: Session) -> dict[str, Any]:
    """Everything the page shows, from the gateway's operations API."""
    summary, exceptions, stores = await asyncio.gather(
        gateway.get(session.api_key, "/admin/operations/summary", minutes=WINDOW_MINUTES),
        gateway.get(session.api_key, "/admin/operations/exceptions"),
        gateway.get(session.api_key, "/admin/operations/stores", minutes=WINDOW_MINUTES),
    )
    return {
        "summary": summary,
        "chart": chart_data(summary),
        "by_status": by_status(summary),
        "exceptions": exceptions,
        "stores": stores,
    }


def script_json(value: Any) -> str:
    """JSON to place inside a <script> element: no `<` can end the element early."""
    return json.dumps(value).replace("<", "\\u003c")


def chart_data(summary: dict[str, Any]) -> dict[str, Any]:
    """Orders per minute, one series per channel, for the chart."""
    minutes = sorted({row["minute"] for row in summary["orders_per_minute"]})
    per_channel: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for row in summary["orders_per_minute"]:
        per_channel[row["channel"]][row["minute"]] += row["orders"]
    return {
        "labels": [minute[11:16] for minute in minutes],
        "series": [
            {"channel": channel, "orders": [counts.get(minute, 0) for minute in minutes]}
            for channel, counts in sorted(per_channel.items())
        ],
    }


def by_status(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """Orders of the window per channel and current status, as a table."""
    table: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for row in summary["orders_per_minute"]:
        table[row["channel"]][row["status"]] += row["orders"]
    return [
        {"channel": channel, "statuses": dict(statuses)}
        for channel, statuses in sorted(table.items())
    ]


@router.get("/operations", response_class=HTMLResponse)
async def command_center(request: Request, session: AdminSession, gateway: Console) -> Response:
    """The command center."""
    found = await numbers(gateway, session)
    return render(
        request,
        "operations.html",
        session,
        window=WINDOW_MINUTES,
        chart_json=script_json(found["chart"]),
        **found,
    )


@router.get("/operations/events")
async def command_center_events(
    request: Request, session: AdminSession, gateway: Console
) -> EventSourceResponse:
    """Server-sent events: the numbers again every few seconds, each part as HTML to swap in
    (the chart's as JSON)."""
    templates = request.app.state.templates
    interval = request.app.state.settings.console_refresh_seconds

    async def events() -> AsyncIterator[dict[str, str]]:
        while True:
            try:
                found = await numbers(gateway, session)
            except SignedOut:
                sessions_of(request).end(session.id)
                yield {
                    "event": "signed-out",
                    "data": templates.get_template("_signed_out.html").render(),
                }
                return
            except Refused as refused:
                yield {"event": "notice", "data": f"{refused.title}: {refused.detail}"}
            else:
                for part in ("summary", "exceptions", "stores"):
                    html = templates.get_template(f"_ops_{part}.html").render(
                        window=WINDOW_MINUTES, chart_json=script_json(found["chart"]), **found
                    )
                    yield {"event": part, "data": html}
            await asyncio.sleep(interval * 2)

    return EventSourceResponse(events(), ping=15)
