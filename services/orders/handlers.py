"""Orders use cases: intake, routing, and the saga that follows inventory's answers. Each runs in
one unit of work and locks the order row first, so the steps of one order never interleave."""

from __future__ import annotations

import hashlib
import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from services.contracts.inventory import (
    AvailabilityChanged,
    CommitStock,
    LocationChanged,
    ReleaseStock,
    ReservationExpired,
    ReserveStock,
    RestockReturn,
    StockCommitRejected,
    StockLine,
    StockReservationRejected,
    StockReserved,
)
from services.contracts.orders import (
    FulfillmentAccepted,
    FulfillmentAssigned,
    FulfillmentMethod,
    FulfillmentPickedUp,
    FulfillmentReady,
    FulfillmentRejected,
    FulfillmentShipped,
    FulfillmentStatus,
    ItemCondition,
    OrderAccepted,
    OrderCancelled,
    OrderCompleted,
    OrderConfirmed,
    OrderExpired,
    OrderPlaced,
    OrderRejected,
    OrderStatus,
    PlaceOrder,
    RefundIssued,
    Return,
    ReturnAccepted,
    ReturnIn,
    ReturnLine,
    ShipIn,
)
from services.contracts.pricing import Money
from services.infrastructure.database import UnitOfWork
from services.infrastructure.errors import Conflict, InvalidRequest, NotFound
from services.infrastructure.quote_tokens import SigningKeys, verify_quote_token
from services.orders import db, domain, routing

log = logging.getLogger(__name__)
F = FulfillmentStatus


@dataclass(frozen=True)
class Policy:
    """What the saga needs beyond the database: keys to check quotes, and routing rules."""

    keys: SigningKeys
    rules: routing.RoutingRules
    max_attempts: int
    pickup_window: timedelta


def _now() -> datetime:
    return datetime.now(UTC)


def _today() -> date:
    return _now().date()


def request_hash(body: Any) -> str:
    return hashlib.sha256(body.model_dump_json().encode()).hexdigest()


def _lines(quantities: dict[str, int]) -> tuple[StockLine, ...]:
    return tuple(StockLine(sku=sku, quantity=q) for sku, q in sorted(quantities.items()))


async def _order(uow: UnitOfWork, order_id: str) -> Any:
    order = await db.get_order(uow.connection, order_id, lock=True)
    if order is None:
        raise NotFound(f"order {order_id!r} does not exist")
    return order


# Intake


async def place_order(
    body: PlaceOrder, idempotency_key: str | None, uow: UnitOfWork, policy: Policy
) -> OrderAccepted:
    """Accept an order for exactly what a quote priced, route it, and ask inventory to reserve."""
    conn = uow.connection
    fingerprint = request_hash(body)
    if idempotency_key is not None:
        earlier = await db.order_by_key(conn, idempotency_key)
        if earlier is not None:
            if earlier.request_hash != fingerprint:
                raise InvalidRequest("this Idempotency-Key was used for a different order")
            return OrderAccepted(order_id=earlier.order_id, status=OrderStatus(earlier.status))

    claims = verify_quote_token(body.quote_token, policy.keys)
    ordered = {line.sku: line.quantity for line in body.lines}
    mismatch = domain.quote_mismatch(ordered, {line.sku: line.quantity for line in claims.lines})
    if mismatch is not None:
        raise InvalidRequest(mismatch)
    if (used := await db.order_by_quote(conn, claims.quote_id)) is not None:
        raise Conflict(f"quote {claims.quote_id} was already used by order {used.order_id}")
    if body.fulfillment.hold_until is not None and (
        problem := _hold_problem(body.fulfillment.hold_until)
    ):
        raise InvalidRequest(problem)

    order_id = f"ord_{uuid.uuid4().hex[:20]}"
    fulfillment = body.fulfillment
    await db.insert_order(
        conn,
        {
            "order_id": order_id,
            "status": OrderStatus.PENDING.value,
            "channel": claims.channel.value,
            "customer_id": body.customer.id,
            "customer_email": body.customer.email,
            "quote_id": claims.quote_id,
            "method": fulfillment.method.value,
            "currency": claims.currency,
            "subtotal": claims.subtotal,
            "discount_total": claims.discount_total,
            "total": claims.total,
            "store_id": fulfillment.store_id,
            "address": fulfillment.address.model_dump() if fulfillment.address else None,
            "hold_until": fulfillment.hold_until,
            "idempotency_key": idempotency_key,
            "request_hash": fingerprint,
        },
        [
            {
                "order_id": order_id,
                "sku": line.sku,
                "quantity": line.quantity,
                "unit_price": line.unit_price,
                "unit_net_prices": list(line.unit_net_prices),
                "total": sum(line.unit_net_prices),
            }
            for line in claims.lines
        ],
    )
    uow.emit(
        OrderPlaced(
            order_id=order_id,
            channel=claims.channel,
            customer_id=body.customer.id,
            quote_id=claims.quote_id,
            method=fulfillment.method,
            lines=_lines(ordered),
            total=Money(amount=claims.total, currency=claims.currency),
        )
    )
    order = await _order(uow, order_id)
    status = OrderStatus.PENDING
    if not await _route(uow, order, ordered, "order placed", policy):
        status = OrderStatus.REJECTED
        await _reject_order(uow, order, "no location can fulfil the order")
    await uow.commit()
    return OrderAccepted(order_id=order_id, status=status)


