"""Pricing over HTTP against the real database, and its events on the real broker."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from services.infrastructure.quote_tokens import SigningKeys, verify_quote_token
from tests.integration.conftest import SIGNING_KEYS
from tests.integration.inventory.test_api import assert_problem, dangling_refs
from tests.support.kafka import TopicWatcher, of_type

pytestmark = pytest.mark.integration

CHANNELS = ("web", "app", "store", "marketplace", "partner")


async def put_price(
    client: httpx.AsyncClient, sku: str, amount: int, **extra: Any
) -> dict[str, Any]:
    response = await client.post(
        "/prices", json={"sku": sku, "currency": "EUR", "amount": amount, **extra}
    )
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def put_promotion(client: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    response = await client.post("/promotions", json=body)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def quote(
    client: httpx.AsyncClient, lines: dict[str, int], channel: str = "web"
) -> dict[str, Any]:
    response = await client.post(
        "/quotes",
        json={
            "channel": channel,
            "currency": "EUR",
            "lines": [{"sku": sku, "quantity": q} for sku, q in lines.items()],
        },
    )
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


async def test_a_price_change_reaches_kafka(
    pricing: httpx.AsyncClient, pricing_events: TopicWatcher, unique: Callable[[str], str]
) -> None:
    sku = unique("TEE")
    first = await put_price(pricing, sku, 1999)
    second = await put_price(pricing, sku, 1799)  # same scope: an update, not a second entry
    assert second["price_version"] > first["price_version"]
    prices = (await pricing.get("/prices", params={"sku": sku})).json()
    assert [p["amount"] for p in prices] == [1799]

    changed = await pricing_events.wait_for(of_type("price_changed", sku=sku), count=2)
    assert [m["data"]["amount"] for m in changed] == [1999, 1799]
    assert changed[-1]["_key"] == sku
    assert changed[-1]["data"]["price_version"] == second["price_version"]

    promo_id = unique("promo")
    await put_promotion(
        pricing,
        promotion_id=promo_id,
        name="10% off",
        kind="percent_off",
        skus=[sku],
        params={"percent": 10},
    )
    (promoted,) = await pricing_events.wait_for(
        lambda m: (
            of_type("promotion_changed")(m) and m["data"]["promotion"]["promotion_id"] == promo_id
        )
    )
    assert promoted["_key"] == promo_id


async def test_three_for_two_and_the_unit_a_refund_pays_back(
    pricing: httpx.AsyncClient, unique: Callable[[str], str]
) -> None:
    socks = unique("SOCKS")
    await put_price(pricing, socks, 1000)
    await put_promotion(
        pricing,
        promotion_id=unique("3for2"),
        name="3 for 2",
        kind="buy_n_pay_m",
        skus=[socks],
        params={"buy": 3, "pay": 2},
    )
    result = await quote(pricing, {socks: 3})
    (line,) = result["lines"]
    assert result["total"] == {"amount": 2000, "currency": "EUR"}
    assert line["discount"]["amount"] == 1000
    assert line["unit_net_prices"] == [667, 667, 666]
    assert sum(line["unit_net_prices"]) == line["total"]["amount"]
    assert result["promotions"][0]["kind"] == "buy_n_pay_m"

    claims = verify_quote_token(result["quote_token"], SigningKeys.parse(SIGNING_KEYS))
    assert claims.quote_id == result["quote_id"]
    assert claims.total == 2000
    assert claims.lines[0].unit_net_prices == (667, 667, 666)
    assert claims.price_version == result["price_version"]

    stored = await pricing.get(f"/quotes/{result['quote_id']}")
    assert stored.json() == result


async def test_tier_boundaries(pricing: httpx.AsyncClient, unique: Callable[[str], str]) -> None:
    bottle = unique("BOTTLE")
    await put_price(pricing, bottle, 1500)
    await put_promotion(
        pricing,
        promotion_id=unique("volume"),
        name="Volume",
        kind="tiered",
        skus=[bottle],
        params={"tiers": [{"min_quantity": 5, "percent": 10}, {"min_quantity": 10, "percent": 20}]},
    )
    totals = {q: (await quote(pricing, {bottle: q}))["total"]["amount"] for q in (4, 5, 9, 10)}
    assert totals == {4: 6000, 5: 6750, 9: 12150, 10: 12000}


async def test_the_same_cart_costs_the_same_in_every_channel(
    pricing: httpx.AsyncClient, unique: Callable[[str], str]
) -> None:
    tee, cap = unique("TEE"), unique("CAP")
    await put_price(pricing, tee, 1999)
    await put_price(pricing, cap, 1250)
    await put_promotion(
        pricing,
        promotion_id=unique("3for2"),
        name="3 for 2 tees",
        kind="buy_n_pay_m",
        skus=[tee],
        params={"buy": 3, "pay": 2},
    )
    cart = {tee: 4, cap: 1}
    quotes = [await quote(pricing, cart, channel) for channel in CHANNELS]
    comparable = [
        {
            k: q[k]
            for k in ("lines", "subtotal", "discount_total", "total", "promotions", "channel_rules")
        }
        for q in quotes
    ]
    assert all(c == comparable[0] for c in comparable)
    assert comparable[0]["channel_rules"] == []

    # An app-only price: now the app quote differs, and says why.
    await put_price(pricing, cap, 999, channel="app")
    app_quote = await quote(pricing, cart, "app")
    web_quote = await quote(pricing, cart, "web")
    assert app_quote["total"]["amount"] == web_quote["total"]["amount"] - 251
    assert any(cap in rule and "app" in rule for rule in app_quote["channel_rules"])
    assert web_quote["channel_rules"] == []


async def test_bad_input_is_refused_with_a_reason(
    pricing: httpx.AsyncClient, unique: Callable[[str], str]
) -> None:
    unknown = unique("NOPE")
    refused = await pricing.post(
        "/quotes", json={"currency": "EUR", "lines": [{"sku": unknown, "quantity": 1}]}
    )
    assert_problem(refused, 422, unknown)

    cases: list[tuple[str, dict[str, Any], int, str]] = [
        (
            "/quotes",
            {"currency": "EUR", "lines": [{"sku": "A", "quantity": -1}]},
            422,
            "greater than 0",
        ),
        (
            "/quotes",
            {"currency": "EUR", "lines": [{"sku": "A", "quantity": 1}], "coupon": "X"},
            422,
            "coupon",
        ),
        ("/quotes", {"currency": "euro", "lines": [{"sku": "A", "quantity": 1}]}, 422, "currency"),
        ("/quotes", {"currency": "EUR", "lines": []}, 422, "lines"),
        (
            "/quotes",
            {"currency": "EUR", "channel": "fax", "lines": [{"sku": "A", "quantity": 1}]},
            422,
            "channel",
        ),
        (
            "/quotes",
            {
                "currency": "EUR",
                "lines": [{"sku": "A", "quantity": 1}, {"sku": "A", "quantity": 2}],
            },
            422,
            "only once",
        ),
        ("/prices", {"sku": "A", "currency": "EUR", "amount": -5}, 422, "amount"),
        (
            "/promotions",
            {
                "promotion_id": "p",
                "name": "n",
                "kind": "buy_n_pay_m",
                "skus": ["A"],
                "params": {"buy": 2, "pay": 3},
            },
            422,
            "less than buy",
        ),
        (
            "/promotions",
            {
                "promotion_id": "p",
                "name": "n",
                "kind": "amount_off",
                "skus": ["A"],
                "params": {"amount": 100},
                "currency": "euro",
            },
            422,
            "currency",
        ),
        (
            "/promotions",
            {
                "promotion_id": "p",
                "name": "n",
                "kind": "percent_off",
                "skus": ["A"],
                "params": {"percent": 150},
            },
            422,
            "percent",
        ),
        (
            "/promotions",
            {"promotion_id": "p", "name": "n", "kind": "half_price", "skus": ["A"], "params": {}},
            422,
            "kind",
        ),
    ]
    for path, body, status, fragment in cases:
        assert_problem(await pricing.post(path, json=body), status, fragment)

    malformed = await pricing.post(
        "/quotes", content=b"{", headers={"content-type": "application/json"}
    )
    assert_problem(malformed, 400, "not valid JSON")

    tampered = await pricing.post("/quote-tokens/verify", json={"quote_token": "a.b.c"})
    body = assert_problem(tampered, 422)
    assert body["type"].endswith("/invalid-quote-token")


async def test_the_openapi_document_is_whole(pricing: httpx.AsyncClient) -> None:
    spec = (await pricing.get("/openapi.json")).json()
    assert dangling_refs(spec) == []
    assert {"/quotes", "/prices", "/promotions"} <= set(spec["paths"])
