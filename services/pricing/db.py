"""Pricing's tables and queries."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import json
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import ARRAY, BigInteger, CheckConstraint, Column, Index, String, text
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

from services.infrastructure.database import DRIVER_AWAY
from services.infrastructure.tables import table, timestamp, with_infrastructure
from services.pricing import engine, price_book


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


async def list_prices(conn: AsyncConnection, sku: str | None, limit: int = 1000) -> Sequence[Any]:
    query = "SELECT * FROM prices" + (" WHERE sku = :sku" if sku else "")
    query += " ORDER BY sku, currency, channel NULLS FIRST, valid_from NULLS FIRST LIMIT :limit"
    return (await conn.execute(text(query), {"sku": sku, "limit": limit})).all()


async def list_promotions(conn: AsyncConnection) -> Sequence[Any]:
    return (
        await conn.execute(text("SELECT * FROM promotions ORDER BY priority, promotion_id"))
    ).all()


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


# The quote path runs on the asyncpg connection under SQLAlchemy's: its few fixed statements
# skip Core's compile and result layers (measured on this machine: ~25 µs of CPU a statement
# against ~70 µs through `text()`), and JSON goes in as text already serialised.


@contextlib.asynccontextmanager
async def connected(engine: AsyncEngine) -> AsyncIterator[Any]:
    """An asyncpg connection from the engine's pool (with the JSON codecs SQLAlchemy installs
    on its connections)."""
    try:
        async with engine.connect() as conn:
            driver: Any = (await conn.get_raw_connection()).driver_connection
            try:
                yield driver
            finally:
                if driver.is_closed():  # lost under us: the pool must not hand it out again
                    await conn.invalidate()
    except DRIVER_AWAY as exc:
        # Answered 503 as every route answers a database that is away: the problem handlers
        # know SQLAlchemy's errors and ConnectionError, not asyncpg's.
        raise ConnectionError(f"database: {exc}") from exc


_PRICES_OF = (
    "SELECT sku, currency, amount, channel, valid_from, valid_to, priority FROM prices"
    " WHERE sku = ANY($1::varchar[])"
)
_PROMOTIONS_TOUCHING = (
    "SELECT promotion_id, name, kind, skus, params, channels, valid_from, valid_to, priority,"
    " exclusive, currency FROM promotions WHERE active AND skus && $1::varchar[]"
)


async def read_book_excerpt(driver: Any, skus: Sequence[str]) -> price_book.BookExcerpt:
    """The price book version and what it says about `skus`. Run it in a REPEATABLE READ
    transaction: the three reads must see one snapshot."""
    version = await driver.fetchval("SELECT version FROM price_book WHERE id = 1")
    prices = await driver.fetch(_PRICES_OF, list(skus))
    promotions = await driver.fetch(_PROMOTIONS_TOUCHING, list(skus))
    return price_book.BookExcerpt(
        version=int(version),
        skus=tuple(skus),
        prices=[engine.PriceEntry(**row) for row in prices],
        promotions=[
            engine.Promotion(
                promotion_id=row["promotion_id"],
                name=row["name"],
                kind=row["kind"],
                skus=tuple(row["skus"]),
                params=_json(row["params"]),
                channels=tuple(row["channels"]),
                valid_from=row["valid_from"],
                valid_to=row["valid_to"],
                priority=row["priority"],
                exclusive=row["exclusive"],
                currency=row["currency"],
            )
            for row in promotions
        ],
    )


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


class QuoteRecord(NamedTuple):
    """A row of `quotes`, its JSON columns already serialised."""

    quote_id: str
    channel: str
    currency: str
    total: int
    price_version: int
    request: str
    quote: str
    created_at: datetime
    expires_at: datetime


# A quote is stored only while its `price_version` is still the price book's version, read in
# the statement's own snapshot: a quote priced from a book that has changed since is never stored
# (nor given).
_STORE_QUOTES_IF_CURRENT = (
    "INSERT INTO quotes (quote_id, channel, currency, total, price_version, request, quote,"
    " created_at, expires_at)"
    " SELECT q.quote_id, q.channel, q.currency, q.total, q.price_version, q.request::jsonb,"
    " q.quote::jsonb, q.created_at, q.expires_at"
    " FROM unnest($1::varchar[], $2::varchar[], $3::varchar[], $4::bigint[], $5::bigint[],"
    " $6::text[], $7::text[], $8::timestamptz[], $9::timestamptz[])"
    " AS q (quote_id, channel, currency, total, price_version, request, quote, created_at,"
    " expires_at)"
    " JOIN price_book ON price_book.id = 1 AND price_book.version = q.price_version"
    " RETURNING quote_id"
)


async def store_quotes_if_current(driver: Any, records: Sequence[QuoteRecord]) -> set[str]:
    """Keep the quotes priced from the current price book; the ids of those kept."""
    columns = [list(column) for column in zip(*records, strict=True)]
    return {row[0] for row in await driver.fetch(_STORE_QUOTES_IF_CURRENT, *columns)}


class QuoteWriter:
    """Stores the quotes given at about the same time with one statement: those that come while
    a statement is in flight go together in the next. Under load one round trip and one commit
    serve many quotes; a quote on its own is written at once, waiting for no company."""

    def __init__(self, engine: AsyncEngine, *, max_batch: int = 500) -> None:
        self._engine = engine
        self._max_batch = max_batch
        self._waiting: list[tuple[QuoteRecord, asyncio.Future[bool]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def store_if_current(self, record: QuoteRecord) -> bool:
        """Whether the quote was kept: False if the price book has changed since its version."""
        stored = asyncio.get_running_loop().create_future()
        self._waiting.append((record, stored))
        if self._writer is None:
            # In a context of its own: the statement belongs to no one request's trace.
            self._writer = asyncio.create_task(self._write(), context=contextvars.Context())
        return await stored

    async def _write(self) -> None:
        batch: list[tuple[QuoteRecord, asyncio.Future[bool]]] = []
        try:
            while self._waiting:
                batch = self._waiting[: self._max_batch]
                del self._waiting[: self._max_batch]
                try:
                    async with connected(self._engine) as driver:
                        kept = await store_quotes_if_current(driver, [r for r, _ in batch])
                except Exception as exc:
                    for _, stored in batch:
                        if not stored.done():
                            stored.set_exception(exc)
                else:
                    for record, stored in batch:
                        if not stored.done():  # its request may have been cancelled
                            stored.set_result(record.quote_id in kept)
        finally:
            self._writer = None
            # Only when this task is cancelled (shutting down) is anyone left waiting.
            for _, stored in [*batch, *self._waiting]:
                stored.cancel()
            self._waiting.clear()
