"""Inventory use cases. Each runs in one unit of work: load, apply the domain rules, save, emit.
Commands from Kafka never raise for business reasons: they answer with an event instead."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from services.contracts.inventory import (
    AvailabilityChanged,
    AvailabilityResponse,
    CommitStock,
    LocationAvailability,
    LocationChanged,
    LocationIn,
    LocationType,
    RejectionReason,
    ReleaseStock,
    ReservationExpired,
    ReservationStatus,
    ReserveStock,
    RestockReturn,
    Shortage,
    SkuAvailability,
    StockAdjustmentIn,
    StockCommitRejected,
    StockCommitted,
    StockFeedIn,
    StockFeedResult,
    StockLevel,
    StockLevelIn,
    StockLine,
    StockReleased,
    StockReservationRejected,
    StockReserved,
    StockRestocked,
)
from services.infrastructure.database import UnitOfWork
from services.infrastructure.errors import Conflict, InvalidRequest, NotFound
from services.infrastructure.inbox import Unprocessable
from services.infrastructure.metrics import RESERVATIONS
from services.inventory import db, domain

log = logging.getLogger(__name__)

# Reservation outcomes, bound once. Only real changes count: a repeated command answered as
# before (a retry with a new message id) does not.
_RESERVED = RESERVATIONS.labels("inventory", "reserved", "")
_REJECTED = {
    reason: RESERVATIONS.labels("inventory", "rejected", reason) for reason in RejectionReason
}
_RELEASED = RESERVATIONS.labels("inventory", "released", "")
_COMMITTED = RESERVATIONS.labels("inventory", "committed", "")
_EXPIRED = RESERVATIONS.labels("inventory", "expired", "")


class _ReservationFailed(Exception):
    """Raised inside the savepoint to undo the lines already reserved."""


def _now() -> datetime:
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


def _emit_level_changed(uow: UnitOfWork, row: Any) -> None:
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


def _movement(
    row: Any,
    kind: str,
    on_hand_delta: int,
    reserved_delta: int,
    reference: str | None,
    note: str | None = None,
) -> dict[str, Any]:
    return {
        "location_id": row.location_id,
        "sku": row.sku,
        "kind": kind,
        "on_hand_delta": on_hand_delta,
        "reserved_delta": reserved_delta,
        "reference": reference,
        "note": note,
    }


def _lines(quantities: dict[str, int]) -> tuple[StockLine, ...]:
    return tuple(StockLine(sku=sku, quantity=q) for sku, q in sorted(quantities.items()))


# Commands (Kafka)


async def reserve_stock(command: ReserveStock, uow: UnitOfWork) -> None:
    """Hold every line at the location, or none: StockReserved or StockReservationRejected."""
    conn = uow.connection
    requested = {line.sku: line.quantity for line in command.lines}

    def reject(reason: RejectionReason, detail: str, shortages: Sequence[Shortage] = ()) -> None:
        log.info("reservation %s rejected: %s", command.reservation_id, detail)
        _REJECTED[reason].inc()
        uow.emit(
            StockReservationRejected(
                order_id=command.order_id,
                fulfillment_id=command.fulfillment_id,
                reservation_id=command.reservation_id,
                location_id=command.location_id,
                reason=reason,
                detail=detail,
                shortages=tuple(shortages),
            )
        )

    if (problem := domain.hold_is_valid(command.hold_until, _now())) is not None:
        reject(RejectionReason.INVALID_HOLD, problem)
        return
    reserved_rows: list[Any] = []
    try:
        async with conn.begin_nested():
            claimed = await db.claim_reservation(
                conn,
                {
                    "reservation_id": command.reservation_id,
                    "order_id": command.order_id,
                    "fulfillment_id": command.fulfillment_id,
                    "location_id": command.location_id,
                    "status": ReservationStatus.HELD.value,
                    "hold_until": command.hold_until,
                },
            )
            if claimed:
                # Sku order is the lock order everywhere, so two reservations never deadlock.
                for sku in sorted(requested):
                    row = await db.try_reserve(conn, command.location_id, sku, requested[sku])
                    if row is None:
                        raise _ReservationFailed
                    reserved_rows.append(row)
                await db.add_reservation_lines(conn, command.reservation_id, requested)
    except _ReservationFailed:
        # Why it failed is only worked out on this path, to spare the common one a query.
        if await db.get_location(conn, command.location_id) is None:
            reject(
                RejectionReason.UNKNOWN_LOCATION, f"location {command.location_id!r} does not exist"
            )
            return
        levels = await db.get_levels(conn, command.location_id, requested)
        unknown = sorted(set(requested) - set(levels))
        if unknown:
            reject(
                RejectionReason.UNKNOWN_SKU,
                f"no stock level for {', '.join(unknown)} at {command.location_id}",
                [Shortage(sku=sku, requested=requested[sku], available=0) for sku in unknown],
            )
            return
        missing = domain.shortages(requested, {sku: db.level_of(r) for sku, r in levels.items()})
        reject(
            RejectionReason.INSUFFICIENT_STOCK,
            "not enough available: "
            + ", ".join(f"{m.sku} {m.available} of {m.requested}" for m in missing),
            [Shortage(sku=m.sku, requested=m.requested, available=m.available) for m in missing],
        )
        return

    if not claimed:
        await _answer_repeated_reserve(command, uow, reject)
        return

    await db.record_movements(
        conn,
        [
            _movement(row, "reservation", 0, requested[row.sku], command.reservation_id)
            for row in reserved_rows
        ],
    )
    for row in reserved_rows:
        _emit_level_changed(uow, row)
    _RESERVED.inc()
    uow.emit(
        StockReserved(
            order_id=command.order_id,
            fulfillment_id=command.fulfillment_id,
            reservation_id=command.reservation_id,
            location_id=command.location_id,
            lines=_lines(requested),
            hold_until=command.hold_until,
        )
    )


async def _answer_repeated_reserve(command: ReserveStock, uow: UnitOfWork, reject: Any) -> None:
    """The same reservation asked for again (a retry with a new message id): answer as before."""
    existing = await db.get_reservation(uow.connection, command.reservation_id)
    assert existing is not None
    if existing.status in (ReservationStatus.HELD.value, ReservationStatus.COMMITTED.value):
        uow.emit(
            StockReserved(
                order_id=existing.order_id,
                fulfillment_id=existing.fulfillment_id or command.fulfillment_id,
                reservation_id=existing.reservation_id,
                location_id=existing.location_id or command.location_id,
                lines=_lines(await db.reservation_lines(uow.connection, existing.reservation_id)),
                hold_until=existing.hold_until,
            )
        )
    else:
        reject(
            RejectionReason.RESERVATION_CLOSED,
            f"reservation {command.reservation_id} is already {existing.status}",
        )


async def _give_back(uow: UnitOfWork, reservation: Any, kind: str) -> dict[str, int]:
    """Return a held reservation's units to available; the lines released."""
    lines = await db.reservation_lines(uow.connection, reservation.reservation_id)
    movements = []
    for sku in sorted(lines):
        row = await db.change_level(
            uow.connection, reservation.location_id, sku, reserved_delta=-lines[sku]
        )
        movements.append(_movement(row, kind, 0, -lines[sku], reservation.reservation_id))
        _emit_level_changed(uow, row)
    await db.record_movements(uow.connection, movements)
    return lines


