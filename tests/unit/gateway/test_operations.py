"""The command center's figures, put together by the gateway from what each service answers for
itself: a service that does not answer is named and the rest is still answered."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest
from fastapi.routing import APIRoute
from pydantic import TypeAdapter

from services.contracts.operations import (
    ExceptionItem,
    ExceptionKind,
    MessagingStatus,
    OperationsExceptions,
)
from services.gateway import handlers
from services.gateway.api import operations
from services.gateway.downstream import Downstream, Reply
from services.infrastructure.errors import ServiceUnavailable

NOW = datetime.now(UTC)


class FakeService:
    """A service behind the gateway answering GETs from a table of path -> body; a path it does
    not know is a 404, and a service marked `down` does not answer at all."""

    def __init__(self, name: str, answers: Mapping[str, Any], *, down: bool = False) -> None:
        self.name = name
        self.answers = dict(answers)
        self.down = down
        self.asked: list[tuple[str, dict[str, Any]]] = []

    async def call(
        self, method: str, path: str, *, params: Mapping[str, Any] | None = None, **_: Any
    ) -> Reply:
        self.asked.append((path, dict(params or {})))
        if self.down:
            raise ServiceUnavailable(f"{self.name} is unavailable", unavailable=[self.name])
        if path not in self.answers:
            return Reply(404, b'{"detail": "no"}', "application/problem+json")
        return Reply(200, json.dumps(self.answers[path], default=str).encode(), "application/json")

    async def aclose(self) -> None:
        pass


def messaging(service: str, **values: Any) -> dict[str, Any]:
    return {
        "service": service,
        "dead_letters": 0,
        "oldest_dead_letter_at": None,
        "outbox_backlog": 0,
        "oldest_unpublished_at": None,
        "consumer_lag": [],
        **values,
    }


def gateway(**services: FakeService) -> handlers.Gateway:
    def service(name: str) -> Downstream:
        found = services.get(name) or FakeService(name, {"/operations/messaging": messaging(name)})
        return cast(Downstream, found)

    return handlers.Gateway(
        inventory=service("inventory"),
        pricing=service("pricing"),
        orders=service("orders"),
        webhooks=service("webhooks"),
        authenticator=cast(handlers.Authenticator, None),
        rate_limiter=cast(handlers.RateLimiter, None),
        idempotency=cast(handlers.Idempotency, None),
        operations_timeout=0.5,
    )


ORDER_COUNTS = {
    "window_minutes": 60,
    "orders_per_minute": [
        {"minute": "2026-11-21T10:13:00Z", "channel": "web", "status": "confirmed", "orders": 3},
        {"minute": "2026-11-21T10:14:00Z", "channel": "web", "status": "pending", "orders": 1},
        {"minute": "2026-11-21T10:14:00Z", "channel": "app", "status": "completed", "orders": 2},
    ],
}
QUOTE_COUNTS = {
    "window_minutes": 60,
    "quotes_by_channel": [{"channel": "web", "quotes": 8}, {"channel": "store", "quotes": 5}],
}


async def test_the_summary_counts_orders_per_channel_and_their_conversion() -> None:
    orders = FakeService("orders", {"/operations/orders": ORDER_COUNTS})
    pricing = FakeService("pricing", {"/operations/quotes": QUOTE_COUNTS})
    summary = await handlers.operations_summary(gateway(orders=orders, pricing=pricing), 60)
    assert summary.window_minutes == 60
    assert summary.unavailable == ()
    assert len(summary.orders_per_minute) == 3
    by_channel = {c.channel.value: c.orders for c in summary.orders_by_channel}
    assert by_channel == {"web": 4, "app": 2, "store": 0, "marketplace": 0, "partner": 0}
    conversion = {c.channel.value: (c.quotes, c.orders, c.rate) for c in summary.conversion}
    assert conversion["web"] == (8, 4, 0.5)
    assert conversion["store"] == (5, 0, 0.0)
    assert conversion["app"] == (0, 2, None)  # no quotes: no rate
    assert orders.asked == [("/operations/orders", {"minutes": 60})]
    assert pricing.asked == [("/operations/quotes", {"minutes": 60})]


async def test_the_summary_without_pricing_leaves_out_the_conversion_only() -> None:
    orders = FakeService("orders", {"/operations/orders": ORDER_COUNTS})
    pricing = FakeService("pricing", {}, down=True)
    summary = await handlers.operations_summary(gateway(orders=orders, pricing=pricing), 60)
    assert summary.unavailable == ("pricing",)
    assert summary.conversion == ()
    assert sum(c.orders for c in summary.orders_by_channel) == 6


async def test_the_summary_without_orders_has_no_figures_and_says_why() -> None:
    orders = FakeService("orders", {})  # an orders that does not know the route: a 404
    pricing = FakeService("pricing", {"/operations/quotes": QUOTE_COUNTS})
    summary = await handlers.operations_summary(gateway(orders=orders, pricing=pricing), 60)
    assert summary.unavailable == ("orders",)
    assert summary.orders_per_minute == summary.orders_by_channel == summary.conversion == ()


async def test_a_service_that_hangs_is_named_within_the_timeout() -> None:
    class Hanging(FakeService):
        async def call(self, method: str, path: str, **kwargs: Any) -> Reply:
            await asyncio.sleep(10)
            raise AssertionError("never")

    orders = FakeService("orders", {"/operations/orders": ORDER_COUNTS})
    pricing = Hanging("pricing", {})
    summary = await asyncio.wait_for(
        handlers.operations_summary(gateway(orders=orders, pricing=pricing), 60), timeout=2
    )
    assert summary.unavailable == ("pricing",)


async def test_exceptions_come_from_every_service_most_urgent_first() -> None:
    old = NOW - timedelta(minutes=10)
    pending = ExceptionItem(
        kind=ExceptionKind.PENDING_TOO_LONG,
        subject="o-1",
        service="orders",
        detail="pending",
        since=old,
    )
    overdue = ExceptionItem(
        kind=ExceptionKind.PICKUP_OVERDUE,
        subject="f-1",
        service="orders",
        detail="overdue",
        since=NOW - timedelta(hours=2),
    )
    orders = FakeService(
        "orders",
        {
            "/operations/messaging": messaging("orders"),
            "/operations/exceptions": OperationsExceptions(
                generated_at=NOW, items=(overdue, pending)
            ).model_dump(mode="json"),
        },
    )
    inventory = FakeService(
        "inventory",
        {
            "/operations/messaging": messaging(
                "inventory",
                dead_letters=2,
                oldest_dead_letter_at=old.isoformat(),
                outbox_backlog=40,
                oldest_unpublished_at=(NOW - timedelta(seconds=30)).isoformat(),
                consumer_lag=[
                    {"group": "inventory", "topic": "inventory.commands.v1", "lag": 7},
                    {"group": "inventory", "topic": "orders.events.v1", "lag": 0},
                ],
            )
        },
    )
    # Published within the delay: the relay is keeping up.
    pricing = FakeService(
        "pricing",
        {
            "/operations/messaging": messaging(
                "pricing", outbox_backlog=3, oldest_unpublished_at=NOW.isoformat()
            )
        },
    )
    webhooks = FakeService("webhooks", {}, down=True)
    found = await handlers.operations_exceptions(
        gateway(orders=orders, inventory=inventory, pricing=pricing, webhooks=webhooks), 45
    )
    assert [(i.kind.value, i.service, i.subject, i.count) for i in found.items] == [
        ("service_unavailable", "webhooks", None, None),
        ("dead_letters", "inventory", None, 2),
        ("outbox_backlog", "inventory", None, 40),
        ("consumer_lag", "inventory", "inventory", 7),
        ("pending_too_long", "orders", "o-1", None),
        ("pickup_overdue", "orders", "f-1", None),
    ]
    assert ("/operations/exceptions", {"pending_seconds": 45}) in orders.asked
    assert "inventory.commands.v1 by 7" in found.items[3].detail


def test_the_list_is_capped_keeping_the_most_urgent() -> None:
    items = [
        ExceptionItem(
            kind=ExceptionKind.PENDING_TOO_LONG,
            subject=f"o-{n}",
            detail="pending",
            since=NOW - timedelta(seconds=n),
        )
        for n in range(300)
    ]
    items.append(ExceptionItem(kind=ExceptionKind.DEAD_LETTERS, service="pricing", detail="x"))
    kept = handlers.most_urgent(items, 200)
    assert len(kept) == 200
    assert kept[0].kind is ExceptionKind.DEAD_LETTERS
    assert kept[1].subject == "o-299"  # the longest waiting next


def test_messaging_without_trouble_is_no_exception() -> None:
    quiet = MessagingStatus.model_validate(messaging("orders"))
    assert handlers.messaging_exceptions(quiet, NOW, 5.0) == []


async def test_stores_lists_every_store_also_one_without_work() -> None:
    inventory = FakeService(
        "inventory",
        {
            "/locations": [
                {"location_id": "store-b", "name": "B", "type": "store", "extra": "ignored"},
                {"location_id": "store-a", "name": "A", "type": "store"},
            ]
        },
    )
    orders = FakeService(
        "orders",
        {
            "/operations/stores": {
                "window_minutes": 30,
                "items": [
                    {
                        "location_id": "store-b",
                        "fulfillments": 3,
                        "by_status": {"reserved": 1, "ready_for_pickup": 2},
                        "rejects": 1,
                        "median_minutes_to_ready": 4.5,
                    },
                    # Not a store inventory lists (any more): left out.
                    {
                        "location_id": "wh-1",
                        "fulfillments": 9,
                        "by_status": {"shipped": 9},
                        "rejects": 0,
                        "median_minutes_to_ready": None,
                    },
                ],
            }
        },
    )
    found = await handlers.operations_stores(gateway(inventory=inventory, orders=orders), 30)
    assert found.window_minutes == 30
    assert [s.model_dump(mode="json") for s in found.items] == [
        {
            "store_id": "store-a",
            "name": "A",
            "fulfillments": 0,
            "by_status": {},
            "rejects": 0,
            "median_minutes_to_ready": None,
        },
        {
            "store_id": "store-b",
            "name": "B",
            "fulfillments": 3,
            "by_status": {"reserved": 1, "ready_for_pickup": 2},
            "rejects": 1,
            "median_minutes_to_ready": 4.5,
        },
    ]
    assert inventory.asked == [("/locations", {"type": "store"})]


async def test_stores_without_orders_is_a_503_naming_it() -> None:
    inventory = FakeService("inventory", {"/locations": []})
    orders = FakeService("orders", {}, down=True)
    with pytest.raises(ServiceUnavailable) as raised:
        await handlers.operations_stores(gateway(inventory=inventory, orders=orders), 60)
    assert raised.value.extensions["unavailable"] == ["orders"]


def test_the_examples_validate_against_their_models() -> None:
    routes = [r for r in operations.router.routes if isinstance(r, APIRoute)]
    assert len(routes) == 3
    for route in routes:
        example = route.responses[200]["content"]["application/json"]["example"]
        TypeAdapter(route.response_model).validate_python(example)
