"""Locations and stock levels over HTTP: set-up, absolute levels, adjustments and partner feeds."""

from __future__ import annotations

from typing import Any

from services.contracts.inventory import (
    LocationChanged,
    LocationIn,
    LocationType,
    Shortage,
    StockAdjustmentIn,
    StockFeedIn,
    StockFeedResult,
    StockLevel,
    StockLevelIn,
)
from services.infrastructure.database import UnitOfWork
from services.infrastructure.errors import Conflict, InvalidRequest
from services.inventory import db, domain
from services.inventory.handlers.common import (
    emit_level_changed,
    movement,
    require_location,
    stock_level_view,
)


async def upsert_location(body: LocationIn, uow: UnitOfWork) -> Any:
    """Create or update a location."""
    values = body.model_dump(mode="json")
    row = await db.upsert_location(uow.connection, values)
    uow.emit(LocationChanged(**body.model_dump(), changed_at=row.updated_at))
    await uow.commit()
    return row


async def set_stock_level(body: StockLevelIn, uow: UnitOfWork) -> StockLevel:
    """Set on_hand (and optionally safety stock) to an absolute figure."""
    await require_location(uow, body.location_id)
    current = (await db.get_levels(uow.connection, body.location_id, [body.sku], lock=True)).get(
        body.sku
    )
    before = db.level_of(current) if current else domain.Level(0, 0, 0)
    try:
        after = domain.set_on_hand(before, body.on_hand, body.safety_stock)
    except domain.StockRuleViolation as exc:
        raise Conflict(str(exc)) from None
    row = await db.put_level(
        uow.connection, body.location_id, body.sku, after.on_hand, after.safety_stock
    )
    await db.record_movements(
        uow.connection,
        [movement(row, "count", after.on_hand - before.on_hand, 0, None, "set level")],
    )
    emit_level_changed(uow, row)
    await uow.commit()
    return stock_level_view(row)


async def adjust_stock(
    location_id: str,
    body: StockAdjustmentIn,
    uow: UnitOfWork,
    idempotency_key: str | None = None,
) -> StockLevel:
    """A receipt, POS sale, count correction or damage at one location. With an idempotency key,
    a repeat finds the adjustment's movement in the ledger and changes nothing again."""
    await require_location(uow, location_id)
    reference = f"adjustment:{idempotency_key}" if idempotency_key is not None else None
    if reference is not None:
        earlier = await db.movement_by_reference(uow.connection, reference)
        if earlier is not None:
            if (earlier.location_id, earlier.sku, earlier.kind, earlier.on_hand_delta) != (
                location_id,
                body.sku,
                body.reason.value,
                body.delta,
            ):
                raise InvalidRequest("this Idempotency-Key was used for a different adjustment")
            levels = await db.get_levels(uow.connection, location_id, [body.sku])
            return stock_level_view(levels[body.sku])
    current = (await db.get_levels(uow.connection, location_id, [body.sku], lock=True)).get(
        body.sku
    )
    if current is None and body.reason.value != "receipt":
        # The location is there (a 404 would say it is not); its stock of this sku is not yet.
        raise Conflict(
            f"sku {body.sku!r} has no stock level at {location_id}; only a receipt can start one"
        )
    before = db.level_of(current) if current else domain.Level(0, 0, 0)
    try:
        after = domain.adjust(before, body.delta, body.reason)
    except domain.StockRuleViolation as exc:
        raise (InvalidRequest if "delta" in str(exc) else Conflict)(str(exc)) from None
    if current is None:
        row = await db.put_level(uow.connection, location_id, body.sku, after.on_hand, 0)
    else:
        row = await db.change_level(uow.connection, location_id, body.sku, on_hand_delta=body.delta)
    await db.record_movements(
        uow.connection, [movement(row, body.reason.value, body.delta, 0, reference, body.note)]
    )
    emit_level_changed(uow, row)
    await uow.commit()
    return stock_level_view(row)


async def apply_stock_feed(location_id: str, body: StockFeedIn, uow: UnitOfWork) -> StockFeedResult:
    """A partner's absolute stock figures; an older sequence than the last applied is ignored."""
    # Locking the location serialises feeds of one partner, so the sequence check is reliable.
    location = await require_location(uow, location_id, lock=True)
    if location.type != LocationType.DROPSHIP.value:
        raise Conflict(f"location {location_id} is a {location.type}; stock feeds are for dropship")
    if not domain.feed_is_newer(body.sequence, location.feed_sequence):
        return StockFeedResult(
            applied=False, sequence=body.sequence, last_sequence=location.feed_sequence
        )
    feed = {item.sku: item.on_hand for item in body.items}
    current = await db.get_levels(uow.connection, location_id, feed, lock=True)
    levels, shortfalls, movements = [], [], []
    for sku in sorted(feed):
        before = db.level_of(current[sku]) if sku in current else domain.Level(0, 0, 0)
        outcome = domain.apply_feed(before, feed[sku])
        if outcome.shortfall:
            shortfalls.append(Shortage(sku=sku, requested=before.reserved, available=feed[sku]))
        if sku in current and outcome.level.on_hand == before.on_hand:
            levels.append(stock_level_view(current[sku]))
            continue
        row = await db.put_level(
            uow.connection, location_id, sku, outcome.level.on_hand, before.safety_stock
        )
        movements.append(
            movement(
                row,
                "stock_feed",
                outcome.level.on_hand - before.on_hand,
                0,
                f"feed:{body.sequence}",
            )
        )
        emit_level_changed(uow, row)
        levels.append(stock_level_view(row))
    await db.record_movements(uow.connection, movements)
    await db.set_feed_sequence(uow.connection, location_id, body.sequence)
    await uow.commit()
    return StockFeedResult(
        applied=True,
        sequence=body.sequence,
        last_sequence=location.feed_sequence,
        levels=tuple(levels),
        shortfalls=tuple(shortfalls),
    )
