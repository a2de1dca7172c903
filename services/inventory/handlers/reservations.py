"""Reservations, from inventory.commands.v1: hold, release (with a stock correction), commit,
restock a return, and let holds expire. Commands never raise for business reasons: they answer
with an event instead."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from services.contracts.inventory import (
    CommitStock,
    RejectionReason,
    ReleaseStock,
    ReservationExpired,
    ReservationStatus,
    ReserveStock,
    RestockReturn,
    Shortage,
    StockCommitRejected,
    StockCommitted,
    StockCorrection,
    StockLine,
    StockReleased,
    StockReservationRejected,
    StockReserved,
    StockRestocked,
)
from services.infrastructure.database import UnitOfWork
from services.infrastructure.inbox import Unprocessable
from services.inventory import db, domain
from services.inventory.handlers import incoming
from services.inventory.handlers.common import (
    COMMITTED,
    EXPIRED,
    REJECTED,
    RELEASED,
    RESERVED,
    emit_level_changed,
    log,
    movement,
    now,
    stock_lines,
)


class _ReservationFailed(Exception):
    """Raised inside the savepoint to undo the lines already reserved."""


async def reserve_stock(command: ReserveStock, uow: UnitOfWork) -> None:
    """Hold every line at the location, or none: StockReserved or StockReservationRejected."""
    conn = uow.connection
    requested = {line.sku: line.quantity for line in command.lines}

    def reject(reason: RejectionReason, detail: str, shortages: Sequence[Shortage] = ()) -> None:
        log.info("reservation %s rejected: %s", command.reservation_id, detail)
        REJECTED[reason].inc()
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

    if (problem := domain.hold_is_valid(command.hold_until, now())) is not None:
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
            movement(row, "reservation", 0, requested[row.sku], command.reservation_id)
            for row in reserved_rows
        ],
    )
    for row in reserved_rows:
        emit_level_changed(uow, row)
    RESERVED.inc()
    uow.emit(
        StockReserved(
            order_id=command.order_id,
            fulfillment_id=command.fulfillment_id,
            reservation_id=command.reservation_id,
            location_id=command.location_id,
            lines=stock_lines(requested),
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
                lines=stock_lines(
                    await db.reservation_lines(uow.connection, existing.reservation_id)
                ),
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
        movements.append(movement(row, kind, 0, -lines[sku], reservation.reservation_id))
        emit_level_changed(uow, row)
    await db.record_movements(uow.connection, movements)
    return lines


async def _give_back_some(
    uow: UnitOfWork, reservation: Any, wanted: Sequence[StockLine]
) -> dict[str, int]:
    """Part of a held reservation goes back (a partial cancel): never more than it holds of a
    sku; the reservation holds the rest, or is released once nothing is left."""
    held = await db.reservation_lines(uow.connection, reservation.reservation_id)
    lines = {
        line.sku: min(line.quantity, held.get(line.sku, 0))
        for line in wanted
        if held.get(line.sku, 0) > 0
    }
    movements = []
    for sku in sorted(lines):
        row = await db.change_level(
            uow.connection, reservation.location_id, sku, reserved_delta=-lines[sku]
        )
        movements.append(movement(row, "release", 0, -lines[sku], reservation.reservation_id))
        emit_level_changed(uow, row)
    await db.record_movements(uow.connection, movements)
    await db.reduce_reservation_lines(uow.connection, reservation.reservation_id, lines)
    if sum(held.values()) == sum(lines.values()):
        await db.set_reservation_status(
            uow.connection, reservation.reservation_id, ReservationStatus.RELEASED
        )
    return lines


async def _correct(
    uow: UnitOfWork, command: ReleaseStock, location_id: str, released: dict[str, int]
) -> None:
    """A location turned the units down because they are not there: its stock of those skus
    is corrected too, through the ledger (`count_correction` or `damage`)."""
    assert command.correction is not None
    conn = uow.connection
    kind = "count_correction" if command.correction is StockCorrection.NOT_IN_STOCK else "damage"
    # The release above already locked these rows; reading them again is safe.
    levels = await db.get_levels(conn, location_id, released, lock=True)
    movements = []
    for sku in sorted(released):
        delta = domain.correction_delta(db.level_of(levels[sku]), command.correction, released[sku])
        if delta == 0:
            continue
        row = await db.change_level(conn, location_id, sku, on_hand_delta=delta)
        note = f"{command.correction.value}: {command.reason}"[:500]
        movements.append(movement(row, kind, delta, 0, command.reservation_id, note))
        emit_level_changed(uow, row)
    await db.record_movements(conn, movements)


async def release_stock(command: ReleaseStock, uow: UnitOfWork) -> None:
    """Give a held reservation (or a promise of incoming stock) back. Releasing one that is
    unknown leaves a tombstone, so a reservation or promise command arriving after its own
    release can never hold stock. With a `correction`, the location's stock of the released
    skus is corrected as well."""
    conn = uow.connection
    reservation = await db.get_reservation(conn, command.reservation_id, lock=True)
    if reservation is None:
        # Perhaps a promise of incoming stock not reserved yet: decided under the id's lock,
        # which a PromiseStock takes too, so a promise and a tombstone never both appear.
        await db.lock_identifier(conn, command.reservation_id)
        released_promise = await incoming.release_promise(uow, command)
        if released_promise:
            return
        # A receipt may have just turned the promise into a reservation.
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
    elif reservation.status == ReservationStatus.HELD.value and command.lines:
        released = await _give_back_some(uow, reservation, command.lines)
        reason, location_id = command.reason, reservation.location_id
    elif reservation.status == ReservationStatus.HELD.value:
        released = await _give_back(uow, reservation, "release")
        await db.set_reservation_status(conn, command.reservation_id, ReservationStatus.RELEASED)
        if command.correction is not None and released:
            await _correct(uow, command, reservation.location_id, released)
        RELEASED.inc()
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
            lines=stock_lines(released),
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
                movement(row, "commit", -lines[sku], -lines[sku], command.reservation_id)
            )
            emit_level_changed(uow, row)
        await db.record_movements(conn, movements)
        await db.set_reservation_status(conn, command.reservation_id, ReservationStatus.COMMITTED)
        COMMITTED.inc()
    uow.emit(
        StockCommitted(
            order_id=command.order_id,
            reservation_id=command.reservation_id,
            location_id=reservation.location_id,
            lines=stock_lines(lines),
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
            movements.append(movement(row, "restock", quantities[sku], 0, command.return_id))
            emit_level_changed(uow, row)
        await db.record_movements(conn, movements)
    uow.emit(
        StockRestocked(
            order_id=command.order_id,
            return_id=command.return_id,
            location_id=command.location_id,
            lines=stock_lines(quantities),
        )
    )


async def expire_reservations(uow: UnitOfWork, limit: int = 200) -> int:
    """Release held reservations whose hold time has passed; how many expired."""
    expired = await db.lock_expired_reservations(uow.connection, now(), limit)
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
                lines=stock_lines(lines),
            )
        )
    await uow.commit()
    if expired:
        EXPIRED.inc(len(expired))
        log.info("expired %d reservations", len(expired))
    return len(expired)
