"""Incoming stock: supplies on their way, promises of them to backordered fulfillments, and
their receipt.

A promise draws on the supplies of each sku at its location, soonest first, never beyond what
they can still promise (`received + promised <= quantity` is a CHECK on the supply). Arriving
units go to the promises waiting on that supply in the order they were made and are held for
them at once (reserved on the level, so nobody else can take them); a promise all of whose units
arrived becomes the held reservation `promise_id`. So a partial receipt confirms as many
promises as it covers, in order, and a promise never loses units it was given to a later one or
to a walk-in. A promise asked for when its units are on the shelf already (orders planned with a
view that was behind) is reserved at once instead."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from services.contracts.inventory import (
    PromiseStatus,
    PromiseStock,
    ReceiveIn,
    RejectionReason,
    ReleaseStock,
    ReservationStatus,
    Shortage,
    StockPromised,
    StockPromiseRejected,
    StockReleased,
    StockReserved,
    Supply,
    SupplyIn,
)
from services.infrastructure.database import UnitOfWork
from services.infrastructure.errors import Conflict, InvalidRequest, NotFound
from services.inventory import db, domain, views
from services.inventory.handlers.common import (
    PROMISED,
    REJECTED,
    RELEASED,
    RESERVED,
    emit_level_changed,
    log,
    movement,
    now,
    require_location,
    stock_lines,
)

# Supplies (HTTP)


async def upsert_supply(body: SupplyIn, uow: UnitOfWork) -> Supply:
    """Create or change a supply on its way; never below what was received or promised of it."""
    conn = uow.connection
    await require_location(uow, body.location_id)
    current = await db.get_supply(conn, body.supply_id, lock=True)
    try:
        domain.check_supply_change(
            views.supply_state(current) if current is not None else None,
            domain.SupplyState(body.location_id, body.sku, body.quantity),
        )
    except domain.StockRuleViolation as exc:
        raise Conflict(f"supply {body.supply_id}: {exc}") from None
    row = await db.upsert_supply(conn, body.model_dump())
    await uow.commit()
    return views.supply_view(row)


def _receipt_note(supply_id: str) -> str:
    return f"supply {supply_id}"


async def receive_supply(
    supply_id: str, body: ReceiveIn | None, uow: UnitOfWork, idempotency_key: str | None = None
) -> Supply:
    """Units of a supply arrive: on_hand grows (a `receipt` movement), the promises waiting on it
    get them in promise order, and each promise now complete becomes a held reservation
    (StockReserved). With an idempotency key, a repeat finds the receipt in the ledger and
    receives nothing again."""
    conn = uow.connection
    requested = body.quantity if body is not None else None
    reference = f"receipt:{idempotency_key}" if idempotency_key is not None else None
    if reference is not None:
        earlier = await db.movement_by_reference(conn, reference)
        if earlier is not None:
            if earlier.note != _receipt_note(supply_id) or requested not in (
                None,
                earlier.on_hand_delta,
            ):
                raise InvalidRequest("this Idempotency-Key was used for a different receipt")
            return await views.supply(conn, supply_id)
    current = await db.get_supply(conn, supply_id, lock=True)
    if current is None:
        raise NotFound(f"supply {supply_id!r} does not exist")
    try:
        units = domain.units_to_receive(requested, views.supply_state(current))
    except domain.StockRuleViolation as exc:
        raise Conflict(f"supply {supply_id}: {exc}") from None
    waiting = await db.lock_waiting_draws(conn, supply_id)
    arrivals = domain.assign_arrivals(
        units, [domain.Waiting(w.promise_id, w.outstanding) for w in waiting]
    )
    held = sum(n for _, n in arrivals)
    level = await db.receive_into_level(conn, current.location_id, current.sku, units, held)
    supply = await db.change_supply(conn, supply_id, received_delta=units, promised_delta=-held)
    await db.record_arrivals(conn, supply_id, arrivals)
    await db.record_movements(
        conn,
        [
            movement(
                level,
                "receipt",
                units,
                0,
                reference or f"supply:{supply_id}",
                _receipt_note(supply_id),
            ),
            *(movement(level, "promise_hold", 0, n, promise_id) for promise_id, n in arrivals),
        ],
    )
    emit_level_changed(uow, level)
    for promise in await db.complete_promises(conn, [promise_id for promise_id, _ in arrivals]):
        await _reserve_promise(uow, promise)
    await uow.commit()
    return views.supply_view(supply)


async def _reserve_promise(uow: UnitOfWork, promise: Any) -> None:
    """Every unit of the promise arrived and is held for it: it becomes the held reservation
    `promise_id` (the level already counts its units as reserved)."""
    conn = uow.connection
    lines = await db.promise_lines(conn, promise.promise_id)
    claimed = await db.claim_reservation(
        conn,
        {
            "reservation_id": promise.promise_id,
            "order_id": promise.order_id,
            "fulfillment_id": promise.fulfillment_id,
            "location_id": promise.location_id,
            "status": ReservationStatus.HELD.value,
            "hold_until": None,
        },
    )
    if not claimed:
        # Only a ReserveStock reusing a promise's id gets here; the units stay held for the
        # promise, and its release gives them back.
        log.error("promise %s arrived, but its id is taken by a reservation", promise.promise_id)
        return
    await db.add_reservation_lines(conn, promise.promise_id, lines)
    await db.set_promise_status(conn, promise.promise_id, PromiseStatus.RESERVED.value)
    RESERVED.inc()
    uow.emit(
        StockReserved(
            order_id=promise.order_id,
            fulfillment_id=promise.fulfillment_id,
            reservation_id=promise.promise_id,
            location_id=promise.location_id,
            lines=stock_lines(lines),
        )
    )


# Promises (Kafka)


async def promise_stock(command: PromiseStock, uow: UnitOfWork) -> None:
    """Promise every line against incoming stock at the location, or none: StockPromised (with
    the time the last supply drawn on is expected) or StockPromiseRejected. When every line is
    on the shelf there already (the stock arrived after orders planned the backorder), it is
    reserved at once: StockPromised, then StockReserved."""
    conn = uow.connection
    requested = {line.sku: line.quantity for line in command.lines}

    def reject(reason: RejectionReason, detail: str, shortages: Sequence[Shortage] = ()) -> None:
        log.info("promise %s rejected: %s", command.promise_id, detail)
        REJECTED[reason].inc()
        uow.emit(
            StockPromiseRejected(
                order_id=command.order_id,
                fulfillment_id=command.fulfillment_id,
                promise_id=command.promise_id,
                location_id=command.location_id,
                reason=reason,
                detail=detail,
                shortages=tuple(shortages),
            )
        )

    # What this id is gets decided under its lock, which ReleaseStock takes too.
    await db.lock_identifier(conn, command.promise_id)
    existing = await db.get_promise(conn, command.promise_id)
    if existing is not None:
        await _answer_repeated_promise(existing, uow, reject)
        return
    earlier = await db.get_reservation(conn, command.promise_id)
    if earlier is not None:
        # A release came first and left its tombstone (or a reservation has this id).
        reject(
            RejectionReason.RESERVATION_CLOSED,
            f"promise {command.promise_id} is already {earlier.status}",
        )
        return
    if await db.get_location(conn, command.location_id) is None:
        reject(RejectionReason.UNKNOWN_LOCATION, f"location {command.location_id!r} does not exist")
        return
    # A receipt of these skus under way right now may create or fill the shelf: wait for it,
    # so the shelf is read after it (never both missed: not on the shelf yet, no longer
    # incoming).
    await db.lock_supplies_at(conn, command.location_id, requested)
    if await _reserve_from_the_shelf(command, requested, uow):
        return
    try:
        draws = await _draw_on_incoming(command.location_id, requested, uow)
    except _PromiseFailed as failed:
        reject(
            RejectionReason.INSUFFICIENT_STOCK,
            f"not enough incoming at {command.location_id} can still be promised: "
            + ", ".join(f"{s.sku} {s.available} of {s.requested}" for s in failed.shortages),
            failed.shortages,
        )
        return
    promised_at = domain.promised_at(draw for planned in draws.values() for draw in planned)
    await _record_promise(command, requested, PromiseStatus.PROMISED, promised_at, uow)
    await db.add_promise_draws(
        conn,
        [
            {
                "promise_id": command.promise_id,
                "supply_id": draw.supply_id,
                "sku": sku,
                "quantity": draw.quantity,
                "arrived": 0,
            }
            for sku, planned in draws.items()
            for draw in planned
        ],
    )
    PROMISED.inc()
    uow.emit(_promised(command, requested, promised_at))


class _PromiseFailed(Exception):
    """Raised inside the savepoint to undo the supplies already drawn on."""

    def __init__(self, shortages: Sequence[Shortage] = ()) -> None:
        super().__init__()
        self.shortages = list(shortages)


async def _draw_on_incoming(
    location_id: str, requested: dict[str, int], uow: UnitOfWork
) -> dict[str, list[domain.Draw]]:
    """Draw every line on the supplies at the location, soonest first, or raise _PromiseFailed
    with the shortages and nothing drawn."""
    conn = uow.connection
    draws: dict[str, list[domain.Draw]] = {}
    try:
        async with conn.begin_nested():
            shortages = []
            # Sku, then supply id, is the lock order of every writer of supplies.
            for sku in sorted(requested):
                locked = await db.lock_promisable_supplies(conn, location_id, sku)
                incoming = [
                    domain.Incoming(s.supply_id, views.supply_state(s).promisable, s.expected_at)
                    for s in locked
                ]
                planned = domain.draw_on_supplies(requested[sku], incoming)
                if planned is None:
                    left = sum(supply.promisable for supply in incoming)
                    shortages.append(Shortage(sku=sku, requested=requested[sku], available=left))
                else:
                    draws[sku] = planned
            if shortages:
                raise _PromiseFailed(shortages)
            for planned in draws.values():
                for draw in planned:
                    # The rule again, as a conditional update: never beyond what is promisable.
                    if not await db.try_promise(conn, draw.supply_id, draw.quantity):
                        raise _PromiseFailed
    except _PromiseFailed as failed:
        if not failed.shortages:  # the supplies changed under the plan: say what is left now
            promisable = await db.promisable_by_sku(conn, location_id, requested)
            failed.shortages = [
                Shortage(sku=sku, requested=q, available=promisable.get(sku, 0))
                for sku, q in sorted(requested.items())
                if promisable.get(sku, 0) < q
            ]
        raise
    return draws


async def _reserve_from_the_shelf(
    command: PromiseStock, requested: dict[str, int], uow: UnitOfWork
) -> bool:
    """Reserve every line from what is available at the location now, as ReserveStock would,
    or nothing (False). Orders asks for a promise when its view shows nothing in stock; when
    the stock arrived in the meantime, the order is served from it instead of waiting (or
    being turned down because what was incoming is on the shelf now)."""
    conn = uow.connection
    reserved_rows: list[Any] = []
    try:
        async with conn.begin_nested():
            for sku in sorted(requested):  # the lock order of every reservation
                row = await db.try_reserve(conn, command.location_id, sku, requested[sku])
                if row is None:
                    raise _PromiseFailed
                reserved_rows.append(row)
    except _PromiseFailed:
        return False
    await _record_promise(command, requested, PromiseStatus.RESERVED, now(), uow)
    await db.claim_reservation(
        conn,
        {
            "reservation_id": command.promise_id,
            "order_id": command.order_id,
            "fulfillment_id": command.fulfillment_id,
            "location_id": command.location_id,
            "status": ReservationStatus.HELD.value,
            "hold_until": None,
        },
    )
    await db.add_reservation_lines(conn, command.promise_id, requested)
    await db.record_movements(
        conn,
        [
            movement(row, "reservation", 0, requested[row.sku], command.promise_id)
            for row in reserved_rows
        ],
    )
    for row in reserved_rows:
        emit_level_changed(uow, row)
    log.info("promise %s reserved at once: the stock is there", command.promise_id)
    PROMISED.inc()
    RESERVED.inc()
    uow.emit(_promised(command, requested, now()))
    uow.emit(
        StockReserved(
            order_id=command.order_id,
            fulfillment_id=command.fulfillment_id,
            reservation_id=command.promise_id,
            location_id=command.location_id,
            lines=stock_lines(requested),
        )
    )
    return True


async def _record_promise(
    command: PromiseStock,
    requested: dict[str, int],
    status: PromiseStatus,
    promised_at: datetime,
    uow: UnitOfWork,
) -> None:
    await db.claim_promise(
        uow.connection,
        {
            "promise_id": command.promise_id,
            "order_id": command.order_id,
            "fulfillment_id": command.fulfillment_id,
            "location_id": command.location_id,
            "status": status.value,
            "promised_at": promised_at,
        },
    )
    await db.add_promise_lines(uow.connection, command.promise_id, requested)


def _promised(
    command: PromiseStock, requested: dict[str, int], promised_at: datetime
) -> StockPromised:
    return StockPromised(
        order_id=command.order_id,
        fulfillment_id=command.fulfillment_id,
        promise_id=command.promise_id,
        location_id=command.location_id,
        lines=stock_lines(requested),
        promised_at=promised_at,
    )


async def _answer_repeated_promise(existing: Any, uow: UnitOfWork, reject: Any) -> None:
    """The same promise asked for again (a retry with a new message id): answer as before."""
    if existing.status == PromiseStatus.RELEASED.value:
        reject(
            RejectionReason.RESERVATION_CLOSED, f"promise {existing.promise_id} is already released"
        )
        return
    uow.emit(
        StockPromised(
            order_id=existing.order_id,
            fulfillment_id=existing.fulfillment_id,
            promise_id=existing.promise_id,
            location_id=existing.location_id,
            lines=stock_lines(await db.promise_lines(uow.connection, existing.promise_id)),
            promised_at=existing.promised_at,
        )
    )


async def release_promise(uow: UnitOfWork, command: ReleaseStock) -> bool:
    """Release a promise not reserved yet: its incoming units become promisable again and the
    units that arrived for it available (StockReleased). False when there is no such promise
    waiting (none, or a receipt made it a reservation): the caller releases as for a
    reservation. The caller holds the id's lock."""
    conn = uow.connection
    promise = await db.get_promise(conn, command.reservation_id)
    if promise is None or promise.status == PromiseStatus.RESERVED.value:
        return False
    draws = await db.promise_draws(conn, promise.promise_id)
    if promise.status == PromiseStatus.PROMISED.value:
        # Supplies first, then the promise: the order a receipt locks them in.
        await db.lock_supplies(conn, {draw.supply_id for draw in draws})
        promise = await db.get_promise(conn, command.reservation_id, lock=True)
        assert promise is not None  # promises are never deleted
        if promise.status == PromiseStatus.RESERVED.value:
            return False
    if promise.status == PromiseStatus.RELEASED.value:
        uow.emit(
            StockReleased(
                order_id=command.order_id,
                reservation_id=command.reservation_id,
                location_id=promise.location_id,
                lines=(),
                reason=f"{command.reason} (nothing released: already released)",
            )
        )
        return True
    draws = await db.promise_draws(conn, promise.promise_id)  # as the lock found them
    arrived: dict[str, int] = {}
    for draw in draws:
        if draw.quantity > draw.arrived:
            await db.change_supply(
                conn, draw.supply_id, promised_delta=-(draw.quantity - draw.arrived)
            )
        if draw.arrived:
            arrived[draw.sku] = arrived.get(draw.sku, 0) + draw.arrived
    movements = []
    for sku in sorted(arrived):
        row = await db.change_level(conn, promise.location_id, sku, reserved_delta=-arrived[sku])
        movements.append(movement(row, "release", 0, -arrived[sku], promise.promise_id))
        emit_level_changed(uow, row)
    await db.record_movements(conn, movements)
    await db.set_promise_status(conn, promise.promise_id, PromiseStatus.RELEASED.value)
    if command.correction is not None:
        log.info(
            "correction %s of promise %s ignored: nothing of it was picked",
            command.correction.value,
            promise.promise_id,
        )
    RELEASED.inc()
    uow.emit(
        StockReleased(
            order_id=command.order_id,
            reservation_id=command.reservation_id,
            location_id=promise.location_id,
            lines=stock_lines(await db.promise_lines(conn, promise.promise_id)),
            reason=command.reason,
        )
    )
    return True
