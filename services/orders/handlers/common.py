"""What every orders use case shares: the policy, the clock, and the order lock."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Protocol

from services.contracts.inventory import (
    Location,
    StockLevel,
    StockLine,
)
from services.contracts.orders import (
    FulfillmentStatus,
)
from services.infrastructure.database import UnitOfWork
from services.infrastructure.errors import NotFound
from services.infrastructure.quote_tokens import SigningKeys
from services.orders import db, routing

log = logging.getLogger(__name__)
F = FulfillmentStatus


class StockAuthority(Protocol):
    """Inventory, asked directly for what is in stock now (services/orders/inventory_client.py)."""

    async def levels(self, skus: Sequence[str]) -> Sequence[StockLevel]: ...

    async def location(self, location_id: str) -> Location | None: ...


@dataclass(frozen=True)
class Policy:
    """What the saga needs beyond the database: keys to check quotes, routing rules, and
    inventory to ask when the projection cannot place an order (None: trust the projection)."""

    keys: SigningKeys
    rules: routing.RoutingRules
    max_attempts: int
    pickup_window: timedelta
    backorder: bool = False
    backorder_max_wait: timedelta = timedelta(days=7)
    stock: StockAuthority | None = None


def now() -> datetime:
    return datetime.now(UTC)


def today() -> date:
    return now().date()


def request_hash(body: Any) -> str:
    return hashlib.sha256(body.model_dump_json().encode()).hexdigest()


def lines_of(quantities: dict[str, int]) -> tuple[StockLine, ...]:
    return tuple(StockLine(sku=sku, quantity=q) for sku, q in sorted(quantities.items()))


async def locked_order(uow: UnitOfWork, order_id: str) -> Any:
    order = await db.get_order(uow.connection, order_id, lock=True)
    if order is None:
        raise NotFound(f"order {order_id!r} does not exist")
    return order


async def order_for_event(uow: UnitOfWork, order_id: str, event: object) -> Any | None:
    """The locked order an inventory event is about, or None (logged) when this service never
    placed it: another system's order, or one from before a data reset. Such an answer is not
    retried: nothing here could ever apply it."""
    order = await db.get_order(uow.connection, order_id, lock=True)
    if order is None:
        log.warning("%s for unknown order %s ignored", type(event).__name__, order_id)
    return order
