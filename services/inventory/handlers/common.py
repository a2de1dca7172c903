"""What every inventory use case shares: the clock, views of rows, the movement ledger's rows and
the AvailabilityChanged every level change emits."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from services.contracts.inventory import (
    AvailabilityChanged,
    LocationType,
    RejectionReason,
    StockLevel,
    StockLine,
)
from services.infrastructure.database import UnitOfWork
from services.infrastructure.errors import NotFound
from services.infrastructure.metrics import RESERVATIONS
from services.inventory import db

log = logging.getLogger("services.inventory.handlers")

# Reservation outcomes, bound once. Only real changes count: a repeated command answered as
# before (a retry with a new message id) does not.
RESERVED = RESERVATIONS.labels("inventory", "reserved", "")
REJECTED = {
    reason: RESERVATIONS.labels("inventory", "rejected", reason) for reason in RejectionReason
}
RELEASED = RESERVATIONS.labels("inventory", "released", "")
COMMITTED = RESERVATIONS.labels("inventory", "committed", "")
EXPIRED = RESERVATIONS.labels("inventory", "expired", "")
PROMISED = RESERVATIONS.labels("inventory", "promised", "")


def now() -> datetime:
    return datetime.now(UTC)


def stock_level_view(row: Any) -> StockLevel:
    return StockLevel(
        location_id=row.location_id,
        sku=row.sku,
        on_hand=row.on_hand,
        reserved=row.reserved,
        safety_stock=row.safety_stock,
        available=db.level_of(row).available,
        version=row.version,
        updated_at=row.updated_at,
    )


def emit_level_changed(uow: UnitOfWork, row: Any) -> None:
    uow.emit(
        AvailabilityChanged(
            sku=row.sku,
            location_id=row.location_id,
            location_type=LocationType(row.location_type),
            on_hand=row.on_hand,
            reserved=row.reserved,
            safety_stock=row.safety_stock,
            available=db.level_of(row).available,
            version=row.version,
            changed_at=row.updated_at,
        )
    )


def movement(
    row: Any,
    kind: str,
    on_hand_delta: int,
    reserved_delta: int,
    reference: str | None,
    note: str | None = None,
) -> dict[str, Any]:
    """A ledger row for a change of the level `row` (as the change returned it)."""
    return {
        "location_id": row.location_id,
        "sku": row.sku,
        "kind": kind,
        "on_hand_delta": on_hand_delta,
        "reserved_delta": reserved_delta,
        "reference": reference,
        "note": note,
    }


def stock_lines(quantities: dict[str, int]) -> tuple[StockLine, ...]:
    return tuple(StockLine(sku=sku, quantity=q) for sku, q in sorted(quantities.items()))


async def require_location(uow: UnitOfWork, location_id: str, *, lock: bool = False) -> Any:
    location = await db.get_location(uow.connection, location_id, lock=lock)
    if location is None:
        raise NotFound(f"location {location_id!r} does not exist")
    return location