async def release_stock(command: ReleaseStock, uow: UnitOfWork) -> None:
    """Give a held reservation back. Releasing one that is unknown leaves a tombstone, so a
    reservation command arriving after its own release can never hold stock."""
    conn = uow.connection
    reservation = await db.get_reservation(conn, command.reservation_id, lock=True)
    if reservation is None:
        await db.claim_reservation(
            conn,
            {
                "reservation_id": command.reservation_id,
                "order_id": command.order_id,
                "status": ReservationStatus.RELEASED.value,
            },
        )
        released: dict[str, int] = {}
        reason = f"{command.reason} (no reservation was held)"
        location_id = None
    elif reservation.status == ReservationStatus.HELD.value:
        released = await _give_back(uow, reservation, "release")
        await db.set_reservation_status(conn, command.reservation_id, ReservationStatus.RELEASED)
        _RELEASED.inc()
        reason, location_id = command.reason, reservation.location_id
    else:
        log.warning(
            "release of reservation %s ignored: already %s",
            command.reservation_id,
            reservation.status,
        )
        released, location_id = {}, reservation.location_id
        reason = f"{command.reason} (nothing released: already {reservation.status})"
    uow.emit(
        StockReleased(
            order_id=command.order_id,
            reservation_id=command.reservation_id,
            location_id=location_id,
            lines=_lines(released),
            reason=reason,
        )
    )


