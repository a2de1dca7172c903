"""Stock anywhere: a sku found by its code or a word of its name, nearest first from the store."""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from services.console.gateway import Gateway, Refused
from services.console.sessions import Session
from services.console.web import (
    Console,
    StaffSession,
    render,
    store_of,
)

router = APIRouter()

SKU = re.compile(r"[A-Za-z0-9][A-Za-z0-9._\-]{0,63}")


@router.get("/stock", response_class=HTMLResponse)
async def stock_page(
    request: Request, session: StaffSession, gateway: Console, q: str = "", store: str | None = None
) -> Response:
    """Find a sku by its code or name; see it nearest first."""
    store_id = store_of(session, store)
    results = await _stock_results(gateway, session, store_id, q) if q else None
    return render(
        request,
        "stock.html",
        session,
        store_id=store_id,
        store_query=f"?store={store_id}" if session.person.is_admin else "",
        q=q,
        results=results,
    )


@router.get("/stock/results", response_class=HTMLResponse)
async def stock_results(
    request: Request, session: StaffSession, gateway: Console, q: str = "", store: str | None = None
) -> Response:
    """The search results alone, for typing as you go (htmx)."""
    store_id = store_of(session, store)
    results = await _stock_results(gateway, session, store_id, q) if q.strip() else None
    return render(request, "_stock_results.html", session, q=q, results=results)


async def _stock_results(
    gateway: Gateway, session: Session, store_id: str, q: str
) -> dict[str, Any]:
    q = q.strip()[:64]
    try:
        products = (await gateway.get(session.api_key, "/products", q=q, limit=10))["items"]
    except Refused as refused:
        if refused.status != 422:
            raise
        products = []
    skus = [p["sku"] for p in products]
    names = {p["sku"]: p["name"] for p in products}
    if not skus:
        if not SKU.fullmatch(q):
            return {"items": [], "error": None}
        # A sku without a name in the catalog, as typed (and in capitals, as skus usually are).
        skus = list(dict.fromkeys([q, q.upper()]))
    here = await gateway.get(session.api_key, f"/locations/{store_id}")
    try:
        availability = await gateway.get(
            session.api_key, "/availability", sku=skus, near=f"{here['lat']},{here['lon']}"
        )
    except Refused as refused:
        return {"items": [], "error": f"{refused.title}: {refused.detail}"}
    items = []
    for item in availability["items"]:
        items.append({**item, "name": names.get(item["sku"]) or item.get("name")})
    return {"items": items, "here": here, "error": None}
