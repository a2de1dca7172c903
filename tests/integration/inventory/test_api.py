"""Inventory's HTTP API against the real database: rules, errors as problem+json, availability."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from services.contracts.inventory import ReserveStock, StockLine
from tests.integration.inventory.conftest import assert_ledger_reconciles, level, set_stock
from tests.support.kafka import Producer, TopicWatcher, of_type

pytestmark = pytest.mark.integration


def assert_problem(response: httpx.Response, status: int, *fragments: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["type"].startswith("https://omniroute.dev/problems/")
    for fragment in fragments:
        assert fragment in body["detail"], body
    return body


async def test_bad_input_gets_a_clear_problem(
    inventory: httpx.AsyncClient, store: dict[str, Any], unique: Callable[[str], str]
) -> None:
    malformed = await inventory.post(
        "/stock-levels", content=b'{"sku": ', headers={"content-type": "application/json"}
    )
    assert_problem(malformed, 400, "not valid JSON")

    unknown_field = await inventory.post(
        "/stock-levels",
        json={"location_id": store["location_id"], "sku": "X1", "on_hand": 1, "colour": "red"},
    )
    assert_problem(unknown_field, 422, "colour", "Extra inputs are not permitted")

    wrong_type = await inventory.post(
        "/stock-levels", json={"location_id": store["location_id"], "sku": "X1", "on_hand": "lots"}
    )
    assert_problem(wrong_type, 422, "on_hand")

    negative = await inventory.post(
        "/stock-levels", json={"location_id": store["location_id"], "sku": "X1", "on_hand": -1}
    )
    assert_problem(negative, 422, "on_hand", "greater than or equal to 0")

    nowhere = await inventory.post(
        "/stock-levels", json={"location_id": unique("nowhere"), "sku": "X1", "on_hand": 1}
    )
    assert_problem(nowhere, 404, "does not exist")

    bad_point = await inventory.get("/availability", params={"sku": "X1", "near": "north"})
    assert_problem(bad_point, 422, "LAT,LON")

    no_route = await inventory.get("/no/such/path")
    assert_problem(no_route, 404)

    dropship_without_partner = await inventory.post(
        "/locations",
        json={"location_id": unique("ds"), "name": "x", "type": "dropship", "lat": 0, "lon": 0},
    )
    assert_problem(dropship_without_partner, 422, "partner_id")


async def test_adjustments_follow_the_sign_of_their_reason(
    inventory: httpx.AsyncClient, store: dict[str, Any], unique: Callable[[str], str]
) -> None:
    location, sku = store["location_id"], unique("TOTE")
    url = f"/locations/{location}/stock-adjustments"

    not_stocked = await inventory.post(url, json={"sku": sku, "delta": -1, "reason": "pos_sale"})
    assert_problem(not_stocked, 409, "only a receipt can start one")

    received = await inventory.post(url, json={"sku": sku, "delta": 5, "reason": "receipt"})
    assert received.status_code == 200, received.text
    assert received.json()["on_hand"] == 5

    sold = await inventory.post(url, json={"sku": sku, "delta": -2, "reason": "pos_sale"})
    assert sold.json()["on_hand"] == 3

    assert_problem(
        await inventory.post(url, json={"sku": sku, "delta": 2, "reason": "pos_sale"}),
        422,
        "must be negative",
    )
    assert_problem(
        await inventory.post(url, json={"sku": sku, "delta": -1, "reason": "receipt"}),
        422,
        "must be positive",
    )
    assert_problem(
        await inventory.post(url, json={"sku": sku, "delta": -4, "reason": "damage"}),
        409,
        "cannot go below 0",
    )
    corrected = await inventory.post(
        url, json={"sku": sku, "delta": -1, "reason": "count_correction", "note": "cycle count"}
    )
    assert corrected.json()["on_hand"] == 2
    await assert_ledger_reconciles(inventory)


async def test_a_repeated_adjustment_with_its_key_applies_once(
    inventory: httpx.AsyncClient, store: dict[str, Any], unique: Callable[[str], str]
) -> None:
    location, sku = store["location_id"], unique("KEYED")
    url = f"/locations/{location}/stock-adjustments"
    receipt = {"sku": sku, "delta": 5, "reason": "receipt"}
    key = {"Idempotency-Key": unique("delivery")}

    answers = await asyncio.gather(
        *(inventory.post(url, json=receipt, headers=key) for _ in range(4))
    )
    assert [a.json()["on_hand"] for a in answers] == [5, 5, 5, 5]
    different = await inventory.post(url, json={**receipt, "delta": 6}, headers=key)
    assert_problem(different, 422, "different adjustment")
    again = await inventory.post(url, json=receipt)  # no key: a second delivery
    assert again.json()["on_hand"] == 10
    await assert_ledger_reconciles(inventory)


async def test_reserved_units_cannot_be_counted_away(
    inventory: httpx.AsyncClient,
    producer: Producer,
    inventory_events: TopicWatcher,
    store: dict[str, Any],
    unique: Callable[[str], str],
) -> None:
    location, sku = store["location_id"], unique("KEPT")
    await set_stock(inventory, location, sku, on_hand=3)
    order_id = unique("order")
    await producer.send_event(
        ReserveStock(
            order_id=order_id,
            fulfillment_id="f1",
            reservation_id=f"{order_id}-r",
            location_id=location,
            lines=(StockLine(sku=sku, quantity=2),),
        )
    )
    await inventory_events.wait_for(of_type("stock_reserved", order_id=order_id))

    too_low = await inventory.post(
        "/stock-levels", json={"location_id": location, "sku": sku, "on_hand": 1}
    )
    assert_problem(too_low, 409, "2 units are reserved")
    pos_sale = await inventory.post(
        f"/locations/{location}/stock-adjustments",
        json={"sku": sku, "delta": -2, "reason": "pos_sale"},
    )
    assert_problem(pos_sale, 409, "reserved")
    assert (await level(inventory, location, sku))["on_hand"] == 3


async def test_partner_feed_ignores_old_sequences_and_keeps_reservations(
    inventory: httpx.AsyncClient,
    producer: Producer,
    inventory_events: TopicWatcher,
    unique: Callable[[str], str],
) -> None:
    partner_location = unique("dropship")
    created = await inventory.post(
        "/locations",
        json={
            "location_id": partner_location,
            "name": "Northwind",
            "type": "dropship",
            "lat": 51.44,
            "lon": 5.47,
            "capabilities": ["ship"],
            "partner_id": unique("partner"),
        },
    )
    assert created.status_code == 200, created.text
    kayak, tent = unique("KAYAK"), unique("TENT")
    feed_url = f"/locations/{partner_location}/stock-feed"

    first = await inventory.put(
        feed_url,
        json={"sequence": 10, "items": [{"sku": kayak, "on_hand": 4}, {"sku": tent, "on_hand": 2}]},
    )
    assert first.json()["applied"] is True

    order_id = unique("order")
    await producer.send_event(
        ReserveStock(
            order_id=order_id,
            fulfillment_id="f1",
            reservation_id=f"{order_id}-r",
            location_id=partner_location,
            lines=(StockLine(sku=kayak, quantity=3),),
        )
    )
    await inventory_events.wait_for(of_type("stock_reserved", order_id=order_id))

    stale = await inventory.put(
        feed_url, json={"sequence": 9, "items": [{"sku": kayak, "on_hand": 0}]}
    )
    assert stale.json() == {
        "applied": False,
        "sequence": 9,
        "last_sequence": 10,
        "levels": [],
        "shortfalls": [],
    }
    assert (await level(inventory, partner_location, kayak))["on_hand"] == 4

    shrunk = await inventory.put(
        feed_url, json={"sequence": 11, "items": [{"sku": kayak, "on_hand": 1}]}
    )
    body = shrunk.json()
    assert body["applied"] is True
    assert body["shortfalls"] == [{"sku": kayak, "requested": 3, "available": 1}]
    found = await level(inventory, partner_location, kayak)
    assert (found["on_hand"], found["reserved"], found["available"]) == (3, 3, 0)

    not_a_partner = await inventory.post(
        "/locations",
        json={"location_id": unique("wh"), "name": "W", "type": "warehouse", "lat": 0, "lon": 0},
    )
    assert not_a_partner.status_code == 200
    assert_problem(
        await inventory.put(
            f"/locations/{not_a_partner.json()['location_id']}/stock-feed",
            json={"sequence": 1, "items": []},
        ),
        409,
        "dropship",
    )
    await assert_ledger_reconciles(inventory)


async def test_availability_nearest_first_within_a_radius(
    inventory: httpx.AsyncClient, unique: Callable[[str], str]
) -> None:
    sku = unique("MAP")
    places = {
        "ams": ("store", 52.3738, 4.8910, 3),
        "utr": ("store", 52.0894, 5.1100, 5),
        "rtm": ("store", 51.9203, 4.4757, 0),
        "tilburg": ("warehouse", 51.5555, 5.0913, 40),
    }
    for name, (kind, lat, lon, on_hand) in places.items():
        location_id = unique(name)
        response = await inventory.post(
            "/locations",
            json={"location_id": location_id, "name": name, "type": kind, "lat": lat, "lon": lon},
        )
        assert response.status_code == 200
        await set_stock(inventory, location_id, sku, on_hand=on_hand)

    near_dam = {"sku": sku, "near": "52.3731,4.8922"}
    everything = (await inventory.get("/availability", params=near_dam)).json()["items"][0]
    assert [loc["name"] for loc in everything["locations"]] == ["ams", "utr", "rtm", "tilburg"]
    assert everything["total_available"] == 48
    assert everything["locations"][0]["distance_km"] < 1
    assert 30 < everything["locations"][1]["distance_km"] < 40  # Amsterdam to Utrecht

    stores_close_by = (
        await inventory.get(
            "/availability", params={**near_dam, "radius_km": 60, "location_type": "store"}
        )
    ).json()["items"][0]
    assert [loc["name"] for loc in stores_close_by["locations"]] == ["ams", "utr", "rtm"]
    assert stores_close_by["total_available"] == 8

    unknown = (await inventory.get("/availability", params={"sku": unique("NOPE")})).json()
    assert unknown["items"][0] == {
        "sku": unique("NOPE"),
        "name": None,
        "total_available": 0,
        "locations": [],
        "incoming": [],
        "next_available_at": None,
    }


async def test_operations_endpoints(inventory: httpx.AsyncClient) -> None:
    assert (await inventory.get("/healthz")).json() == {"status": "ok"}
    assert (await inventory.get("/readyz")).json() == {
        "status": "ready",
        "database": "ok",
        "broker": "ok",
    }
    await inventory.get("/locations")
    metrics = await inventory.get("/metrics")
    assert metrics.status_code == 200
    assert (
        'omniroute_http_request_duration_seconds_count{method="GET",route="/locations"'
        in metrics.text
    )
    assert "omniroute_outbox_published_total" in metrics.text
    spec = (await inventory.get("/openapi.json")).json()
    assert "/availability" in spec["paths"]
    assert spec["paths"]["/availability"]["get"]["description"]
    problem = spec["paths"]["/stock-levels"]["post"]["responses"]["404"]["content"]
    assert problem["application/problem+json"]["schema"] == {"$ref": "#/components/schemas/Problem"}
    assert dangling_refs(spec) == []


def dangling_refs(spec: dict[str, Any]) -> list[str]:
    """Every `$ref` in an OpenAPI document that points at no component."""
    known = {f"#/components/schemas/{name}" for name in spec["components"]["schemas"]}
    found: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref not in known:
                found.append(ref)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(spec)
    return found
