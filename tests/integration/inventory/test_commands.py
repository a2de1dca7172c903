"""inventory.commands.v1 end to end: a command on the real broker, the effect in the real
database, the answer on inventory.events.v1, and availability over HTTP."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from services.contracts import topics
from services.contracts.inventory import (
    CommitStock,
    ReleaseStock,
    ReserveStock,
    RestockReturn,
    StockLine,
)
from services.infrastructure.database import UnitOfWork
from tests.integration.inventory.conftest import assert_ledger_reconciles, level, set_stock
from tests.support.kafka import Producer, TopicWatcher, cloud_event, eventually, of_type

pytestmark = pytest.mark.integration


def reserve(location_id: str, lines: dict[str, int], **overrides: Any) -> ReserveStock:
    order_id = overrides.pop("order_id", f"order-{uuid.uuid4().hex[:10]}")
    return ReserveStock(
        order_id=order_id,
        fulfillment_id=overrides.pop("fulfillment_id", f"{order_id}-f1"),
        reservation_id=overrides.pop("reservation_id", f"{order_id}-r1"),
        location_id=location_id,
        lines=tuple(StockLine(sku=sku, quantity=q) for sku, q in lines.items()),
        **overrides,
    )


async def test_a_plain_kafka_client_reserves_stock(
    inventory: httpx.AsyncClient,
    producer: Producer,
    inventory_events: TopicWatcher,
    store: dict[str, Any],
    unique: Callable[[str], str],
) -> None:
    sku = unique("TEE")
    await set_stock(inventory, store["location_id"], sku, on_hand=5)
    order_id = unique("order")

    # Hand-written JSON, as a system that does not share our code would send it.
    command = cloud_event(
        "omniroute.inventory.reserve_stock.v1",
        {
            "order_id": order_id,
            "fulfillment_id": f"{order_id}-f1",
            "reservation_id": f"{order_id}-r1",
            "location_id": store["location_id"],
            "lines": [{"sku": sku, "quantity": 2}],
        },
    )
    await producer.send(topics.INVENTORY_COMMANDS.name, command, key=order_id)

    (reserved,) = await inventory_events.wait_for(of_type("stock_reserved", order_id=order_id))
    assert reserved["data"]["lines"] == [{"sku": sku, "quantity": 2}]
    assert reserved["_key"] == order_id
    assert reserved["specversion"] == "1.0"

    availability = await inventory.get("/availability", params={"sku": sku})
    (item,) = availability.json()["items"]
    assert item["total_available"] == 3

    changed = await inventory_events.wait_for(
        of_type("availability_changed", sku=sku, location_id=store["location_id"]), count=2
    )
    assert changed[-1]["_key"] == f"{sku}@{store['location_id']}"
    assert [m["data"]["version"] for m in changed] == [1, 2]
    assert changed[-1]["data"]["available"] == 3


async def test_the_same_command_twice_has_one_effect(
    inventory: httpx.AsyncClient,
    producer: Producer,
    inventory_events: TopicWatcher,
    store: dict[str, Any],
    unique: Callable[[str], str],
) -> None:
    sku = unique("CAP")
    await set_stock(inventory, store["location_id"], sku, on_hand=10)
    command = reserve(store["location_id"], {sku: 3})
    event_id = str(uuid.uuid4())

    await producer.send_event(command, event_id=event_id)
    await producer.send_event(command, event_id=event_id)  # a redelivery
    await producer.send_event(command)  # a retry of the same reservation under a new message id
    # A marker on the same key (so the same partition, behind the three): once it is answered,
    # all three copies have been consumed.
    marker = reserve(
        store["location_id"], {sku: 1}, order_id=command.order_id, reservation_id="marker"
    )
    await producer.send_event(marker)
    await inventory_events.wait_for(of_type("stock_reserved", reservation_id="marker"))

    found = await level(inventory, store["location_id"], sku)
    assert found["reserved"] == 3 + 1
    answers = inventory_events.matching(
        of_type("stock_reserved", reservation_id=command.reservation_id)
    )
    # The redelivery is dropped by the inbox; the retry is answered again but holds nothing more.
    assert len(answers) == 2
    await assert_ledger_reconciles(inventory)


async def test_all_or_nothing_with_the_reason_named(
    inventory: httpx.AsyncClient,
    producer: Producer,
    inventory_events: TopicWatcher,
    store: dict[str, Any],
    unique: Callable[[str], str],
) -> None:
    plenty, scarce, unknown = unique("A-PLENTY"), unique("B-SCARCE"), unique("Z-UNKNOWN")
    await set_stock(inventory, store["location_id"], plenty, on_hand=10)
    await set_stock(inventory, store["location_id"], scarce, on_hand=3, safety_stock=1)

    short = reserve(store["location_id"], {plenty: 2, scarce: 3})
    await producer.send_event(short)
    (rejected,) = await inventory_events.wait_for(
        of_type("stock_reservation_rejected", order_id=short.order_id)
    )
    assert rejected["data"]["reason"] == "insufficient_stock"
    assert rejected["data"]["shortages"] == [{"sku": scarce, "requested": 3, "available": 2}]
    assert (await level(inventory, store["location_id"], plenty))["reserved"] == 0

    stranger = reserve(store["location_id"], {plenty: 1, unknown: 1})
    await producer.send_event(stranger)
    (rejected,) = await inventory_events.wait_for(
        of_type("stock_reservation_rejected", order_id=stranger.order_id)
    )
    assert rejected["data"]["reason"] == "unknown_sku"
    assert unknown in rejected["data"]["detail"]

    nowhere = reserve(unique("no-such-store"), {plenty: 1})
    await producer.send_event(nowhere)
    (rejected,) = await inventory_events.wait_for(
        of_type("stock_reservation_rejected", order_id=nowhere.order_id)
    )
    assert rejected["data"]["reason"] == "unknown_location"
    assert (await level(inventory, store["location_id"], plenty))["reserved"] == 0


async def test_release_commit_and_restock(
    inventory: httpx.AsyncClient,
    producer: Producer,
    inventory_events: TopicWatcher,
    store: dict[str, Any],
    unique: Callable[[str], str],
) -> None:
    sku = unique("JEANS")
    location = store["location_id"]
    await set_stock(inventory, location, sku, on_hand=6)

    kept, dropped = reserve(location, {sku: 2}), reserve(location, {sku: 3})
    await producer.send_event(kept)
    await producer.send_event(dropped)
    await inventory_events.wait_for(of_type("stock_reserved", order_id=dropped.order_id))
    await inventory_events.wait_for(of_type("stock_reserved", order_id=kept.order_id))
    assert (await level(inventory, location, sku))["available"] == 1

    await producer.send_event(
        ReleaseStock(
            order_id=dropped.order_id, reservation_id=dropped.reservation_id, reason="cancelled"
        )
    )
    (released,) = await inventory_events.wait_for(
        of_type("stock_released", order_id=dropped.order_id)
    )
    assert released["data"]["lines"] == [{"sku": sku, "quantity": 3}]

    commit = CommitStock(order_id=kept.order_id, reservation_id=kept.reservation_id)
    await producer.send_event(commit)
    await producer.send_event(commit)  # the saga may retry: still one effect
    await inventory_events.wait_for(of_type("stock_committed", order_id=kept.order_id), count=2)
    found = await level(inventory, location, sku)
    assert (found["on_hand"], found["reserved"], found["available"]) == (4, 0, 4)

    restock = RestockReturn(
        order_id=kept.order_id,
        return_id=unique("return"),
        location_id=location,
        lines=(StockLine(sku=sku, quantity=1),),
    )
    await producer.send_event(restock)
    await producer.send_event(restock)  # a retry under a new message id restocks nothing more
    await inventory_events.wait_for(
        of_type("stock_restocked", return_id=restock.return_id), count=2
    )
    assert (await level(inventory, location, sku))["on_hand"] == 5

    await producer.send_event(
        CommitStock(order_id=dropped.order_id, reservation_id=dropped.reservation_id)
    )
    (refused,) = await inventory_events.wait_for(
        of_type("stock_commit_rejected", order_id=dropped.order_id)
    )
    assert refused["data"]["status"] == "released"
    await assert_ledger_reconciles(inventory)


async def test_a_release_that_overtakes_its_reservation_wins(
    inventory: httpx.AsyncClient,
    producer: Producer,
    inventory_events: TopicWatcher,
    store: dict[str, Any],
    unique: Callable[[str], str],
) -> None:
    sku = unique("HOODIE")
    await set_stock(inventory, store["location_id"], sku, on_hand=2)
    late = reserve(store["location_id"], {sku: 1})

    await producer.send_event(
        ReleaseStock(order_id=late.order_id, reservation_id=late.reservation_id, reason="cancelled")
    )
    await producer.send_event(late)

    (rejected,) = await inventory_events.wait_for(
        of_type("stock_reservation_rejected", order_id=late.order_id)
    )
    assert rejected["data"]["reason"] == "reservation_closed"
    assert (await level(inventory, store["location_id"], sku))["reserved"] == 0


async def test_a_hold_expires_and_the_stock_comes_back(
    inventory: httpx.AsyncClient,
    producer: Producer,
    inventory_events: TopicWatcher,
    store: dict[str, Any],
    unique: Callable[[str], str],
) -> None:
    sku = unique("BOTTLE")
    await set_stock(inventory, store["location_id"], sku, on_hand=1)
    hold = reserve(
        store["location_id"], {sku: 1}, hold_until=datetime.now(UTC) + timedelta(seconds=1.5)
    )
    await producer.send_event(hold)
    await inventory_events.wait_for(of_type("stock_reserved", order_id=hold.order_id))
    assert (await level(inventory, store["location_id"], sku))["available"] == 0

    (expired,) = await inventory_events.wait_for(
        of_type("reservation_expired", order_id=hold.order_id), timeout=15
    )
    assert expired["data"]["lines"] == [{"sku": sku, "quantity": 1}]
    assert (await level(inventory, store["location_id"], sku))["available"] == 1
    reservation = await inventory.get(f"/reservations/{hold.reservation_id}")
    assert reservation.json()["status"] == "expired"

    past = reserve(
        store["location_id"], {sku: 1}, hold_until=datetime.now(UTC) - timedelta(minutes=1)
    )
    await producer.send_event(past)
    (rejected,) = await inventory_events.wait_for(
        of_type("stock_reservation_rejected", order_id=past.order_id)
    )
    assert rejected["data"]["reason"] == "invalid_hold"


async def test_hostile_messages_are_parked_and_never_block_the_partition(
    inventory: httpx.AsyncClient,
    producer: Producer,
    inventory_events: TopicWatcher,
    uow_factory: Callable[[], UnitOfWork],
    store: dict[str, Any],
    unique: Callable[[str], str],
) -> None:
    sku = unique("SOCKS")
    await set_stock(inventory, store["location_id"], sku, on_hand=4)
    order_id = unique("hostile")  # one key, so every message below lands on one partition
    good = {
        "order_id": order_id,
        "fulfillment_id": "f1",
        "reservation_id": f"{order_id}-r1",
        "location_id": store["location_id"],
        "lines": [{"sku": sku, "quantity": 1}],
    }
    hostile = [
        b"{not json",
        b"",
        b'{"hello": "world"}',
        cloud_event("omniroute.inventory.teleport_stock.v1", good),
        cloud_event(
            "omniroute.inventory.reserve_stock.v1",
            {**good, "lines": [{"sku": sku, "quantity": -2}]},
        ),
        cloud_event("omniroute.inventory.reserve_stock.v1", {**good, "surprise": True}),
        cloud_event("omniroute.inventory.reserve_stock.v1", {"order_id": order_id}),
        cloud_event(
            "omniroute.inventory.reserve_stock.v1", {**good, "hold_until": "2030-01-01T10:00:00"}
        ),
    ]
    for value in hostile:
        await producer.send(topics.INVENTORY_COMMANDS.name, value, key=order_id)
    # NUL in a header's name and value and in the body: text PostgreSQL will not store as is.
    nul = cloud_event("omniroute.inventory.reserve_stock.v1", {**good, "order_id": "x\x00y"})
    hostile.append(nul)
    await producer.send(
        topics.INVENTORY_COMMANDS.name,
        nul,
        key=order_id,
        headers=[("trace\x00", b"a\x00b"), ("bad-utf8", b"\xff\xfe")],
    )
    await producer.send(
        topics.INVENTORY_COMMANDS.name,
        cloud_event("omniroute.inventory.reserve_stock.v1", good),
        key=order_id,
    )

    await inventory_events.wait_for(of_type("stock_reserved", order_id=order_id))
    assert (await level(inventory, store["location_id"], sku))["reserved"] == 1

    async def parked() -> list[str]:
        async with uow_factory() as uow:
            rows = await uow.connection.execute(
                text("SELECT reason FROM dead_letters WHERE message_key = :key ORDER BY id"),
                {"key": order_id.encode()},
            )
            return [row.reason for row in rows]

    reasons = await eventually(lambda: _when_all(parked, len(hostile)))
    assert "not a CloudEvent" in reasons[0]
    assert reasons[1] == "empty message"
    assert "not a CloudEvent" in reasons[2]
    assert "unknown event type 'omniroute.inventory.teleport_stock.v1'" in reasons[3]
    assert "lines.0.quantity" in reasons[4]
    assert "greater than 0" in reasons[4]
    assert "surprise" in reasons[5]
    assert "Extra inputs are not permitted" in reasons[5]
    assert "invalid omniroute.inventory.reserve_stock.v1 data" in reasons[6]
    assert "hold_until" in reasons[7]
    assert "invalid omniroute.inventory.reserve_stock.v1 data" in reasons[8]
    assert "timezone" in reasons[7]


async def _when_all(query: Callable[[], Any], count: int) -> list[str] | None:
    rows: list[str] = await query()
    return rows if len(rows) >= count else None