def _hold_problem(hold_until: datetime) -> str | None:
    now = _now()
    if hold_until <= now:
        return "hold_until must be in the future"
    if hold_until - now > timedelta(days=7):
        return "hold_until may be at most 7 days ahead"
    return None


# Routing


def _site(row: dict[str, Any]) -> routing.Site:
    return routing.Site(
        location_id=row["location_id"],
        type=row["type"],
        lat=row["lat"],
        lon=row["lon"],
        capabilities=frozenset(row["capabilities"]),
        priority=row["priority"],
        ship_capacity_left=max(row["ship_capacity"] - row["assigned_today"], 0),
        available=row["available"],
        name=row["name"],
    )


async def _route(
    uow: UnitOfWork, order: Any, lines: dict[str, int], trigger: str, policy: Policy
) -> bool:
    """Plan fulfillments for `lines`, record the decision, and reserve; False if nothing can."""
    conn = uow.connection
    attempt = await db.next_attempt(conn, order.order_id)
    history = await db.fulfillments_of(conn, order.order_id)
    excluded = frozenset(f.location_id for f in history if f.status == F.REJECTED)
    method = FulfillmentMethod(order.method)
    address = order.address or {}
    request = routing.RoutingRequest(
        method=method.value,
        lines=lines,
        destination=routing.Point(address["lat"], address["lon"]) if address else None,
        store_id=order.store_id,
        excluded=excluded,
    )
    today = _today()
    result = routing.route_order(
        request, [_site(r) for r in await db.sites(conn, list(lines), today)], policy.rules
    )
    if attempt > policy.max_attempts and result.fulfillments:
        result = routing.RoutingResult(
            fulfillments=(),
            rejected_reason=f"gave up after {policy.max_attempts} routing attempts",
            candidates=result.candidates,
            rules_applied=(*result.rules_applied, f"max {policy.max_attempts} attempts"),
            explanation=result.explanation,
        )
    await db.save_attempt(
        conn, order.order_id, attempt, _decision(attempt, trigger, lines, excluded, result)
    )
    for n, planned in enumerate(result.fulfillments, start=1):
        fulfillment_id = f"{order.order_id}.{attempt}.{n}"
        await db.insert_fulfillment(
            conn,
            {
                "fulfillment_id": fulfillment_id,
                "order_id": order.order_id,
                "location_id": planned.location_id,
                "location_type": planned.location_type,
                "method": planned.method,
                "status": F.PENDING.value,
                "attempt": attempt,
                "pickup_store_id": planned.pickup_store_id,
                "transfer": planned.transfer,
                "hold_until": order.hold_until,
            },
            dict(planned.lines),
        )
        if method is FulfillmentMethod.DELIVERY or planned.transfer:
            await db.add_load(conn, planned.location_id, today, 1)
        uow.emit(
            FulfillmentAssigned(
                order_id=order.order_id,
                fulfillment_id=fulfillment_id,
                location_id=planned.location_id,
                location_type=planned.location_type,
                method=FulfillmentMethod(planned.method),
                lines=_lines(dict(planned.lines)),
                attempt=attempt,
            )
        )
        uow.emit(
            ReserveStock(
                order_id=order.order_id,
                fulfillment_id=fulfillment_id,
                reservation_id=fulfillment_id,
                location_id=planned.location_id,
                lines=_lines(dict(planned.lines)),
                hold_until=order.hold_until if method is FulfillmentMethod.RESERVE else None,
            )
        )
    return bool(result.fulfillments)


