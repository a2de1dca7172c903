"""What the gateway promises every client: keys and roles, bindings, idempotent replay, rate
limits, and a clear problem+json for every kind of bad request."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest

from tests.e2e.conftest import LISBON, Retail, Stack, address, client, is_problem, near, ok

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


async def test_the_keys_make_run_printed_work_for_their_roles(stack: Stack) -> None:
    keys = stack.printed_keys
    assert set(keys) == {"admin", "shop", "store", "partner"}
    assert keys["admin"] == stack.admin_key  # OMNIROUTE_BOOTSTRAP_ADMIN_KEY, exactly
    async with client(stack, keys["shop"]) as shop:
        found = ok(await shop.get("/v1/availability", params={"sku": "TEE-WHT-M"}))
        assert found["items"][0]["total_available"] > 0
        quote = await shop.post(
            "/v1/quotes", json={"currency": "EUR", "lines": [{"sku": "TEE-WHT-M", "quantity": 3}]}
        )
        assert quote.status_code == 201, quote.text
        assert quote.json()["channel"] == "web"
    async with client(stack, keys["store"]) as store:
        ok(await store.get("/v1/stores/store-ams-centraal/fulfillments"))
        is_problem(await store.get("/v1/stores/store-utrecht/fulfillments"), 403)
    async with client(stack, keys["partner"]) as partner:
        ok(await partner.get("/v1/partner/fulfillments"))
    async with client(stack, keys["admin"]) as admin:
        listed = ok(await admin.get("/v1/admin/api-keys", params={"limit": 200}))
        assert {"admin", "shop", "store", "partner"} <= {key["role"] for key in listed["items"]}
        assert all("api_key" not in key for key in listed["items"])


async def test_wrong_or_missing_keys_and_wrong_roles_are_refused(
    retail: Retail, anonymous: httpx.AsyncClient
) -> None:
    missing = is_problem(await anonymous.get("/v1/availability", params={"sku": "X"}), 401)
    assert "Authorization: Bearer" in missing["detail"]
    wrong = await anonymous.get(
        "/v1/availability", params={"sku": "X"}, headers={"Authorization": "Bearer omr_nope"}
    )
    is_problem(wrong, 401)
    assert wrong.headers["www-authenticate"].startswith("Bearer")

    shop = await retail.key("shop", channel="web")
    for method, path in (
        ("POST", "/v1/admin/api-keys"),
        ("POST", "/v1/admin/locations"),
        ("POST", "/v1/admin/prices"),
        ("GET", "/v1/orders/ord_x/routing"),
        ("GET", "/v1/partner/fulfillments"),
        ("POST", "/v1/stores/somewhere/stock-adjustments"),
    ):
        # The role is checked before the body: a shop key learns nothing from its 422s.
        refused = await shop.request(method, path, json={"anything": "at all"})
        assert "shop key" in is_problem(refused, 403)["detail"]

    revoked = await retail.key("shop", channel="web")
    key_id = ok(await retail.admin.get("/v1/admin/api-keys", params={"limit": 200}))["items"]
    ours = [k["key_id"] for k in key_id if k["name"] == f"shop {retail.tag}"]
    for kid in ours:
        ok(await retail.admin.delete(f"/v1/admin/api-keys/{kid}"))
    await asyncio.sleep(6)  # the gateway trusts a verified key for 5 s
    is_problem(await revoked.get("/v1/availability", params={"sku": "X"}), 401)


async def test_bad_input_gets_a_problem_with_the_right_status(retail: Retail) -> None:
    sku = retail.sku("ok")
    await retail.price(sku, 100)
    shop = await retail.key("shop", channel="web")
    store = await retail.location("store", "store", near(LISBON, 90))
    staff = await retail.key("store", store_id=store)

    malformed = await shop.post(
        "/v1/quotes", content=b'{"currency": "EUR", "lines": [', headers={"content-type": "application/json"}
    )  # fmt: skip
    assert "JSON" in is_problem(malformed, 400)["detail"]

    unknown_field = await shop.post(
        "/v1/quotes",
        json={"currency": "EUR", "lines": [{"sku": sku, "quantity": 1}], "coupon": "FREE"},
    )
    assert "coupon" in is_problem(unknown_field, 422)["detail"]

    negative = await shop.post(
        "/v1/quotes", json={"currency": "EUR", "lines": [{"sku": sku, "quantity": -2}]}
    )
    assert "quantity" in is_problem(negative, 422)["detail"]

    wrong_type = await shop.post(
        "/v1/quotes", json={"currency": "EUR", "lines": [{"sku": sku, "quantity": "two"}]}
    )
    is_problem(wrong_type, 422)

    unknown_sku = await shop.post(
        "/v1/quotes", json={"currency": "EUR", "lines": [{"sku": "NO-SUCH-SKU-1", "quantity": 1}]}
    )
    assert "NO-SUCH-SKU-1" in is_problem(unknown_sku, 422)["detail"]

    other_channel = await shop.post(
        "/v1/quotes",
        json={"channel": "app", "currency": "EUR", "lines": [{"sku": sku, "quantity": 1}]},
    )
    assert "channel" in is_problem(other_channel, 403)["detail"]

    assert "order_id" in is_problem(await staff.get("/v1/orders/..bad"), 422)["detail"]
    missing_order = is_problem(await staff.get("/v1/orders/ord_does_not_exist"), 404)
    assert missing_order["instance"] == "/v1/orders/ord_does_not_exist"

    await retail.stock(store, sku, 2)
    oversold = await staff.post(
        f"/v1/stores/{store}/stock-adjustments",
        json={"sku": sku, "delta": -5, "reason": "pos_sale"},
    )
    is_problem(oversold, 409)
    wrong_sign = await staff.post(
        f"/v1/stores/{store}/stock-adjustments", json={"sku": sku, "delta": 3, "reason": "pos_sale"}
    )
    assert "negative" in is_problem(wrong_sign, 422)["detail"]

    forged = await shop.post(
        "/v1/orders",
        json={
            "quote_token": "x" * 40,
            "customer": {"id": "c", "email": "c@example.com"},
            "fulfillment": {"method": "pickup", "store_id": store},
            "lines": [{"sku": sku, "quantity": 1}],
        },
    )
    is_problem(forged, 422)


async def test_a_repeated_idempotency_key_replays_and_a_changed_body_is_refused(
    retail: Retail,
) -> None:
    warehouse = await retail.location("wh", "warehouse", near(LISBON, 100), capabilities=("ship",))
    sku = retail.sku("idem")
    await retail.price(sku, 500)
    await retail.stock(warehouse, sku, 10)
    await retail.routing_sees(sku, warehouse, 10)
    shop = await retail.key("shop", channel="web")
    fulfillment = {"method": "delivery", "address": address(near(LISBON, 101))}
    body = retail.order_body(await retail.quote(shop, {sku: 2}), fulfillment)
    key = {"Idempotency-Key": f"checkout-{uuid.uuid4()}"}

    first = await shop.post("/v1/orders", json=body, headers=key)
    again = await shop.post("/v1/orders", json=body, headers=key)
    assert first.status_code == again.status_code == 202
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers

    changed = await shop.post("/v1/orders", json={**body, "lines": [{"sku": sku, "quantity": 1}]}, headers=key)  # fmt: skip
    assert "Idempotency-Key" in is_problem(changed, 422)["detail"]

    # Concurrent duplicates of a new request: one order, and every answer names it.
    body = retail.order_body(await retail.quote(shop, {sku: 3}), fulfillment)
    key = {"Idempotency-Key": f"checkout-{uuid.uuid4()}"}
    answers = await asyncio.gather(*(shop.post("/v1/orders", json=body, headers=key) for _ in range(6)))  # fmt: skip
    assert {answer.status_code for answer in answers} == {202}
    assert len({answer.json()["order_id"] for answer in answers}) == 1

    await retail.until(shop, first.json()["order_id"], "confirmed")
    await retail.until(shop, answers[0].json()["order_id"], "confirmed")
    level = await retail.available(sku, warehouse)
    assert level["reserved"] == 2 + 3  # one effect per key, however often it was sent

    # A key belongs to the API key that used it: another client's same key is a new request.
    other = await retail.key("shop", channel="web")
    body = retail.order_body(await retail.quote(other, {sku: 1}), fulfillment)
    fresh = await other.post("/v1/orders", json=body, headers=key)
    assert fresh.status_code == 202, fresh.text
    assert fresh.json()["order_id"] != answers[0].json()["order_id"]


async def test_each_key_has_a_rate_limit_and_is_told_when_to_retry(retail: Retail) -> None:
    response = await retail.admin.post(
        "/v1/admin/api-keys",
        json={
            "role": "shop",
            "name": f"slow shop {retail.tag}",
            "channel": "web",
            "rate_limit": {"requests_per_second": 0.5, "burst": 3},
        },
    )
    assert response.status_code == 201, response.text
    async with client(retail.stack, response.json()["api_key"]) as slow:
        answers = [await slow.get("/v1/availability", params={"sku": "X"}) for _ in range(4)]
        assert [a.status_code for a in answers[:3]] == [200, 200, 200]
        limited = is_problem(answers[3], 429)
        retry_after = int(answers[3].headers["retry-after"])
        assert 1 <= retry_after <= 2
        assert "rate limit" in limited["detail"]
        await asyncio.sleep(retry_after)
        assert (await slow.get("/v1/availability", params={"sku": "X"})).status_code == 200


async def test_store_staff_see_stock_everywhere_but_act_only_for_their_store(
    retail: Retail,
) -> None:
    mine = await retail.location("mine", "store", near(LISBON, 110))
    theirs = await retail.location("theirs", "store", near(LISBON, 115))
    sku = retail.sku("lookup")
    await retail.stock(theirs, sku, 6)
    staff = await retail.key("store", store_id=mine)

    seen = ok(await staff.get("/v1/availability", params={"sku": sku}))
    assert [(loc["location_id"], loc["available"]) for loc in seen["items"][0]["locations"]] == [
        (theirs, 6)
    ]
    ok(
        await staff.post(
            f"/v1/stores/{mine}/stock-adjustments",
            json={"sku": sku, "delta": 4, "reason": "receipt"},
        )
    )
    refused = await staff.post(
        f"/v1/stores/{theirs}/stock-adjustments", json={"sku": sku, "delta": 1, "reason": "receipt"}
    )
    assert theirs in is_problem(refused, 403)["detail"]
    is_problem(await staff.get(f"/v1/stores/{theirs}/fulfillments"), 403)


async def test_a_shop_sees_stock_at_most_a_second_old_and_staff_see_it_at_once(
    retail: Retail,
) -> None:
    store = await retail.location("fresh", "store", near(LISBON, 120))
    sku = retail.sku("fresh")
    await retail.stock(store, sku, 5)
    shop = await retail.key("shop", channel="web")
    staff = await retail.key("store", store_id=store)

    def total(response: httpx.Response) -> int:
        return ok(response)["items"][0]["total_available"]  # type: ignore[no-any-return]

    assert total(await shop.get("/v1/availability", params={"sku": sku})) == 5
    await retail.stock(store, sku, 2)
    changed = asyncio.get_running_loop().time()
    assert total(await staff.get("/v1/availability", params={"sku": sku})) == 2
    while total(await shop.get("/v1/availability", params={"sku": sku})) != 2:
        assert asyncio.get_running_loop().time() - changed < 3, (
            "a shop saw stock more than a second old"
        )
        await asyncio.sleep(0.05)
