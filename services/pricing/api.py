"""Pricing's internal HTTP API (the gateway fronts it): thin routes over the handlers."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response

from services.contracts.base import Contract, Identifier, Sku
from services.contracts.operations import ChannelQuotes, QuoteCounts
from services.contracts.pricing import (
    Price,
    PriceIn,
    Promotion,
    PromotionIn,
    Quote,
    QuoteRequest,
    QuoteTokenClaims,
)
from services.infrastructure.errors import PROBLEM_RESPONSES, NotFound
from services.infrastructure.quote_tokens import SigningKeys, verify_quote_token
from services.infrastructure.service import UnitOfWorkDep
from services.pricing import db, handlers

router = APIRouter(responses=PROBLEM_RESPONSES)


# Dependencies are coroutines: FastAPI runs a plain function in a worker thread, a thread hop
# per request that showed in profiles of the quote path.
async def signing_keys(request: Request) -> SigningKeys:
    keys: SigningKeys = request.app.state.signing_keys
    return keys


async def quoting(request: Request) -> handlers.Quoting:
    quoting: handlers.Quoting = request.app.state.quoting
    return quoting


UoW = UnitOfWorkDep
Keys = Annotated[SigningKeys, Depends(signing_keys)]
Quoting = Annotated[handlers.Quoting, Depends(quoting)]


@router.post("/prices", tags=["price book"])
async def set_price(body: PriceIn, uow: UoW) -> Price:
    """Create or update a base price or a channel-scoped one; publishes PriceChanged."""
    async with uow:
        return await handlers.set_price(body, uow)


@router.get("/prices", tags=["price book"])
async def list_prices(uow: UoW, sku: Sku | None = None) -> list[Price]:
    """Price entries, optionally of one sku."""
    async with uow:
        return [handlers.price_view(row) for row in await db.list_prices(uow.connection, sku)]


@router.post("/promotions", tags=["price book"])
async def set_promotion(body: PromotionIn, uow: UoW) -> Promotion:
    """Create or update a promotion; publishes PromotionChanged."""
    async with uow:
        return await handlers.set_promotion(body, uow)


@router.get("/promotions", tags=["price book"])
async def list_promotions(uow: UoW) -> list[Promotion]:
    """Every promotion, in the order they are applied."""
    async with uow:
        return [handlers.promotion_view(row) for row in await db.list_promotions(uow.connection)]


@router.post("/quotes", status_code=201, response_model=Quote, tags=["quotes"])
async def create_quote(body: QuoteRequest, quoting: Quoting) -> Response:
    """Price a cart for a channel: the same cart costs the same in every channel unless a
    channel rule says otherwise (and then `channel_rules` names it)."""
    # The handler serialises the quote once, as it stores it; `response_model` documents it.
    quote = await handlers.create_quote(body, quoting)
    return Response(quote, status_code=201, media_type="application/json")


@router.get("/quotes/{quote_id}", tags=["quotes"])
async def get_quote(quote_id: Identifier, uow: UoW) -> Quote:
    """A quote as it was given."""
    async with uow:
        row = await db.get_quote(uow.connection, quote_id)
        if row is None:
            raise NotFound(f"quote {quote_id!r} does not exist")
        return Quote.model_validate(row.quote)


class TokenToVerify(Contract):
    quote_token: str


@router.post("/quote-tokens/verify", tags=["quotes"])
async def verify(body: TokenToVerify, keys: Keys) -> QuoteTokenClaims:
    """Check a quote token's signature and expiry and show what it vouches for."""
    return verify_quote_token(body.quote_token, keys)


@router.get("/operations/quotes", tags=["operations"])
async def quote_counts(uow: UoW, minutes: Annotated[int, Query(ge=5, le=1440)] = 60) -> QuoteCounts:
    """Quotes given in the last `minutes`, per channel: the command center's conversion."""
    async with uow:
        rows = await db.quotes_by_channel(uow.connection, minutes)
    return QuoteCounts(
        window_minutes=minutes,
        quotes_by_channel=tuple(ChannelQuotes(channel=r.channel, quotes=r.quotes) for r in rows),
    )