def _decision(
    attempt: int,
    trigger: str,
    lines: dict[str, int],
    excluded: frozenset[str],
    result: routing.RoutingResult,
) -> dict[str, Any]:
    return {
        "attempt": attempt,
        "at": _now().isoformat(),
        "trigger": trigger,
        "lines": dict(sorted(lines.items())),
        "excluded": sorted(excluded),
        "candidates": [
            {
                "location_id": c.location_id,
                "type": c.type,
                "distance_km": c.distance_km,
                "score": c.score,
                "eligible": c.eligible,
                "covers": dict(c.covers),
                "reasons": list(c.reasons),
            }
            for c in result.candidates
        ],
        "rules_applied": list(result.rules_applied),
        "chosen": [
            {
                "location_id": p.location_id,
                "location_type": p.location_type,
                "method": p.method,
                "lines": dict(p.lines),
                "pickup_store_id": p.pickup_store_id,
                "transfer": p.transfer,
            }
            for p in result.fulfillments
        ],
        "explanation": result.explanation,
        "rejected_reason": result.rejected_reason,
        "alternatives": list(result.alternatives),
    }


async def _settle(uow: UnitOfWork, order: Any) -> None:
    """Move the order to the status its fulfillments now imply, and say so."""
    statuses = [F(f.status) for f in await db.fulfillments_of(uow.connection, order.order_id)]
    current = OrderStatus(order.status)
    target = domain.status_after(statuses, FulfillmentMethod(order.method))
    if target is None or target is current or current in domain.TERMINAL_ORDER:
        return
    await db.set_order_status(uow.connection, order.order_id, target.value)
    if target is OrderStatus.COMPLETED:
        uow.emit(OrderCompleted(order_id=order.order_id))
    else:
        uow.emit(OrderConfirmed(order_id=order.order_id, status=target))


async def _release(uow: UnitOfWork, order: Any, to: FulfillmentStatus, reason: str) -> None:
    """Close every fulfillment still holding stock and give that stock back."""
    for f in await db.fulfillments_of(uow.connection, order.order_id):
        if F(f.status) in domain.HOLDING:
            await db.update_fulfillment(
                uow.connection, f.fulfillment_id, status=to.value, status_reason=reason
            )
            uow.emit(
                ReleaseStock(
                    order_id=order.order_id, reservation_id=f.fulfillment_id, reason=reason
                )
            )


async def _reject_order(uow: UnitOfWork, order: Any, reason: str) -> None:
    await _release(uow, order, F.CANCELLED, f"order rejected: {reason}")
    await db.set_order_status(uow.connection, order.order_id, OrderStatus.REJECTED.value, reason)
    uow.emit(OrderRejected(order_id=order.order_id, reason=reason))


async def _reroute(uow: UnitOfWork, order: Any, failed: Any, trigger: str, policy: Policy) -> None:
    """Plan the failed fulfillment's lines again without the locations that failed."""
    if OrderStatus(order.status) in domain.TERMINAL_ORDER:
        return
    lines = (await db.fulfillment_lines(uow.connection, [failed.fulfillment_id]))[
        failed.fulfillment_id
    ]
    if await _route(uow, order, lines, trigger, policy):
        await _settle(uow, order)
    else:
        attempts = await db.attempts(uow.connection, order.order_id)
        await _reject_order(
            uow, order, attempts[-1]["rejected_reason"] or "no location left to try"
        )


# Saga: inventory's answers


