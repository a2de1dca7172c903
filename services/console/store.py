"""The store console's work: the store's queue (live), and a fulfillment with why it came here and
what to do with it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sse_starlette import EventSourceResponse

from services.console.gateway import Gateway, Refused, SignedOut
from services.console.sessions import Session
from services.console.web import (
    Console,
    StaffSession,
    check_csrf,
    flash,
    render,
    see_other,
    sessions_of,
    store_of,
)

router = APIRouter()

OPEN = ("pending", "reserved", "accepted", "ready_for_pickup")
"""Statuses in which a fulfillment is still work for its store."""

REJECT_CODES = {
    "not_in_stock": "Not in stock (corrects our stock)",
    "damaged": "Damaged (writes the units off)",
    "no_capacity": "No capacity to pick or pack",
    "other": "Other",
}


async def open_work(gateway: Gateway, session: Session, store_id: str) -> list[dict[str, Any]]:
    """The store's open fulfillments, oldest first. One status at a time, in the order work moves
    through them: a fulfillment that moved on between two asks is seen twice, and the later
    answer (its newer status) is the one kept."""
    work: dict[str, dict[str, Any]] = {}
    for status in OPEN:
        page = await gateway.get(
            session.api_key, f"/stores/{store_id}/fulfillments", status=status, limit=200
        )
        work.update((f["fulfillment_id"], f) for f in page["items"])
    return sorted(work.values(), key=lambda f: f["created_at"])


def queue_context(session: Session, work: list[dict[str, Any]]) -> dict[str, Any]:
    """The queue with the fulfillments this person has not seen yet marked new."""
    fresh = {f["fulfillment_id"] for f in work} - session.seen
    first_look = not session.queue_shown  # what was there at sign-in is not news
    session.queue_shown = True
    session.seen |= fresh
    return {"work": work, "new": set() if first_look else fresh}


@router.get("/store", response_class=HTMLResponse)
async def queue_page(
    request: Request, session: StaffSession, gateway: Console, store: str | None = None
) -> Response:
    """The store's open work, oldest first; new work appears without a reload."""
    store_id = store_of(session, store)
    work = await open_work(gateway, session, store_id)
    return render(
        request,
        "store.html",
        session,
        store_id=store_id,
        store_query=f"?store={store_id}" if session.person.is_admin else "",
        **queue_context(session, work),
    )


@router.get("/store/events")
async def queue_events(
    request: Request, session: StaffSession, gateway: Console, store: str | None = None
) -> EventSourceResponse:
    """Server-sent events: the queue again whenever it changes; `signed-out` when the key
    stopped working."""
    store_id = store_of(session, store)
    templates = request.app.state.templates
    interval = request.app.state.settings.console_refresh_seconds

    async def events() -> AsyncIterator[dict[str, str]]:
        shown: list[tuple[str, str]] | None = None
        while True:
            try:
                work = await open_work(gateway, session, store_id)
            except SignedOut:
                sessions_of(request).end(session.id)
                yield {"event": "signed-out", "data": _ended(templates)}
                return
            except Refused as refused:
                yield {"event": "notice", "data": f"{refused.title}: {refused.detail}"}
                await asyncio.sleep(interval)
                continue
            state = [(f["fulfillment_id"], f["status"]) for f in work]
            if state != shown:
                shown = state
                html = templates.get_template("_queue.html").render(
                    session=session,
                    store_query=f"?store={store_id}" if session.person.is_admin else "",
                    **queue_context(session, work),
                )
                yield {"event": "queue", "data": html}
            await asyncio.sleep(interval)

    return EventSourceResponse(events(), ping=15)


def _ended(templates: Any) -> str:
    return str(templates.get_template("_signed_out.html").render())


def _plain_reasons(routing: dict[str, Any], location_id: str) -> dict[str, Any]:
    """The routing decision that sent work here, in the words a picker can use."""
    for attempt in reversed(routing.get("attempts", [])):
        if any(choice["location_id"] == location_id for choice in attempt["chosen"]):
            here = next((c for c in attempt["candidates"] if c["location_id"] == location_id), None)
            others = [c for c in attempt["candidates"] if c["location_id"] != location_id]
            return {
                "explanation": attempt["explanation"],
                "trigger": attempt["trigger"],
                "rules": attempt["rules_applied"],
                "here": here,
                "others": others[:5],
                "attempt": attempt["attempt"],
            }
    return {}


