"""Incoming stock against the real database and broker: supplies, promises of them to
backorders (first come, first served, never beyond what is incoming), receipts that reserve
the promises in the order they were made, releases, and the stock corrections of rejects."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from services.contracts.inventory import (
    CommitStock,
    PromiseStock,
    ReleaseStock,
    ReserveStock,
    StockCorrection,
    StockLine,
)
from services.infrastructure.database import UnitOfWork
from services.inventory import handlers
from tests.integration.inventory.conftest import (
    add_supply,
    assert_ledger_reconciles,
    days_ahead,
    level,
    receive,
    set_stock,
    supply_of,
)
from tests.integration.inventory.test_api import assert_problem
from tests.support.kafka import Producer, TopicWatcher, of_type

pytestmark = pytest.mark.integration


def promise(location_id: str, lines: dict[str, int], **overrides: Any) -> PromiseStock:
    order_id = overrides.pop("order_id", f"order-{uuid.uuid4().hex[:10]}")
    fulfillment_id = overrides.pop("fulfillment_id", f"{order_id}.1.1")
    return PromiseStock(
        order_id=order_id,
        fulfillment_id=fulfillment_id,
        promise_id=overrides.pop("promise_id", fulfillment_id),
        location_id=location_id,
        lines=tuple(StockLine(sku=sku, quantity=q) for sku, q in lines.items()),
        **overrides,
    )


async def run(uow_factory: Callable[[], UnitOfWork], handler: Any, command: Any) -> None:
    """A command applied as the consumer applies it: one unit of work, committed."""
    async with uow_factory() as uow:
        await handler(command, uow)
        await uow.commit()


async def promise_of(client: httpx.AsyncClient, promise_id: str) -> dict[str, Any]:
    response = await client.get(f"/promises/{promise_id}")
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def test_a_supply_is_upserted_received_and_guarded(
    inventory: httpx.AsyncClient,
    uow_factory: Callable[[], UnitOfWork],
    store: dict[str, Any],
    unique: Callable[[str], str],
) -> None:
    location, sku, supply_id = store["location_id"], unique("PARKA"), unique("po")
    body = {
        "supply_id": supply_id,
        "location_id": unique("nowhere"),
        "sku": sku,
        "quantity": 10,
        "expected_at": days_ahead(5),
    }
    assert_problem(await inventory.post("/incoming-stock", json=body), 404, "does not exist")

    created = await add_supply(inventory, location, sku, 10, supply_id=supply_id, days=5)
    assert (created["status"], created["received"], created["promised"]) == ("incoming", 0, 0)
    assert created["promisable"] == 10
    # Nothing arrived or was promised yet: it may still go elsewhere, as another sku.
    moved = await add_supply(inventory, store["location_id"], f"{sku}-X", 8, supply_id=supply_id)
    assert (moved["sku"], moved["quantity"], moved["promisable"]) == (f"{sku}-X", 8, 8)
    await add_supply(inventory, location, sku, 10, supply_id=supply_id, days=5)

    await run(uow_factory, handlers.promise_stock, promise(location, {sku: 3}))
    first = await receive(inventory, supply_id, 4, **{"Idempotency-Key": unique("rcpt")})
    assert first.status_code == 200, first.text
    after = first.json()
    # Three of the four arrived units are held for the promise, which is now complete.
    assert (after["received"], after["promised"], after["promisable"]) == (4, 0, 6)
    found = await level(inventory, location, sku)
    assert (found["on_hand"], found["reserved"], found["available"]) == (4, 3, 1)

    again = await receive(inventory, supply_id, 4, **{"Idempotency-Key": unique("rcpt")})
    assert again.json() == after  # the retry received nothing more
    assert (await level(inventory, location, sku))["on_hand"] == 4
    assert_problem(
        await receive(inventory, supply_id, 5, **{"Idempotency-Key": unique("rcpt")}),
        422,
        "different receipt",
    )

    body = {**body, "location_id": location, "sku": f"{sku}-Y"}
    assert_problem(await inventory.post("/incoming-stock", json=body), 409, "cannot change")
    body = {**body, "sku": sku, "quantity": 3}
    assert_problem(await inventory.post("/incoming-stock", json=body), 409, "below the 4")
    assert_problem(await receive(inventory, supply_id, 7), 409, "only 6 of 10")

    rest = await receive(inventory, supply_id)
    assert rest.status_code == 200, rest.text
    assert (rest.json()["status"], rest.json()["received"], rest.json()["promisable"]) == (
        "received",
        10,
        0,
    )
    assert_problem(await receive(inventory, supply_id, 1), 409, "received already")
    assert_problem(await receive(inventory, unique("no-such-po")), 404, "does not exist")

    listed = await inventory.get("/incoming-stock", params={"sku": sku, "location_id": location})
    assert [s["supply_id"] for s in listed.json()] == [supply_id]
    still_incoming = await inventory.get(
        "/incoming-stock", params={"sku": sku, "status": "incoming"}
    )
    assert still_incoming.json() == []
    await assert_ledger_reconciles(inventory)


async def test_availability_shows_what_is_incoming_soonest_first(
    inventory: httpx.AsyncClient,
    uow_factory: Callable[[], UnitOfWork],
    store: dict[str, Any],
    unique: Callable[[str], str],
) -> None:
    sku = unique("KAYAK")
    far_away = {**store, "location_id": unique("wh-far"), "type": "warehouse", "lat": 51.5}
    far_away["name"] = "Warehouse far away"
    assert (await inventory.post("/locations", json=far_away)).status_code == 200
    await set_stock(inventory, store["location_id"], sku, on_hand=1)
    await add_supply(inventory, far_away["location_id"], sku, 6, supply_id=unique("po-a"), days=2)
    await add_supply(inventory, store["location_id"], sku, 4, supply_id=unique("po-b"), days=9)
    await add_supply(inventory, store["location_id"], sku, 5, supply_id=unique("po-c"), days=4)
    await run(uow_factory, handlers.promise_stock, promise(store["location_id"], {sku: 5}))

    everything = (await inventory.get("/availability", params={"sku": sku})).json()["items"][0]
    # po-c is promised in full, so it is not listed: only what can still be promised is.
    assert [(i["location_id"], i["quantity"]) for i in everything["incoming"]] == [
        (far_away["location_id"], 6),
        (store["location_id"], 4),
    ]
    assert everything["next_available_at"] == everything["incoming"][0]["expected_at"]
    assert everything["total_available"] == 1

    nearby = await inventory.get(
        "/availability", params={"sku": sku, "near": "52.37,4.89", "radius_km": 20}
    )
    (item,) = nearby.json()["items"]
    assert [i["location_id"] for i in item["incoming"]] == [store["location_id"]]
    warehouses = await inventory.get(
        "/availability", params={"sku": sku, "location_type": "warehouse"}
    )
    (item,) = warehouses.json()["items"]
    assert [i["location_id"] for i in item["incoming"]] == [far_away["location_id"]]

    nothing = (await inventory.get("/availability", params={"sku": unique("NONE")})).json()
    assert nothing["items"][0]["incoming"] == []
    assert nothing["items"][0]["next_available_at"] is None


async def test_promises_over_kafka_first_come_first_served(
    inventory: httpx.AsyncClient,
    producer: Producer,
    inventory_events: TopicWatcher,
    store: dict[str, Any],
    unique: Callable[[str], str],
) -> None:
    location, tent, lamp = store["location_id"], unique("TENT"), unique("LAMP")
    soon, later = unique("po-soon"), unique("po-later")
    await add_supply(inventory, location, tent, 3, supply_id=soon, days=2)
    await add_supply(inventory, location, tent, 10, supply_id=later, days=6)
    await add_supply(inventory, location, lamp, 2, supply_id=unique("po-lamp"), days=1)

    # Five tents take all of the soon supply and two of the later one: promised when it comes.
    both = promise(location, {tent: 5, lamp: 1})
    await producer.send_event(both)
    (promised,) = await inventory_events.wait_for(
        of_type("stock_promised", promise_id=both.promise_id)
    )
    assert promised["data"]["lines"] == sorted(
        [{"sku": tent, "quantity": 5}, {"sku": lamp, "quantity": 1}], key=lambda x: x["sku"]
    )
    assert promised["data"]["fulfillment_id"] == both.fulfillment_id
    assert promised["_key"] == both.order_id
    later_supply = await supply_of(inventory, later)
    assert promised["data"]["promised_at"].startswith(later_supply["expected_at"][:19])
    assert (await supply_of(inventory, soon))["promisable"] == 0
    assert later_supply["promisable"] == 8
    stored = await promise_of(inventory, both.promise_id)
    assert stored["status"] == "promised"
    assert {(d["supply_id"], d["quantity"], d["arrived"]) for d in stored["draws"]} >= {
        (soon, 3, 0),
        (later, 2, 0),
    }

    await producer.send_event(both)  # a retry under a new message id: answered as before
    await inventory_events.wait_for(of_type("stock_promised", promise_id=both.promise_id), count=2)
    assert (await supply_of(inventory, later))["promisable"] == 8

    too_many = promise(location, {tent: 9, lamp: 1})
    await producer.send_event(too_many)
    (rejected,) = await inventory_events.wait_for(
        of_type("stock_promise_rejected", promise_id=too_many.promise_id)
    )
    assert rejected["data"]["reason"] == "insufficient_stock"
    assert rejected["data"]["shortages"] == [{"sku": tent, "requested": 9, "available": 8}]
    assert (await supply_of(inventory, later))["promisable"] == 8  # all or nothing

    nowhere = promise(unique("no-such-store"), {tent: 1})
    await producer.send_event(nowhere)
    (rejected,) = await inventory_events.wait_for(
        of_type("stock_promise_rejected", promise_id=nowhere.promise_id)
    )
    assert rejected["data"]["reason"] == "unknown_location"


async def test_a_receipt_reserves_promises_in_the_order_they_were_made(
    inventory: httpx.AsyncClient,
    uow_factory: Callable[[], UnitOfWork],
    inventory_events: TopicWatcher,
    store: dict[str, Any],
    unique: Callable[[str], str],
) -> None:
    location, sku, supply_id = store["location_id"], unique("BOOTS"), unique("po")
    await add_supply(inventory, location, sku, 10, supply_id=supply_id)
    first, second, third = (promise(location, {sku: n}) for n in (3, 4, 2))
    for command in (first, second, third):
        await run(uow_factory, handlers.promise_stock, command)
    assert (await supply_of(inventory, supply_id))["promisable"] == 1

    # Five arrive: the first promise is covered and reserved; two units are held for the
    # second, which still waits for two more; the third gets nothing yet.
    partial = await receive(inventory, supply_id, 5)
    assert partial.status_code == 200, partial.text
    assert (partial.json()["received"], partial.json()["promised"]) == (5, 4)
    assert partial.json()["promisable"] == 1
    (reserved,) = await inventory_events.wait_for(
        of_type("stock_reserved", reservation_id=first.promise_id)
    )
    assert reserved["data"]["fulfillment_id"] == first.fulfillment_id
    assert reserved["data"]["location_id"] == location
    assert reserved["data"]["lines"] == [{"sku": sku, "quantity": 3}]
    assert (await promise_of(inventory, first.promise_id))["status"] == "reserved"
    waiting = await promise_of(inventory, second.promise_id)
    assert (waiting["status"], waiting["draws"][0]["arrived"]) == ("promised", 2)
    assert (await promise_of(inventory, third.promise_id))["draws"][0]["arrived"] == 0
    found = await level(inventory, location, sku)
    # Nothing is free for anyone else: the two held for the second promise are not available.
    assert (found["on_hand"], found["reserved"], found["available"]) == (5, 5, 0)
    held = (await inventory.get(f"/reservations/{first.promise_id}")).json()
    assert (held["status"], held["order_id"]) == ("held", first.order_id)

    rest = await receive(inventory, supply_id)
    assert rest.json()["status"] == "received"
    for later in (second, third):
        await inventory_events.wait_for(of_type("stock_reserved", reservation_id=later.promise_id))
    found = await level(inventory, location, sku)
    assert (found["on_hand"], found["reserved"], found["available"]) == (10, 9, 1)
    assert (await supply_of(inventory, supply_id))["promised"] == 0

    # A kept promise is an ordinary reservation from now on.
    await run(
        uow_factory,
        handlers.commit_stock,
        CommitStock(order_id=first.order_id, reservation_id=first.promise_id),
    )
    await run(
        uow_factory,
        handlers.release_stock,
        ReleaseStock(order_id=third.order_id, reservation_id=third.promise_id, reason="cancelled"),
    )
    found = await level(inventory, location, sku)
    assert (found["on_hand"], found["reserved"], found["available"]) == (7, 4, 3)
    again = promise(location, {sku: 1}, order_id=first.order_id, promise_id=first.promise_id)
    await run(uow_factory, handlers.promise_stock, again)  # answered as before: nothing more
    assert (await supply_of(inventory, supply_id))["promised"] == 0
    await assert_ledger_reconciles(inventory)


async def test_a_multi_line_promise_waits_for_every_supply(
    inventory: httpx.AsyncClient,
    uow_factory: Callable[[], UnitOfWork],
    store: dict[str, Any],
    unique: Callable[[str], str],
) -> None:
    location, tent, pegs = store["location_id"], unique("TENT"), unique("PEGS")
    tents, pegs_po = unique("po-tent"), unique("po-pegs")
    await add_supply(inventory, location, tent, 2, supply_id=tents)
    await add_supply(inventory, location, pegs, 20, supply_id=pegs_po)
    both, pegs_only = promise(location, {tent: 1, pegs: 10}), promise(location, {pegs: 10})
    await run(uow_factory, handlers.promise_stock, both)
    await run(uow_factory, handlers.promise_stock, pegs_only)

    await receive(inventory, pegs_po)
    # The pegs-only promise is complete; the other waits for its tent with its pegs held.
    assert (await promise_of(inventory, pegs_only.promise_id))["status"] == "reserved"
    assert (await promise_of(inventory, both.promise_id))["status"] == "promised"
    assert (await level(inventory, location, pegs))["reserved"] == 20
    await receive(inventory, tents)
    assert (await promise_of(inventory, both.promise_id))["status"] == "reserved"
    reservation = (await inventory.get(f"/reservations/{both.promise_id}")).json()
    assert {(line["sku"], line["quantity"]) for line in reservation["lines"]} == {
        (tent, 1),
        (pegs, 10),
    }
    found = await level(inventory, location, tent)
    assert (found["on_hand"], found["reserved"], found["available"]) == (2, 1, 1)
    await assert_ledger_reconciles(inventory)


async def test_releasing_a_promise_frees_what_it_held_and_what_was_incoming(
    inventory: httpx.AsyncClient,
    uow_factory: Callable[[], UnitOfWork],
    inventory_events: TopicWatcher,
    store: dict[str, Any],
    unique: Callable[[str], str],
) -> None:
    location, sku, supply_id = store["location_id"], unique("SOFA"), unique("po")
    await add_supply(inventory, location, sku, 5, supply_id=supply_id)
    waiting = promise(location, {sku: 4})
    await run(uow_factory, handlers.promise_stock, waiting)
    await receive(inventory, supply_id, 1)  # one unit arrives and is held for the promise
    assert (await level(inventory, location, sku))["available"] == 0

    release = ReleaseStock(
        order_id=waiting.order_id, reservation_id=waiting.promise_id, reason="cancelled"
    )
    await run(uow_factory, handlers.release_stock, release)
    (released,) = await inventory_events.wait_for(
        of_type("stock_released", reservation_id=waiting.promise_id)
    )
    assert released["data"]["lines"] == [{"sku": sku, "quantity": 4}]
    assert released["data"]["location_id"] == location
    assert (await promise_of(inventory, waiting.promise_id))["status"] == "released"
    after = await supply_of(inventory, supply_id)
    assert (after["received"], after["promised"], after["promisable"]) == (1, 0, 4)
    found = await level(inventory, location, sku)
    assert (found["on_hand"], found["reserved"], found["available"]) == (1, 0, 1)

    await run(uow_factory, handlers.release_stock, release)  # a second release changes nothing
    answers = await inventory_events.wait_for(
        of_type("stock_released", reservation_id=waiting.promise_id), count=2
    )
    assert answers[-1]["data"]["lines"] == []
    await receive(inventory, supply_id)  # nobody waits for it any more
    assert (await level(inventory, location, sku))["available"] == 5
    await assert_ledger_reconciles(inventory)


async def test_a_release_before_its_promise_leaves_a_tombstone(
    inventory: httpx.AsyncClient,
    producer: Producer,
    inventory_events: TopicWatcher,
    store: dict[str, Any],
    unique: Callable[[str], str],
) -> None:
    location, sku, supply_id = store["location_id"], unique("DESK"), unique("po")
    await add_supply(inventory, location, sku, 5, supply_id=supply_id)
    late = promise(location, {sku: 2})
    await producer.send_event(
        ReleaseStock(order_id=late.order_id, reservation_id=late.promise_id, reason="cancelled")
    )
    await producer.send_event(late)
    (answer,) = await inventory_events.wait_for(
        of_type("stock_promise_rejected", promise_id=late.promise_id)
    )
    assert answer["data"]["reason"] == "reservation_closed"
    assert "released" in answer["data"]["detail"]
    assert (await supply_of(inventory, supply_id))["promisable"] == 5
    missing = await inventory.get(f"/promises/{late.promise_id}")
    assert_problem(missing, 404, "does not exist")


@pytest.mark.parametrize(
    ("correction", "on_hand_after"),
    [(StockCorrection.NOT_IN_STOCK, 2), (StockCorrection.DAMAGED, 7)],
)
async def test_a_rejected_pick_corrects_the_stock_through_the_ledger(
    inventory: httpx.AsyncClient,
    uow_factory: Callable[[], UnitOfWork],
    inventory_events: TopicWatcher,
    store: dict[str, Any],
    unique: Callable[[str], str],
    correction: StockCorrection,
    on_hand_after: int,
) -> None:
    location, sku = store["location_id"], unique("LAMP")
    await set_stock(inventory, location, sku, on_hand=10, safety_stock=1)
    rejected, other = (
        ReserveStock(
            order_id=unique(f"order-{n}"),
            fulfillment_id=unique(f"f-{n}"),
            reservation_id=unique(f"r-{n}"),
            location_id=location,
            lines=(StockLine(sku=sku, quantity=n),),
        )
        for n in (3, 2)
    )
    for command in (rejected, other):
        await run(uow_factory, handlers.reserve_stock, command)

    release = ReleaseStock(
        order_id=rejected.order_id,
        reservation_id=rejected.reservation_id,
        reason="short pick",
        correction=correction,
    )
    await run(uow_factory, handlers.release_stock, release)
    await run(uow_factory, handlers.release_stock, release)  # a retry corrects nothing twice
    found = await level(inventory, location, sku)
    # not_in_stock: only what the other reservation holds is left, nothing available;
    # damaged: the three released units are written off.
    assert (found["on_hand"], found["reserved"]) == (on_hand_after, 2)
    assert found["available"] == max(on_hand_after - 2 - 1, 0)
    changed = await inventory_events.wait_for(
        of_type("availability_changed", sku=sku, location_id=location, version=found["version"])
    )
    assert changed[-1]["data"]["on_hand"] == on_hand_after
    await assert_ledger_reconciles(inventory)


async def test_a_promise_for_stock_that_arrived_meanwhile_is_reserved_at_once(
    inventory: httpx.AsyncClient,
    uow_factory: Callable[[], UnitOfWork],
    inventory_events: TopicWatcher,
    store: dict[str, Any],
    unique: Callable[[str], str],
) -> None:
    """Orders planned the backorder while the stock was on its way; it was received before
    the promise got here: the order is served from the shelf, not turned down."""
    location, sku, supply_id = store["location_id"], unique("STOVE"), unique("po")
    await add_supply(inventory, location, sku, 3, supply_id=supply_id)
    assert (await receive(inventory, supply_id)).status_code == 200

    late = promise(location, {sku: 2})
    await run(uow_factory, handlers.promise_stock, late)
    (promised,) = await inventory_events.wait_for(
        of_type("stock_promised", promise_id=late.promise_id)
    )
    (reserved,) = await inventory_events.wait_for(
        of_type("stock_reserved", reservation_id=late.promise_id)
    )
    assert promised["data"]["lines"] == reserved["data"]["lines"] == [{"sku": sku, "quantity": 2}]
    assert reserved["data"]["reservation_id"] == late.promise_id
    stored = await promise_of(inventory, late.promise_id)
    assert (stored["status"], stored["draws"]) == ("reserved", [])
    found = await level(inventory, location, sku)
    assert (found["on_hand"], found["reserved"], found["available"]) == (3, 2, 1)

    # Not all of it on the shelf: promised against what is incoming instead, all or nothing.
    await add_supply(inventory, location, sku, 5, supply_id=unique("po-next"))
    waits = promise(location, {sku: 4})
    await run(uow_factory, handlers.promise_stock, waits)
    assert (await promise_of(inventory, waits.promise_id))["status"] == "promised"
    assert (await level(inventory, location, sku))["available"] == 1
    await assert_ledger_reconciles(inventory)