async def on_stock_reserved(event: StockReserved, uow: UnitOfWork) -> None:
    order = await _order(uow, event.order_id)
    f = await db.get_fulfillment(uow.connection, event.reservation_id)
    if f is None or F(f.status) is not F.PENDING:
        # Cancelled while the reservation was in flight: its ReleaseStock is already queued
        # behind the ReserveStock on the same partition, so inventory gives the stock back.
        return
    await db.update_fulfillment(uow.connection, f.fulfillment_id, status=F.RESERVED.value)
    await _settle(uow, order)


async def on_reservation_rejected(
    event: StockReservationRejected, uow: UnitOfWork, policy: Policy
) -> None:
    order = await _order(uow, event.order_id)
    f = await db.get_fulfillment(uow.connection, event.reservation_id)
    if f is None or F(f.status) is not F.PENDING:
        return
    await db.update_fulfillment(
        uow.connection, f.fulfillment_id, status=F.REJECTED.value, status_reason=event.detail
    )
    uow.emit(
        FulfillmentRejected(
            order_id=order.order_id,
            fulfillment_id=f.fulfillment_id,
            location_id=f.location_id,
            reason=f"reservation rejected: {event.detail}",
        )
    )
    await _reroute(
        uow, order, f, f"reservation rejected at {f.location_id}: {event.detail}", policy
    )


async def on_reservation_expired(event: ReservationExpired, uow: UnitOfWork) -> None:
    order = await _order(uow, event.order_id)
    f = await db.get_fulfillment(uow.connection, event.reservation_id)
    if f is None or F(f.status) not in domain.HOLDING:
        return
    await db.update_fulfillment(
        uow.connection, f.fulfillment_id, status=F.EXPIRED.value, status_reason="hold expired"
    )
    await _expire(uow, order, "the hold expired before collection")


async def _expire(uow: UnitOfWork, order: Any, reason: str) -> None:
    if OrderStatus(order.status) in domain.TERMINAL_ORDER:
        return
    await _release(uow, order, F.EXPIRED, reason)
    await db.set_order_status(uow.connection, order.order_id, OrderStatus.EXPIRED.value, reason)
    uow.emit(OrderExpired(order_id=order.order_id, reason=reason))


async def on_commit_rejected(event: StockCommitRejected, uow: UnitOfWork) -> None:
    log.error(
        "inventory refused to commit %s of order %s: %s",
        event.reservation_id,
        event.order_id,
        event.detail,
    )


async def project_availability(event: AvailabilityChanged, uow: UnitOfWork) -> None:
    values = {
        "sku": event.sku,
        "location_id": event.location_id,
        "available": event.available,
        "version": event.version,
    }
    await db.project_availability(uow.connection, values)
    await uow.commit()


async def project_location(event: LocationChanged, uow: UnitOfWork) -> None:
    values = event.model_dump(mode="python")
    values["capabilities"] = [c.value for c in event.capabilities]
    values["type"] = event.type.value
    await db.project_location(uow.connection, values)
    await uow.commit()


async def expire_overdue_pickups(uow: UnitOfWork, limit: int = 100) -> int:
    """Click & collect orders not collected within the pickup window: stock goes back."""
    overdue = await db.overdue_pickups(uow.connection, _now(), limit)
    for row in overdue:
        order = await _order(uow, row.order_id)
        f = await db.get_fulfillment(uow.connection, row.fulfillment_id)
        if f is not None and F(f.status) is F.READY_FOR_PICKUP:
            await _expire(uow, order, "not collected within the pickup window")
    await uow.commit()
    return len(overdue)


# Fulfillment actions (store staff, partners)


async def _fulfillment(uow: UnitOfWork, fulfillment_id: str) -> tuple[Any, Any]:
    f = await db.get_fulfillment(uow.connection, fulfillment_id)
    if f is None:
        raise NotFound(f"fulfillment {fulfillment_id!r} does not exist")
    order = await _order(uow, f.order_id)
    f = await db.get_fulfillment(uow.connection, fulfillment_id)  # read again under the order lock
    return order, f


def _step(f: Any, target: FulfillmentStatus, what: str) -> None:
    try:
        domain.transition(F(f.status), target, what)
    except domain.IllegalTransition as exc:
        raise Conflict(str(exc)) from None


