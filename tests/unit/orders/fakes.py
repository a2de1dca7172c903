"""In-memory stand-ins for orders' unit of work (cosmicpython's FakeRepository and FakeUnitOfWork):
handlers run against them exactly as against the database, with no I/O."""

from __future__ import annotations

import copy
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from types import SimpleNamespace
from typing import Any

from services.contracts.base import Message
from services.contracts.inventory import Location, StockLevel, Supply, SupplyStatus
from services.contracts.pricing import QuoteTokenClaims, TokenLine
from services.infrastructure.errors import ServiceUnavailable
from services.infrastructure.quote_tokens import SigningKeys, sign_quote_token
from services.orders.domain import Order, TakenBack, address_key
from services.orders.routing import ShipWith

KEYS = SigningKeys.parse("unit:unit-test-signing-key-0123456789-abcdefgh")


def quote_token(lines: dict[str, tuple[int, int]], *, channel: str = "web") -> str:
    """A signed token for `lines` (sku -> (quantity, unit price)), no discounts."""
    now = int(time.time())
    total = sum(q * price for q, price in lines.values())
    claims = QuoteTokenClaims(
        quote_id=f"q-{uuid.uuid4().hex[:12]}",
        channel=channel,
        currency="EUR",
        lines=tuple(
            TokenLine(sku=sku, quantity=q, unit_price=price, net=((price, q),))
            for sku, (q, price) in sorted(lines.items())
        ),
        subtotal=total,
        discount_total=0,
        total=total,
        price_version=1,
        iat=now,
        exp=now + 600,
    )
    return sign_quote_token(claims, KEYS)


@dataclass
class FakeSite:
    location_id: str
    type: str
    lat: float
    lon: float
    capabilities: tuple[str, ...] = ("ship", "pickup", "returns")
    priority: int = 10
    ship_capacity: int = 100
    partner_id: str | None = None


class FakeNetwork:
    """Locations and projected availability; `behind` holds what inventory knows and the
    projection does not show yet."""

    def __init__(self, sites: Iterable[FakeSite]) -> None:
        self.locations = {s.location_id: s for s in sites}
        self.available: dict[tuple[str, str], int] = {}
        self.load: dict[str, int] = {}

    async def sites(self, skus: Sequence[str], day: date) -> list[dict[str, Any]]:
        return [
            {
                "location_id": s.location_id,
                "type": s.type,
                "lat": s.lat,
                "lon": s.lon,
                "capabilities": list(s.capabilities),
                "priority": s.priority,
                "ship_capacity": s.ship_capacity,
                "assigned_today": self.load.get(s.location_id, 0),
                "available": {
                    sku: self.available[sku, s.location_id]
                    for sku in skus
                    if (sku, s.location_id) in self.available
                },
                "name": s.location_id,
                "partner_id": s.partner_id,
            }
            for s in sorted(self.locations.values(), key=lambda s: s.location_id)
        ]

    async def add_load(self, location_id: str, day: date, parcels: int) -> None:
        self.load[location_id] = self.load.get(location_id, 0) + parcels

    async def location(self, location_id: str) -> Any | None:
        return self.locations.get(location_id)

    async def update_levels(self, levels: Iterable[Any]) -> None:
        for level in levels:
            self.available[level.sku, level.location_id] = level.available

    async def known_locations(self, location_ids: Iterable[str]) -> set[str]:
        return set(location_ids) & set(self.locations)

    async def learn_location(self, location: Any) -> None:
        self.locations[location.location_id] = FakeSite(
            location.location_id,
            location.type.value,
            location.lat,
            location.lon,
            tuple(c.value for c in location.capabilities),
            location.priority,
            location.ship_capacity,
            location.partner_id,
        )


class FakeInventory:
    """The authority: what inventory would answer; `away` makes it not answer."""

    def __init__(self) -> None:
        self.levels_by_key: dict[tuple[str, str], int] = {}
        self.locations: dict[str, Location] = {}
        self.supplies: list[Supply] = []
        self.away = False
        self.asked: list[list[str]] = []

    def expect(self, location_id: str, sku: str, units: int, at: datetime) -> None:
        """A supply of `units` on its way to `location_id`, nothing promised yet."""
        self.supplies.append(
            Supply(
                supply_id=f"po-{len(self.supplies) + 1}",
                location_id=location_id,
                sku=sku,
                quantity=units,
                received=0,
                promised=0,
                promisable=units,
                expected_at=at,
                status=SupplyStatus.INCOMING,
                created_at=datetime(2026, 1, 1),
                updated_at=datetime(2026, 1, 1),
            )
        )

    async def incoming(self, skus: Sequence[str]) -> list[Supply]:
        if self.away:
            raise ServiceUnavailable("inventory could not be asked for incoming stock (test)")
        return [s for s in self.supplies if s.sku in skus]

    async def levels(self, skus: Sequence[str]) -> list[StockLevel]:
        self.asked.append(list(skus))
        if self.away:
            raise ServiceUnavailable("inventory could not be asked for current stock (test)")
        return [
            StockLevel(
                location_id=location_id,
                sku=sku,
                on_hand=available,
                reserved=0,
                safety_stock=0,
                available=available,
                version=100,
                updated_at=datetime(2026, 1, 1),
            )
            for (sku, location_id), available in sorted(self.levels_by_key.items())
            if sku in skus
        ]

    async def location(self, location_id: str) -> Location | None:
        return self.locations.get(location_id)