async def commit_stock(command: CommitStock, uow: UnitOfWork) -> None:
    """The reserved units left the location: on_hand and reserved both drop by them."""
    conn = uow.connection
    reservation = await db.get_reservation(conn, command.reservation_id, lock=True)
    status = reservation.status if reservation is not None else None
    if reservation is None or status not in (ReservationStatus.HELD, ReservationStatus.COMMITTED):
        detail = (
            f"reservation {command.reservation_id} is {status}"
            if reservation is not None
            else f"reservation {command.reservation_id} does not exist"
        )
        log.warning("commit refused: %s", detail)
        uow.emit(
            StockCommitRejected(
                order_id=command.order_id,
                reservation_id=command.reservation_id,
                status=ReservationStatus(status) if status else None,
                detail=detail,
            )
        )
        return
    lines = await db.reservation_lines(conn, command.reservation_id)
    if status == ReservationStatus.HELD:
        movements = []
        for sku in sorted(lines):
            row = await db.change_level(
                conn,
                reservation.location_id,
                sku,
                on_hand_delta=-lines[sku],
                reserved_delta=-lines[sku],
            )
            movements.append(
                _movement(row, "commit", -lines[sku], -lines[sku], command.reservation_id)
            )
            _emit_level_changed(uow, row)
        await db.record_movements(conn, movements)
        await db.set_reservation_status(conn, command.reservation_id, ReservationStatus.COMMITTED)
        _COMMITTED.inc()
    uow.emit(
        StockCommitted(
            order_id=command.order_id,
            reservation_id=command.reservation_id,
            location_id=reservation.location_id,
            lines=_lines(lines),
        )
    )


async def restock_return(command: RestockReturn, uow: UnitOfWork) -> None:
    """Resellable returned units go back on hand where they were taken back, once per return."""
    conn = uow.connection
    quantities = {line.sku: line.quantity for line in command.lines}
    already = await db.has_movement(conn, "restock", command.return_id)
    if not already:
        location = await db.get_location(conn, command.location_id)
        if location is None:
            # A return accepted at a location inventory does not know: park it for an operator.
            raise Unprocessable(f"restock for unknown location {command.location_id!r}")
        existing = await db.get_levels(conn, command.location_id, quantities)
        movements = []
        for sku in sorted(quantities):
            if sku in existing:
                row = await db.change_level(
                    conn, command.location_id, sku, on_hand_delta=quantities[sku]
                )
            else:
                row = await db.put_level(conn, command.location_id, sku, quantities[sku], 0)
            movements.append(_movement(row, "restock", quantities[sku], 0, command.return_id))
            _emit_level_changed(uow, row)
        await db.record_movements(conn, movements)
    uow.emit(
        StockRestocked(
            order_id=command.order_id,
            return_id=command.return_id,
            location_id=command.location_id,
            lines=_lines(quantities),
        )
    )


