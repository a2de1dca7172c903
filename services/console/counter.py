"""At the counter: returns, with the refund shown before confirming, and stock adjustments."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response

from services.console.gateway import Refused, SignedOut
from services.console.web import (
    Console,
    StaffSession,
    check_csrf,
    flash,
    form_list,
    render,
    see_other,
    store_of,
)

router = APIRouter()

ADJUSTMENT_REASONS = {
    "receipt": "Receipt (units arrived)",
    "pos_sale": "Sale at the till",
    "count_correction": "Count correction",
    "damage": "Damage",
}


@router.get("/returns", response_class=HTMLResponse)
async def returns_page(
    request: Request,
    session: StaffSession,
    gateway: Console,
    order_id: str = "",
    store: str | None = None,
) -> Response:
    """Find the order, pick the units and their condition."""
    store_id = store_of(session, store)
    order = None
    error = None
    if order_id.strip():
        try:
            order = await gateway.get(session.api_key, f"/orders/{order_id.strip()}")
        except Refused as refused:
            error = f"{refused.title}: {refused.detail}"
    return render(
        request,
        "returns.html",
        session,
        store_id=store_id,
        store_query=f"?store={store_id}" if session.person.is_admin else "",
        order_id=order_id,
        order=order,
        error=error,
    )


def _return_body(form: Any, order_id: str, store_id: str) -> dict[str, Any]:
    quantities = form_list(form, "quantity")
    conditions = form_list(form, "condition")
    lines = [
        {"sku": sku, "quantity": int(units), "condition": conditions.get(sku, "resellable")}
        for sku, units in quantities.items()
        if units.isdigit() and int(units) > 0
    ]
    return {
        "order_id": order_id,
        "store_id": store_id,
        "lines": lines,
        "reason": str(form.get("reason", "")).strip() or "returned at the counter",
    }


@router.post("/returns/{order_id}/preview", response_class=HTMLResponse)
async def return_preview(
    request: Request,
    order_id: str,
    session: StaffSession,
    gateway: Console,
    store: str | None = None,
) -> Response:
    """What the chosen units refund, before anything is done."""
    store_id = store_of(session, store)
    form = await request.form()
    check_csrf(session, str(form.get("csrf_token", "")))
    body = _return_body(form, order_id, store_id)
    if not body["lines"]:
        return render(request, "_return_preview.html", session, error="Choose at least one unit.")
    try:
        preview = await gateway.post(session.api_key, "/returns/preview", body)
    except SignedOut:
        raise
    except Refused as refused:
        return render(
            request, "_return_preview.html", session, error=f"{refused.title}: {refused.detail}"
        )
    return render(
        request,
        "_return_preview.html",
        session,
        preview=preview,
        body_json=json.dumps(body),
        order_id=order_id,
        store_query=f"?store={store_id}" if session.person.is_admin else "",
    )


@router.post("/returns/{order_id}", response_class=HTMLResponse)
async def take_return(
    request: Request,
    order_id: str,
    session: StaffSession,
    gateway: Console,
    body_json: Annotated[str, Form()],
    csrf_token: Annotated[str, Form()] = "",
    store: str | None = None,
) -> Response:
    """Take the units back and refund them."""
    check_csrf(session, csrf_token)
    store_id = store_of(session, store)
    body = json.loads(body_json)
    body["order_id"], body["store_id"] = order_id, store_id
    try:
        taken = await gateway.post(session.api_key, "/returns", body)
    except SignedOut:
        raise
    except Refused as refused:
        flash(session, f"{refused.title}: {refused.detail}", "error")
        return see_other(f"/returns?order_id={order_id}" + (f"&store={store}" if store else ""))
    return render(
        request,
        "return_done.html",
        session,
        store_id=store_id,
        store_query=f"?store={store_id}" if session.person.is_admin else "",
        taken=taken,
    )


# Stock adjustments


@router.get("/adjust", response_class=HTMLResponse)
async def adjust_page(
    request: Request, session: StaffSession, store: str | None = None
) -> Response:
    """Record a receipt, a till sale, a count correction or damage."""
    store_id = store_of(session, store)
    return render(
        request,
        "adjust.html",
        session,
        store_id=store_id,
        store_query=f"?store={store_id}" if session.person.is_admin else "",
        reasons=ADJUSTMENT_REASONS,
    )


@router.post("/adjust")
async def adjust(
    request: Request,
    session: StaffSession,
    gateway: Console,
    sku: Annotated[str, Form(max_length=64)],
    delta: Annotated[int, Form(ge=-10_000_000, le=10_000_000)],
    reason: Annotated[str, Form(max_length=32)],
    note: Annotated[str, Form(max_length=500)] = "",
    csrf_token: Annotated[str, Form()] = "",
    store: str | None = None,
) -> Response:
    """Apply the adjustment and say what the stock is now."""
    check_csrf(session, csrf_token)
    store_id = store_of(session, store)
    body: dict[str, Any] = {"sku": sku.strip(), "delta": delta, "reason": reason}
    if note.strip():
        body["note"] = note.strip()
    try:
        level = await gateway.post(session.api_key, f"/stores/{store_id}/stock-adjustments", body)
        flash(
            session,
            f"{level['sku']} at {store_id}: {level['on_hand']} on hand, {level['available']} available.",
            "success",
        )
    except SignedOut:
        raise
    except Refused as refused:
        flash(session, f"{refused.title}: {refused.detail}", "error")
    return see_other("/adjust" + (f"?store={store}" if store else ""))