class FakeOrderRepository:
    def __init__(self) -> None:
        self.stored: dict[str, Order] = {}
        self._seen: dict[str, Order] = {}
        self.keys: dict[str, tuple[str, str | None]] = {}
        self.reserved_at: dict[str, datetime] = {}
        """When each fulfillment was saved reserved (the database's `updated_at`)."""

    @property
    def seen(self) -> list[Order]:
        return list(self._seen.values())

    def add(self, order: Order) -> None:
        self._seen[order.order_id] = order

    async def get(self, order_id: str) -> Order | None:
        if order_id not in self._seen and order_id in self.stored:
            # A copy, as a database would hand out: changes count only once committed.
            self._seen[order_id] = copy.deepcopy(self.stored[order_id])
        return self._seen.get(order_id)

    async def for_fulfillment(self, fulfillment_id: str) -> Order | None:
        for order in self.stored.values():
            if order.fulfillment(fulfillment_id) is not None:
                return await self.get(order.order_id)
        return None

    async def by_idempotency_key(self, key: str) -> tuple[str, str | None] | None:
        return self.keys.get(key)

    async def by_quote(self, quote_id: str) -> str | None:
        return next((o.order_id for o in self.stored.values() if o.quote_id == quote_id), None)

    async def overdue_pickups(self, now: datetime, limit: int) -> list[tuple[str, str]]:
        return [
            (o.order_id, f.fulfillment_id)
            for o in self.stored.values()
            for f in o.fulfillments
            if f.status.value == "ready_for_pickup"
            and f.pickup_deadline
            and f.pickup_deadline <= now
        ][:limit]

    async def unaccepted_partner_fulfillments(
        self, reserved_before: datetime, limit: int
    ) -> list[tuple[str, str]]:
        waiting = [
            (self.reserved_at[f.fulfillment_id], o.order_id, f.fulfillment_id)
            for o in self.stored.values()
            for f in o.fulfillments
            if f.location_type == "dropship"
            and f.status.value == "reserved"
            and self.reserved_at[f.fulfillment_id] <= reserved_before
        ]
        return [(order_id, fid) for _, order_id, fid in sorted(waiting)][:limit]

    async def parcels_to_join(self, order: Order, since: datetime) -> list[ShipWith]:
        key = address_key(order.address)
        return [
            ShipWith(o.order_id, f.location_id, f.shipment_id or f.fulfillment_id)
            for o in self.stored.values()
            if o.order_id != order.order_id
            and o.customer_id == order.customer_id
            and address_key(o.address) == key
            and o.method is order.method
            for f in o.fulfillments
            if f.status.value in ("pending", "reserved", "accepted")
        ]

    async def shipment_of(self, fulfillment_id: str) -> list[tuple[str, str]]:
        shipment = next(
            (
                f.shipment_id
                for o in self.stored.values()
                for f in o.fulfillments
                if f.fulfillment_id == fulfillment_id
            ),
            None,
        )
        return sorted(
            (o.order_id, f.fulfillment_id)
            for o in self.stored.values()
            for f in o.fulfillments
            if f.fulfillment_id == fulfillment_id or (shipment and f.shipment_id == shipment)
        )

    def save(self) -> None:
        for order in self._seen.values():
            order.decisions.clear()
            for f in order.fulfillments:
                if f.status.value == "reserved":
                    self.reserved_at.setdefault(f.fulfillment_id, datetime.now(UTC))
            self.stored[order.order_id] = copy.deepcopy(order)
            if order.idempotency_key:
                self.keys[order.idempotency_key] = (order.order_id, order.request_hash)


class FakeReturnBook:
    def __init__(self) -> None:
        self.rows: dict[str, Any] = {}

    async def by_idempotency_key(self, key: str) -> Any | None:
        return next((r for r in self.rows.values() if r.idempotency_key == key), None)

    async def get(self, return_id: str) -> Any | None:
        return self.rows.get(return_id)

    async def add(
        self, order_id: str, taken: TakenBack, idempotency_key: str | None, request_hash: str
    ) -> None:
        self.rows[taken.return_id] = SimpleNamespace(
            return_id=taken.return_id,
            order_id=order_id,
            store_id=taken.store_id,
            refund=taken.refund.amount,
            reason=taken.reason,
            lines=[
                {
                    "sku": line.sku,
                    "quantity": line.quantity,
                    "condition": line.condition.value,
                    "refund": line.refund.amount,
                }
                for line in taken.lines
            ],
            idempotency_key=idempotency_key,
            request_hash=request_hash,
            created_at=datetime(2026, 1, 1),
        )


@dataclass
class FakeOrdersUnitOfWork:
    """Committed messages land in `published`; uncommitted work is dropped, as on rollback."""

    orders: FakeOrderRepository
    network: FakeNetwork
    returns: FakeReturnBook = field(default_factory=FakeReturnBook)
    published: list[Message] = field(default_factory=list)
    commits: int = 0

    async def __aenter__(self) -> FakeOrdersUnitOfWork:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.orders._seen.clear()

    def emit(self, message: Message) -> None:
        self.published.append(message)

    async def commit(self) -> None:
        for order in self.orders.seen:
            self.published.extend(order.messages)
            order.messages.clear()
        self.orders.save()
        self.commits += 1

    def types(self) -> list[str]:
        return [type(m).__name__ for m in self.published]