async def expire_reservations(uow: UnitOfWork, limit: int = 200) -> int:
    """Release held reservations whose hold time has passed; how many expired."""
    expired = await db.lock_expired_reservations(uow.connection, _now(), limit)
    for reservation in expired:
        lines = await _give_back(uow, reservation, "expiry")
        await db.set_reservation_status(
            uow.connection, reservation.reservation_id, ReservationStatus.EXPIRED
        )
        uow.emit(
            ReservationExpired(
                order_id=reservation.order_id,
                fulfillment_id=reservation.fulfillment_id or reservation.reservation_id,
                reservation_id=reservation.reservation_id,
                location_id=reservation.location_id,
                lines=_lines(lines),
            )
        )
    await uow.commit()
    if expired:
        _EXPIRED.inc(len(expired))
        log.info("expired %d reservations", len(expired))
    return len(expired)


# HTTP use cases


async def upsert_location(body: LocationIn, uow: UnitOfWork) -> Any:
    """Create or update a location."""
    values = body.model_dump(mode="json")
    row = await db.upsert_location(uow.connection, values)
    uow.emit(LocationChanged(**body.model_dump(), changed_at=row.updated_at))
    await uow.commit()
    return row


async def _require_location(uow: UnitOfWork, location_id: str, *, lock: bool = False) -> Any:
    location = await db.get_location(uow.connection, location_id, lock=lock)
    if location is None:
        raise NotFound(f"location {location_id!r} does not exist")
    return location


async def set_stock_level(body: StockLevelIn, uow: UnitOfWork) -> StockLevel:
    """Set on_hand (and optionally safety stock) to an absolute figure."""
    await _require_location(uow, body.location_id)
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
        [_movement(row, "count", after.on_hand - before.on_hand, 0, None, "set level")],
    )
    _emit_level_changed(uow, row)
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
    await _require_location(uow, location_id)
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
        uow.connection, [_movement(row, body.reason.value, body.delta, 0, reference, body.note)]
    )
    _emit_level_changed(uow, row)
    await uow.commit()
    return stock_level_view(row)


async def apply_stock_feed(location_id: str, body: StockFeedIn, uow: UnitOfWork) -> StockFeedResult:
    """A partner's absolute stock figures; an older sequence than the last applied is ignored."""
    # Locking the location serialises feeds of one partner, so the sequence check is reliable.
    location = await _require_location(uow, location_id, lock=True)
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
            _movement(
                row,
                "stock_feed",
                outcome.level.on_hand - before.on_hand,
                0,
                f"feed:{body.sequence}",
            )
        )
        _emit_level_changed(uow, row)
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


async def get_availability(
    skus: Sequence[str],
    near: tuple[float, float] | None,
    radius_km: float | None,
    location_type: LocationType | None,
    uow: UnitOfWork,
) -> AvailabilityResponse:
    """Per sku: total available and every location holding it, nearest first within a radius."""
    rows = await db.availability(
        uow.connection, skus, location_type.value if location_type else None
    )
    items = []
    for sku in dict.fromkeys(skus):
        by_location = {row.location_id: row for row in rows if row.sku == sku}
        candidates = [domain.Candidate(r.location_id, r.lat, r.lon) for r in by_location.values()]
        locations = []
        for candidate, distance in domain.nearest_first(candidates, near, radius_km):
            row = by_location[candidate.location_id]
            locations.append(
                LocationAvailability(
                    location_id=row.location_id,
                    name=row.name,
                    type=LocationType(row.type),
                    available=db.level_of(row).available,
                    on_hand=row.on_hand,
                    reserved=row.reserved,
                    distance_km=distance,
                )
            )
        items.append(
            SkuAvailability(
                sku=sku,
                total_available=sum(loc.available for loc in locations),
                locations=tuple(locations),
            )
        )
    return AvailabilityResponse(items=tuple(items))
