"""What every orders use case shares: the policy, the clock, and loading an order."""

from __future__ import annotations

import contextlib
import hashlib
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Protocol

from services.contracts.inventory import Location, StockLevel, Supply
from services.infrastructure.errors import Conflict, InvalidRequest, NotFound
from services.infrastructure.quote_tokens import SigningKeys
from services.orders import domain, routing
from services.orders.domain import Order
from services.orders.repository import OrdersUnitOfWork

log = logging.getLogger(__name__)


class StockAuthority(Protocol):
    """Inventory, asked directly for what is in stock now (services/orders/inventory_client.py)."""

    async def levels(self, skus: Sequence[str]) -> Sequence[StockLevel]: ...

    async def location(self, location_id: str) -> Location | None: ...

    async def incoming(self, skus: Sequence[str]) -> Sequence[Supply]: ...


@dataclass(frozen=True)
class Policy:
    """What the saga needs beyond the database: keys to check quotes, routing rules, and
    inventory to ask when the projection cannot place an order (None: trust the projection)."""

    keys: SigningKeys
    rules: routing.RoutingRules
    max_attempts: int
    pickup_window: timedelta
    stock: StockAuthority | None = None
    consolidation_window: timedelta = timedelta(minutes=240)
    partner_accept_window: timedelta = timedelta(minutes=60)


def now() -> datetime:
    return datetime.now(UTC)


def today() -> date:
    return now().date()


def request_hash(body: Any) -> str:
    return hashlib.sha256(body.model_dump_json().encode()).hexdigest()


async def order_of(uow: OrdersUnitOfWork, order_id: str) -> Order:
    order = await uow.orders.get(order_id)
    if order is None:
        raise NotFound(f"order {order_id!r} does not exist")
    return order


async def order_with(uow: OrdersUnitOfWork, fulfillment_id: str) -> Order:
    order = await uow.orders.for_fulfillment(fulfillment_id)
    if order is None:
        raise NotFound(f"fulfillment {fulfillment_id!r} does not exist")
    return order


async def order_for_event(uow: OrdersUnitOfWork, order_id: str, event: object) -> Order | None:
    """The order an inventory event is about, or None (logged) when this service never placed
    it: another system's order, or one from before a data reset. Such an answer is not retried:
    nothing here could ever apply it."""
    order = await uow.orders.get(order_id)
    if order is None:
        log.warning("%s for unknown order %s ignored", type(event).__name__, order_id)
    return order


@contextlib.contextmanager
def as_problems() -> Iterator[None]:
    """The order's refusals, as the client sees them: a conflict with the order as it is (409),
    or a request for something it never had (422)."""
    try:
        yield
    except domain.RuleViolation as exc:
        raise Conflict(str(exc)) from None
    except domain.InvalidChange as exc:
        raise InvalidRequest(str(exc)) from None
