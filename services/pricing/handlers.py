"""Pricing use cases: keep the price book, and quote carts with the pure engine."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from services.contracts.pricing import (
    AppliedPromotion,
    Channel,
    Money,
    Price,
    PriceChanged,
    PriceIn,
    Promotion,
    PromotionChanged,
    PromotionIn,
    PromotionKind,
    Quote,
    QuoteLine,
    QuoteRequest,
    QuoteTokenClaims,
    TokenLine,
    run_length,
)
from services.infrastructure.database import UnitOfWork
from services.infrastructure.errors import InvalidRequest
from services.infrastructure.quote_tokens import SigningKeys, sign_quote_token
from services.pricing import db, engine


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


def _price_entry(row: Any) -> engine.PriceEntry:
    return engine.PriceEntry(
        sku=row.sku,
        currency=row.currency,
        amount=row.amount,
        channel=row.channel,
        valid_from=row.valid_from,
        valid_to=row.valid_to,
        priority=row.priority,
    )


def _promotion(row: Any) -> engine.Promotion:
    return engine.Promotion(
        promotion_id=row.promotion_id,
        name=row.name,
        kind=row.kind,
        skus=tuple(row.skus),
        params=row.params,
        channels=tuple(row.channels),
        valid_from=row.valid_from,
        valid_to=row.valid_to,
        priority=row.priority,
        exclusive=row.exclusive,
        currency=row.currency,
    )


async def create_quote(
    request: QuoteRequest, uow: UnitOfWork, keys: SigningKeys, ttl: timedelta
) -> Quote:
    """Price a cart, keep the quote for audit, and sign it so an order can prove its price."""
    skus = [line.sku for line in request.lines]
    # One snapshot for the version, the prices and the promotions: the quote names exactly the
    # price book it was computed from, even while an admin is changing it.
    await uow.connection.execution_options(isolation_level="REPEATABLE READ")
    version = await db.current_version(uow.connection)
    prices = [_price_entry(r) for r in await db.prices_for(uow.connection, skus, request.currency)]
    promotions = [_promotion(r) for r in await db.promotions_touching(uow.connection, skus)]
    now = _now()
    try:
        priced = engine.price_cart(
            [engine.CartLine(line.sku, line.quantity) for line in request.lines],
            currency=request.currency,
            channel=request.channel.value,
            prices=prices,
            promotions=promotions,
            at=now,
        )
    except engine.PricingError as exc:
        raise InvalidRequest(str(exc)) from None

    quote_id = f"q_{uuid.uuid4().hex}"
    expires_at = now + ttl
    claims = QuoteTokenClaims(
        quote_id=quote_id,
        channel=request.channel,
        currency=request.currency,
        lines=tuple(
            TokenLine(
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
        price_version=version,
        iat=int(now.timestamp()),
        exp=int(expires_at.timestamp()),
    )
    quote = _quote_view(priced, quote_id, version, now, expires_at, sign_quote_token(claims, keys))
    await db.save_quote(
        uow.connection,
        {
            "quote_id": quote_id,
            "channel": request.channel.value,
            "currency": request.currency,
            "total": priced.total,
            "price_version": version,
            "request": request.model_dump(mode="json"),
            "quote": quote.model_dump(mode="json"),
            "created_at": now,
            "expires_at": expires_at,
        },
    )
    await uow.commit()
    return quote


def _quote_view(
    priced: engine.PricedCart,
    quote_id: str,
    version: int,
    created_at: datetime,
    expires_at: datetime,
    token: str,
) -> Quote:
    def money(amount: int) -> Money:
        return Money(amount=amount, currency=priced.currency)

    return Quote(
        quote_id=quote_id,
        channel=Channel(priced.channel),
        currency=priced.currency,
        lines=tuple(
            QuoteLine(
                sku=line.sku,
                quantity=line.quantity,
                unit_price=money(line.unit_price),
                discount=money(line.discount),
                total=money(line.total),
                unit_net_prices=line.unit_net_prices,
                promotions=line.promotions,
            )
            for line in priced.lines
        ),
        subtotal=money(priced.subtotal),
        discount_total=money(priced.discount_total),
        total=money(priced.total),
        promotions=tuple(
            AppliedPromotion(
                promotion_id=applied.promotion_id,
                name=applied.name,
                kind=PromotionKind(applied.kind),
                discount=money(applied.discount),
                skus=applied.skus,
            )
            for applied in priced.applied
        ),
        channel_rules=priced.channel_rules,
        price_version=version,
        created_at=created_at,
        expires_at=expires_at,
        quote_token=token,
    )