@router.get("/fulfillments/{fulfillment_id}", response_class=HTMLResponse)
async def fulfillment_page(
    request: Request,
    fulfillment_id: str,
    session: StaffSession,
    gateway: Console,
    store: str | None = None,
) -> Response:
    """A fulfillment: its lines, why it was routed here, and the next steps."""
    store_id = store_of(session, store)
    fulfillment = await gateway.get(session.api_key, f"/fulfillments/{fulfillment_id}")
    order = await gateway.get(session.api_key, f"/orders/{fulfillment['order_id']}")
    routing = await gateway.get(session.api_key, f"/orders/{fulfillment['order_id']}/routing")
    stores: list[dict[str, Any]] = []
    waiting = fulfillment["method"] in ("pickup", "reserve") and fulfillment["status"] in (
        "pending",
        "reserved",
    )
    if waiting:
        stores = [s for s in await gateway.get(session.api_key, "/locations", type="store")]
    return render(
        request,
        "fulfillment.html",
        session,
        store_id=store_id,
        store_query=f"?store={store_id}" if session.person.is_admin else "",
        fulfillment=fulfillment,
        order=order,
        why=_plain_reasons(routing, fulfillment["location_id"]),
        reject_codes=REJECT_CODES,
        stores=[s for s in stores if s["location_id"] != fulfillment.get("pickup_store_id")],
    )


@router.post("/fulfillments/{fulfillment_id}/{step}")
async def fulfillment_step(
    request: Request,
    fulfillment_id: str,
    step: str,
    session: StaffSession,
    gateway: Console,
    store: str | None = None,
) -> Response:
    """Ready, hand over, ship, reject, or move the pickup to another store."""
    form = await request.form()
    check_csrf(session, str(form.get("csrf_token", "")))
    back = f"/fulfillments/{fulfillment_id}" + (f"?store={store}" if store else "")
    try:
        if step == "ready":
            await gateway.post(session.api_key, f"/fulfillments/{fulfillment_id}/ready")
            flash(session, "Marked ready: the customer can collect it.", "success")
        elif step == "handover":
            order_id = str(form.get("order_id", "")).strip()
            fulfillment = await gateway.get(session.api_key, f"/fulfillments/{fulfillment_id}")
            if order_id != fulfillment["order_id"]:
                flash(
                    session,
                    "That order number is not this collection's: check the number the "
                    "customer shows.",
                    "error",
                )
                return see_other(back)
            await gateway.post(session.api_key, f"/fulfillments/{fulfillment_id}/handover")
            flash(session, f"Handed over: order {order_id} is collected.", "success")
        elif step == "ship":
            await gateway.post(
                session.api_key,
                f"/fulfillments/{fulfillment_id}/ship",
                {
                    "carrier": str(form.get("carrier", "")).strip(),
                    "tracking_number": str(form.get("tracking_number", "")).strip(),
                },
            )
            flash(session, "Shipped.", "success")
        elif step == "reject":
            await gateway.post(
                session.api_key,
                f"/fulfillments/{fulfillment_id}/reject",
                {
                    "code": str(form.get("code", "other")),
                    "reason": str(form.get("reason", "")).strip(),
                },
            )
            flash(session, "Rejected: the order is routed again elsewhere.", "success")
        elif step == "pickup-store":
            fulfillment = await gateway.get(session.api_key, f"/fulfillments/{fulfillment_id}")
            new_store = str(form.get("store_id", ""))
            await gateway.post(
                session.api_key,
                f"/orders/{fulfillment['order_id']}/pickup-store",
                {"store_id": new_store},
            )
            flash(session, f"The customer now collects at {new_store}.", "success")
            return see_other("/store" + (f"?store={store}" if store else ""))
        else:
            flash(session, f"There is no step {step!r}.", "error")
    except SignedOut:
        raise
    except Refused as refused:
        flash(session, f"{refused.title}: {refused.detail}", "error")
    return see_other(back)