async def mark_ready(fulfillment_id: str, uow: UnitOfWork, policy: Policy) -> None:
    """The store has picked the items: ready for the customer to collect."""
    order, f = await _fulfillment(uow, fulfillment_id)
    if f.method == FulfillmentMethod.DELIVERY:
        raise Conflict("a delivery is shipped, not made ready for pickup")
    _step(f, F.READY_FOR_PICKUP, "mark it ready")
    deadline = _now() + policy.pickup_window if f.method == FulfillmentMethod.PICKUP else None
    await db.update_fulfillment(
        uow.connection, fulfillment_id, status=F.READY_FOR_PICKUP.value, pickup_deadline=deadline
    )
    uow.emit(
        FulfillmentReady(
            order_id=order.order_id, fulfillment_id=fulfillment_id, location_id=f.location_id
        )
    )
    await uow.commit()


async def hand_over(fulfillment_id: str, uow: UnitOfWork) -> None:
    """The customer collected: the stock is committed."""
    order, f = await _fulfillment(uow, fulfillment_id)
    if f.method == FulfillmentMethod.DELIVERY:
        raise Conflict("a delivery is shipped, not handed over")
    _step(f, F.PICKED_UP, "hand it over")
    await db.update_fulfillment(uow.connection, fulfillment_id, status=F.PICKED_UP.value)
    uow.emit(CommitStock(order_id=order.order_id, reservation_id=fulfillment_id))
    uow.emit(
        FulfillmentPickedUp(
            order_id=order.order_id, fulfillment_id=fulfillment_id, location_id=f.location_id
        )
    )
    await _settle(uow, order)
    await uow.commit()


async def ship(fulfillment_id: str, body: ShipIn, uow: UnitOfWork) -> None:
    """Handed to the carrier: the stock is committed."""
    order, f = await _fulfillment(uow, fulfillment_id)
    if f.method != FulfillmentMethod.DELIVERY:
        raise Conflict(f"a {f.method} fulfillment is collected in store, not shipped")
    _step(f, F.SHIPPED, "ship it")
    await db.update_fulfillment(
        uow.connection,
        fulfillment_id,
        status=F.SHIPPED.value,
        carrier=body.carrier,
        tracking_number=body.tracking_number,
    )
    uow.emit(CommitStock(order_id=order.order_id, reservation_id=fulfillment_id))
    uow.emit(
        FulfillmentShipped(
            order_id=order.order_id,
            fulfillment_id=fulfillment_id,
            location_id=f.location_id,
            carrier=body.carrier,
            tracking_number=body.tracking_number,
        )
    )
    await _settle(uow, order)
    await uow.commit()


async def accept(fulfillment_id: str, uow: UnitOfWork) -> None:
    """A partner takes the fulfillment on."""
    order, f = await _fulfillment(uow, fulfillment_id)
    if f.location_type != "dropship":
        raise Conflict("only dropship fulfillments are accepted by a partner")
    _step(f, F.ACCEPTED, "accept it")
    await db.update_fulfillment(uow.connection, fulfillment_id, status=F.ACCEPTED.value)
    uow.emit(
        FulfillmentAccepted(
            order_id=order.order_id, fulfillment_id=fulfillment_id, location_id=f.location_id
        )
    )
    await uow.commit()


async def reject(fulfillment_id: str, reason: str, uow: UnitOfWork, policy: Policy) -> None:
    """A short pick or a partner's refusal: release the stock and route those lines again."""
    order, f = await _fulfillment(uow, fulfillment_id)
    _step(f, F.REJECTED, "reject it")
    await db.update_fulfillment(
        uow.connection, fulfillment_id, status=F.REJECTED.value, status_reason=reason
    )
    uow.emit(
        ReleaseStock(
            order_id=order.order_id, reservation_id=fulfillment_id, reason=f"rejected: {reason}"
        )
    )
    uow.emit(
        FulfillmentRejected(
            order_id=order.order_id,
            fulfillment_id=fulfillment_id,
            location_id=f.location_id,
            reason=reason,
        )
    )
    await _reroute(uow, order, f, f"rejected at {f.location_id}: {reason}", policy)
    await uow.commit()


