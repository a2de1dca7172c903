"""Pricing's tables and queries."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ARRAY, BigInteger, CheckConstraint, Column, Index, String, text
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

from services.infrastructure.tables import table, timestamp, with_infrastructure


class PricingTable(SQLModel, registry=registry()):
    """Base of pricing's tables: a metadata of its own, so no two services share a table
    definition even when the names match (both inventory and orders have `locations`)."""


class PriceBookRow(PricingTable, table=True):
    """One row: the price book version. Every change bumps it in its own transaction, so a quote
    read in one snapshot names exactly the prices and promotions it used."""

    __tablename__ = "price_book"
    __table_args__ = (CheckConstraint("id = 1", name="ck_price_book_single_row"),)

    id: int = Field(default=1, primary_key=True)
    version: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))


class PriceRow(PricingTable, table=True):
    __tablename__ = "prices"
    __table_args__ = (
        # One entry per sku, currency, channel and start: posting it again updates it.
        Index(
            "ux_prices_scope",
            "sku",
            "currency",
            "channel",
            "valid_from",
            unique=True,
            postgresql_nulls_not_distinct=True,
        ),
        CheckConstraint("amount >= 0", name="ck_prices_amount"),
    )

    price_id: int | None = Field(default=None, sa_column=Column(BigInteger, primary_key=True))
    sku: str = Field(max_length=64)
    currency: str = Field(max_length=3)
    channel: str | None = Field(default=None, max_length=16)
    amount: int = Field(sa_column=Column(BigInteger, nullable=False))
    priority: int = 0
    valid_from: datetime | None = timestamp(nullable=True)
    valid_to: datetime | None = timestamp(nullable=True)
    price_version: int = Field(sa_column=Column(BigInteger, nullable=False))
    updated_at: datetime | None = timestamp()


class PromotionRow(PricingTable, table=True):
    __tablename__ = "promotions"
    __table_args__ = (Index("ix_promotions_skus", "skus", postgresql_using="gin"),)

    promotion_id: str = Field(primary_key=True, max_length=64)
    name: str = Field(max_length=200)
    kind: str = Field(max_length=32)
    skus: list[str] = Field(sa_column=Column(ARRAY(String(64)), nullable=False))
    channels: list[str] = Field(sa_column=Column(ARRAY(String(16)), nullable=False))
    params: dict[str, Any] = Field(sa_column=Column(JSONB, nullable=False))
    priority: int
    exclusive: bool
    currency: str | None = Field(default=None, max_length=3)
    active: bool
    valid_from: datetime | None = timestamp(nullable=True)
    valid_to: datetime | None = timestamp(nullable=True)
    price_version: int = Field(sa_column=Column(BigInteger, nullable=False))
    updated_at: datetime | None = timestamp()


class QuoteRow(PricingTable, table=True):
    """Every quote given, as given: the audit trail behind each quote token."""

    __tablename__ = "quotes"
    # Quotes given in a recent window, per channel (the command center's conversion).
    __table_args__ = (Index("ix_quotes_created_at", "created_at"),)

    quote_id: str = Field(primary_key=True, max_length=64)
    channel: str = Field(max_length=16)
    currency: str = Field(max_length=3)
    total: int = Field(sa_column=Column(BigInteger, nullable=False))
    price_version: int = Field(sa_column=Column(BigInteger, nullable=False))
    request: dict[str, Any] = Field(sa_column=Column(JSONB, nullable=False))
    quote: dict[str, Any] = Field(sa_column=Column(JSONB, nullable=False))
    created_at: datetime | None = timestamp()
    expires_at: datetime | None = timestamp()


METADATA = with_infrastructure(PricingTable.metadata)


async def bump_version(conn: AsyncConnection) -> int:
    """The next price book version; holds the row lock until commit, serialising changes."""
    result = await conn.execute(
        text("UPDATE price_book SET version = version + 1 WHERE id = 1 RETURNING version")
    )
    return int(result.scalar_one())


async def current_version(conn: AsyncConnection) -> int:
    return int(
        (await conn.execute(text("SELECT version FROM price_book WHERE id = 1"))).scalar_one()
    )


async def upsert_price(conn: AsyncConnection, values: dict[str, Any]) -> PriceRow:
    proposed = insert(table(PriceRow)).values(**values)
    upsert = proposed.on_conflict_do_update(
        index_elements=["sku", "currency", "channel", "valid_from"],
        set_={
            "amount": proposed.excluded.amount,
            "priority": proposed.excluded.priority,
            "valid_to": proposed.excluded.valid_to,
            "price_version": proposed.excluded.price_version,
            "updated_at": text("now()"),
        },
    ).returning(*table(PriceRow).c)
    return PriceRow(**(await conn.execute(upsert)).one()._mapping)


async def upsert_promotion(conn: AsyncConnection, values: dict[str, Any]) -> PromotionRow:
    proposed = insert(table(PromotionRow)).values(**values)
    upsert = proposed.on_conflict_do_update(
        index_elements=["promotion_id"],
        set_={
            **{k: proposed.excluded[k] for k in values if k != "promotion_id"},
            "updated_at": text("now()"),
        },
    ).returning(*table(PromotionRow).c)
    return PromotionRow(**(await conn.execute(upsert)).one()._mapping)


async def prices_for(
    conn: AsyncConnection, skus: Sequence[str], currency: str | None
) -> Sequence[Any]:
    query = "SELECT * FROM prices WHERE sku = ANY(:skus)"
    if currency:
        query += " AND currency = :currency"
    result = await conn.execute(
        text(query + " ORDER BY sku, currency, channel NULLS FIRST, valid_from NULLS FIRST"),
        {"skus": list(skus), "currency": currency},
    )
    return result.all()


async def list_prices(conn: AsyncConnection, sku: str | None, limit: int = 1000) -> Sequence[Any]:
    query = "SELECT * FROM prices" + (" WHERE sku = :sku" if sku else "")
    query += " ORDER BY sku, currency, channel NULLS FIRST, valid_from NULLS FIRST LIMIT :limit"
    return (await conn.execute(text(query), {"sku": sku, "limit": limit})).all()


async def promotions_touching(conn: AsyncConnection, skus: Sequence[str]) -> Sequence[Any]:
    query = text(
        "SELECT * FROM promotions WHERE active AND skus && CAST(:skus AS varchar[])"
        " ORDER BY priority, promotion_id"
    )
    return (await conn.execute(query, {"skus": list(skus)})).all()


async def list_promotions(conn: AsyncConnection) -> Sequence[Any]:
    return (
        await conn.execute(text("SELECT * FROM promotions ORDER BY priority, promotion_id"))
    ).all()


async def save_quote(conn: AsyncConnection, values: dict[str, Any]) -> None:
    await conn.execute(insert(table(QuoteRow)).values(**values))


async def get_quote(conn: AsyncConnection, quote_id: str) -> Any | None:
    return (
        await conn.execute(text("SELECT quote FROM quotes WHERE quote_id = :id"), {"id": quote_id})
    ).first()


async def quotes_by_channel(conn: AsyncConnection, minutes: int) -> Sequence[Any]:
    """Quotes given in the last `minutes`, per channel."""
    query = text(
        "SELECT channel, count(*) AS quotes FROM quotes"
        " WHERE created_at >= now() - make_interval(mins => :minutes)"
        " GROUP BY channel ORDER BY channel"
    )
    return (await conn.execute(query, {"minutes": minutes})).all()
