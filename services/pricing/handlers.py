"""Pricing use cases: keep the price book, and quote carts with the pure engine."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic_core import to_json
from sqlalchemy.ext.asyncio import AsyncEngine

from services.contracts.pricing import (
    Channel,
    Price,
    PriceChanged,
    PriceIn,
    Promotion,
    PromotionChanged,
    PromotionIn,
    PromotionKind,
    QuoteRequest,
    QuoteTokenClaims,
    TokenLine,
    run_length,
)
from services.infrastructure.database import UnitOfWork
from services.infrastructure.errors import InvalidRequest
from services.infrastructure.quote_tokens import SigningKeys, sign_quote_token
from services.pricing import db, engine
from services.pricing.price_book import PriceBook, PriceBookCache


def _now() -> datetime:
    return datetime.now(UTC)


def price_view(row: Any) -> Price:
    return Price(
        sku=row.sku,
        currency=row.currency,
        amount=row.amount,
        channel=Channel(row.channel) if row.channel else None,
        priority=row.priority,
        valid_from=row.valid_from,
        valid_to=row.valid_to,
        price_version=row.price_version,
        updated_at=row.updated_at,
    )


def promotion_view(row: Any) -> Promotion:
    return Promotion(
        promotion_id=row.promotion_id,
        name=row.name,
        kind=PromotionKind(row.kind),
        skus=tuple(row.skus),
        channels=tuple(Channel(c) for c in row.channels),
        params=row.params,
        priority=row.priority,
        exclusive=row.exclusive,
        currency=row.currency,
        active=row.active,
        valid_from=row.valid_from,
        valid_to=row.valid_to,
        price_version=row.price_version,
        updated_at=row.updated_at,
    )


async def set_price(body: PriceIn, uow: UnitOfWork) -> Price:
    """Create or update a price entry; every change is a new price book version."""
    version = await db.bump_version(uow.connection)
    row = await db.upsert_price(
        uow.connection, {**body.model_dump(mode="python"), "price_version": version}
    )
    uow.emit(
        PriceChanged(
            **body.model_dump(exclude={"valid_from", "valid_to"}),
            valid_from=body.valid_from,
            valid_to=body.valid_to,
            price_version=version,
        )
    )
    await uow.commit()
    return price_view(row)


async def set_promotion(body: PromotionIn, uow: UnitOfWork) -> Promotion:
    """Create or update a promotion; a new price book version."""
    version = await db.bump_version(uow.connection)
    values = body.model_dump(mode="json")
    values.update(valid_from=body.valid_from, valid_to=body.valid_to, price_version=version)
    row = await db.upsert_promotion(uow.connection, values)
    uow.emit(PromotionChanged(promotion=body, price_version=version))
    await uow.commit()
    return promotion_view(row)


@dataclass(frozen=True)
class Quoting:
    """What the quote path keeps between requests: the database, the price book it has read,
    the signing keys and how long a quote holds."""

    engine: AsyncEngine
    writer: db.QuoteWriter
    keys: SigningKeys
    ttl: timedelta
    books: PriceBookCache = field(default_factory=PriceBookCache)


async def create_quote(request: QuoteRequest, quoting: Quoting) -> bytes:
    """Price a cart, keep the quote for audit, and sign it so an order can prove its price;
    the quote as JSON (a `Quote`, serialised once)."""
    skus = [line.sku for line in request.lines]
    # The common case: the book in memory knows every sku, and one statement stores the quote
    # (with the others given meanwhile) if that book is still the current version. A replica
    # that changes a price bumps the version, so the statement stores nothing and the quote is
    # priced again below: a change is used by the next quote on every replica, and a quote
    # reads nothing. (A version polled every so often would be cheaper still, but could quote
    # the old price after the admin was told the new one was set.)
    book = quoting.books.book
    if book.covers(skus):
        try:
            quote = price_quote(request, book, quoting.keys, quoting.ttl)
        except engine.PricingError:
            pass  # perhaps only in this book: judged below, on a fresh read
        else:
            if await quoting.writer.store_if_current(quote.record):
                return quote.body
    # The skus are new to this process, or the book has changed: read what the current version
    # says about them and store the quote in that one snapshot, so the quote names exactly the
    # price book it was computed from.
    async with (
        db.connected(quoting.engine) as driver,
        driver.transaction(isolation="repeatable_read"),
    ):
        book = quoting.books.remember(await db.read_book_excerpt(driver, skus))
        try:
            quote = price_quote(request, book, quoting.keys, quoting.ttl)
        except engine.PricingError as exc:
            raise InvalidRequest(str(exc)) from None
        if not await db.store_quotes_if_current(driver, [quote.record]):
            raise RuntimeError("the price book changed inside a snapshot")  # cannot be
    return quote.body


@dataclass(frozen=True)
class PricedQuote:
    """A quote priced and signed, not yet stored: its JSON and its row."""

    body: bytes
    record: db.QuoteRecord


def price_quote(
    request: QuoteRequest, book: PriceBook, keys: SigningKeys, ttl: timedelta
) -> PricedQuote:
    """Price a cart from `book` (which must cover its skus) and sign the quote."""
    now = _now()
    priced = book.price_cart(
        [engine.CartLine(line.sku, line.quantity) for line in request.lines],
        currency=request.currency,
        channel=request.channel.value,
        at=now,
    )
    quote_id = f"q_{uuid.uuid4().hex}"
    expires_at = now + ttl
    # Built without validation: every value comes from the engine or from the validated request.
    claims = QuoteTokenClaims.model_construct(
        quote_id=quote_id,
        channel=request.channel,
        currency=request.currency,
        lines=tuple(
            TokenLine.model_construct(
                sku=line.sku,
                quantity=line.quantity,
                unit_price=line.unit_price,
                net=run_length(line.unit_net_prices),
            )
            for line in priced.lines
        ),
        subtotal=priced.subtotal,
        discount_total=priced.discount_total,
        total=priced.total,
        price_version=book.version,
        iat=int(now.timestamp()),
        exp=int(expires_at.timestamp()),
    )
    token = sign_quote_token(claims, keys)
    body = to_json(_quote_document(priced, quote_id, book.version, now, expires_at, token))
    return PricedQuote(
        body=body,
        record=db.QuoteRecord(
            quote_id=quote_id,
            channel=priced.channel,
            currency=priced.currency,
            total=priced.total,
            price_version=book.version,
            request=request.model_dump_json(),
            quote=body.decode(),
            created_at=now,
            expires_at=expires_at,
        ),
    )


def _quote_document(
    priced: engine.PricedCart,
    quote_id: str,
    version: int,
    created_at: datetime,
    expires_at: datetime,
    token: str,
) -> dict[str, Any]:
    """A `Quote` as plain data, its fields in the model's order: what `Quote(...)` would
    serialise to (a unit test holds the two together), without validating what this service
    has just computed, field by field, before serialising it."""
    currency = priced.currency

    def money(amount: int) -> dict[str, Any]:
        return {"amount": amount, "currency": currency}

    return {
        "quote_id": quote_id,
        "channel": priced.channel,
        "currency": currency,
        "lines": [
            {
                "sku": line.sku,
                "quantity": line.quantity,
                "unit_price": money(line.unit_price),
                "discount": money(line.discount),
                "total": money(line.total),
                "unit_net_prices": line.unit_net_prices,
                "promotions": line.promotions,
            }
            for line in priced.lines
        ],
        "subtotal": money(priced.subtotal),
        "discount_total": money(priced.discount_total),
        "total": money(priced.total),
        "promotions": [
            {
                "promotion_id": applied.promotion_id,
                "name": applied.name,
                "kind": applied.kind,
                "discount": money(applied.discount),
                "skus": applied.skus,
            }
            for applied in priced.applied
        ],
        "channel_rules": priced.channel_rules,
        "price_version": version,
        "created_at": created_at,
        "expires_at": expires_at,
        "quote_token": token,
    }
