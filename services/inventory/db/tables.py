"""Inventory's tables. CHECK constraints hold the stock invariants whatever the code above them
does: no level below zero or below what is reserved, no supply promised beyond what is incoming."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    ARRAY,
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    String,
    text,
)
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

from services.infrastructure.tables import timestamp, with_infrastructure


class InventoryTable(SQLModel, registry=registry()):
    """Base of inventory's tables: a metadata of its own, so no two services share a table
    definition even when the names match (both inventory and orders have `locations`)."""


class LocationRow(InventoryTable, table=True):
    __tablename__ = "locations"
    __table_args__ = (
        CheckConstraint("type IN ('warehouse', 'store', 'dropship')", name="ck_locations_type"),
    )

    location_id: str = Field(primary_key=True, max_length=64)
    name: str = Field(max_length=200)
    type: str = Field(max_length=16)
    lat: float
    lon: float
    capabilities: list[str] = Field(sa_column=Column(ARRAY(String(16)), nullable=False))
    priority: int
    ship_capacity: int
    partner_id: str | None = Field(default=None, max_length=64, index=True)
    feed_sequence: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    created_at: datetime | None = timestamp()
    updated_at: datetime | None = timestamp()


class StockLevelRow(InventoryTable, table=True):
    __tablename__ = "stock_levels"
    __table_args__ = (
        CheckConstraint("on_hand >= 0", name="ck_stock_levels_on_hand"),
        CheckConstraint("reserved >= 0", name="ck_stock_levels_reserved"),
        CheckConstraint("reserved <= on_hand", name="ck_stock_levels_reserved_le_on_hand"),
        CheckConstraint("safety_stock >= 0", name="ck_stock_levels_safety_stock"),
        Index("ix_stock_levels_sku", "sku"),
    )

    location_id: str = Field(
        sa_column=Column(String(64), ForeignKey("locations.location_id"), primary_key=True)
    )
    sku: str = Field(primary_key=True, max_length=64)
    on_hand: int
    reserved: int = 0
    safety_stock: int = 0
    version: int = Field(default=1, sa_column=Column(BigInteger, nullable=False))
    updated_at: datetime | None = timestamp()


class MovementRow(InventoryTable, table=True):
    """Append-only ledger: every change of on_hand or reserved, with why. Its sums are the levels."""

    __tablename__ = "movements"
    __table_args__ = (
        ForeignKeyConstraint(
            ["location_id", "sku"], ["stock_levels.location_id", "stock_levels.sku"]
        ),
        Index("ix_movements_level", "location_id", "sku"),
        Index("ix_movements_reference", "reference"),
    )

    id: int | None = Field(default=None, sa_column=Column(BigInteger, primary_key=True))
    location_id: str = Field(max_length=64)
    sku: str = Field(max_length=64)
    kind: str = Field(max_length=32)
    on_hand_delta: int
    reserved_delta: int
    reference: str | None = Field(default=None, max_length=128)
    note: str | None = Field(default=None, max_length=500)
    occurred_at: datetime | None = timestamp()


class ReservationRow(InventoryTable, table=True):
    __tablename__ = "reservations"
    __table_args__ = (
        CheckConstraint(
            "status IN ('held', 'committed', 'released', 'expired')", name="ck_reservations_status"
        ),
        Index("ix_reservations_expiring", "hold_until", postgresql_where=text("status = 'held'")),
    )

    reservation_id: str = Field(primary_key=True, max_length=64)
    order_id: str = Field(max_length=64, index=True)
    fulfillment_id: str | None = Field(default=None, max_length=64)
    location_id: str | None = Field(default=None, max_length=64)
    status: str = Field(max_length=16)
    hold_until: datetime | None = timestamp(nullable=True)
    created_at: datetime | None = timestamp()
    updated_at: datetime | None = timestamp()


class ReservationLineRow(InventoryTable, table=True):
    __tablename__ = "reservation_lines"

    reservation_id: str = Field(
        sa_column=Column(String(64), ForeignKey("reservations.reservation_id"), primary_key=True)
    )
    sku: str = Field(primary_key=True, max_length=64)
    quantity: int


class SupplyRow(InventoryTable, table=True):
    """Stock on its way to a location. `promised` counts units promised to backorders that have
    not arrived yet; the CHECK makes promising beyond what is incoming impossible."""

    __tablename__ = "supplies"
    __table_args__ = (
        CheckConstraint("quantity > 0", name="ck_supplies_quantity"),
        CheckConstraint("received >= 0", name="ck_supplies_received"),
        CheckConstraint("promised >= 0", name="ck_supplies_promised"),
        CheckConstraint("received + promised <= quantity", name="ck_supplies_within_quantity"),
        Index("ix_supplies_sku_location", "sku", "location_id"),
    )

    supply_id: str = Field(primary_key=True, max_length=64)
    location_id: str = Field(
        sa_column=Column(String(64), ForeignKey("locations.location_id"), nullable=False)
    )
    sku: str = Field(max_length=64)
    quantity: int
    received: int = 0
    promised: int = 0
    expected_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    created_at: datetime | None = timestamp()
    updated_at: datetime | None = timestamp()


class PromiseRow(InventoryTable, table=True):
    """Incoming stock promised to a backordered fulfillment; `reserved` once all of it arrived
    (then the reservation with the same id holds it)."""

    __tablename__ = "promises"
    __table_args__ = (
        CheckConstraint(
            "status IN ('promised', 'reserved', 'released')", name="ck_promises_status"
        ),
    )

    promise_id: str = Field(primary_key=True, max_length=64)
    order_id: str = Field(max_length=64, index=True)
    fulfillment_id: str = Field(max_length=64)
    location_id: str = Field(
        sa_column=Column(String(64), ForeignKey("locations.location_id"), nullable=False)
    )
    status: str = Field(max_length=16)
    promised_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    created_at: datetime | None = timestamp()
    updated_at: datetime | None = timestamp()


class PromiseLineRow(InventoryTable, table=True):
    __tablename__ = "promise_lines"

    promise_id: str = Field(
        sa_column=Column(String(64), ForeignKey("promises.promise_id"), primary_key=True)
    )
    sku: str = Field(primary_key=True, max_length=64)
    quantity: int


class PromiseDrawRow(InventoryTable, table=True):
    """The units of one sku a promise draws on one supply; `arrived` of them are on hand and
    held (reserved) for the promise until all of it is there."""

    __tablename__ = "promise_draws"
    __table_args__ = (
        CheckConstraint("quantity > 0", name="ck_promise_draws_quantity"),
        CheckConstraint("arrived >= 0 AND arrived <= quantity", name="ck_promise_draws_arrived"),
        Index("ix_promise_draws_supply", "supply_id"),
    )

    promise_id: str = Field(
        sa_column=Column(String(64), ForeignKey("promises.promise_id"), primary_key=True)
    )
    supply_id: str = Field(
        sa_column=Column(String(64), ForeignKey("supplies.supply_id"), primary_key=True)
    )
    sku: str = Field(max_length=64)
    quantity: int
    arrived: int = 0


class ProductRow(InventoryTable, table=True):
    """The catalog: every product's name, by sku. Stock levels do not refer to it: stock of a
    sku nobody named yet is still stock."""

    __tablename__ = "products"

    sku: str = Field(primary_key=True, max_length=64)
    name: str = Field(max_length=200)
    updated_at: datetime | None = timestamp()


METADATA = with_infrastructure(InventoryTable.metadata)