async def cancel(order_id: str, reason: str, uow: UnitOfWork) -> None:
    """Cancel before anything left a location: every held unit goes back."""
    order = await _order(uow, order_id)
    status = OrderStatus(order.status)
    if status is OrderStatus.CANCELLED:
        return
    if status in domain.TERMINAL_ORDER:
        raise Conflict(f"the order is already {status.value}")
    statuses = [F(f.status) for f in await db.fulfillments_of(uow.connection, order_id)]
    if not domain.can_cancel(statuses):
        raise Conflict("part of the order has already shipped or been collected; return it instead")
    await _release(uow, order, F.CANCELLED, reason)
    await db.set_order_status(uow.connection, order_id, OrderStatus.CANCELLED.value, reason)
    uow.emit(OrderCancelled(order_id=order_id, reason=reason))
    await uow.commit()


# Returns


async def accept_return(body: ReturnIn, idempotency_key: str | None, uow: UnitOfWork) -> Return:
    """Take units back in a store: refund exactly what they were paid, restock resellable ones."""
    conn = uow.connection
    fingerprint = request_hash(body)
    if idempotency_key is not None and (earlier := await db.return_by_key(conn, idempotency_key)):
        if earlier.request_hash != fingerprint:
            raise InvalidRequest("this Idempotency-Key was used for a different return")
        return return_view(earlier, await db.get_order(conn, earlier.order_id))
    order = await _order(uow, body.order_id)
    if OrderStatus(order.status) is not OrderStatus.COMPLETED:
        raise Conflict(
            f"only a collected or delivered order can be returned; this one is {order.status}"
        )
    store = await db.get_location(conn, body.store_id)
    if store is None or "returns" not in store.capabilities:
        raise InvalidRequest(f"{body.store_id} does not take returns")
    bought = {line.sku: line for line in await db.order_lines(conn, body.order_id, lock=True)}
    returned: dict[str, int] = {}
    lines: list[dict[str, Any]] = []
    restock: dict[str, int] = {}
    for line in body.lines:
        sold = bought.get(line.sku)
        if sold is None:
            raise InvalidRequest(f"{line.sku} is not part of order {body.order_id}")
        already = sold.returned_quantity + returned.get(line.sku, 0)
        try:
            refund = domain.refund_for(sold.unit_net_prices, already, line.quantity)
        except ValueError as exc:
            raise InvalidRequest(f"{line.sku}: {exc}") from None
        returned[line.sku] = returned.get(line.sku, 0) + line.quantity
        lines.append(
            {
                "sku": line.sku,
                "quantity": line.quantity,
                "condition": line.condition.value,
                "refund": refund,
            }
        )
        if line.condition is ItemCondition.RESELLABLE:
            restock[line.sku] = restock.get(line.sku, 0) + line.quantity
    total_refund = sum(line["refund"] for line in lines)
    return_id = f"ret_{uuid.uuid4().hex[:20]}"
    await db.add_returned(conn, body.order_id, returned, total_refund)
    await db.insert_return(
        conn,
        {
            "return_id": return_id,
            "order_id": body.order_id,
            "store_id": body.store_id,
            "refund": total_refund,
            "reason": body.reason,
            "lines": lines,
            "idempotency_key": idempotency_key,
            "request_hash": fingerprint,
        },
    )
    if restock:
        uow.emit(
            RestockReturn(
                order_id=body.order_id,
                return_id=return_id,
                location_id=body.store_id,
                lines=_lines(restock),
            )
        )
    row = await db.get_return(conn, return_id)
    view = return_view(row, order)
    uow.emit(
        ReturnAccepted(
            order_id=body.order_id, return_id=return_id, store_id=body.store_id, lines=view.lines
        )
    )
    uow.emit(RefundIssued(order_id=body.order_id, return_id=return_id, amount=view.refund))
    await uow.commit()
    return view


def return_view(row: Any, order: Any) -> Return:
    def money(amount: int) -> Money:
        return Money(amount=amount, currency=order.currency)

    return Return(
        return_id=row.return_id,
        order_id=row.order_id,
        store_id=row.store_id,
        refund=money(row.refund),
        lines=tuple(
            ReturnLine(
                sku=line["sku"],
                quantity=line["quantity"],
                condition=ItemCondition(line["condition"]),
                refund=money(line["refund"]),
            )
            for line in row.lines
        ),
        reason=row.reason,
        created_at=row.created_at,
    )
