"""What the store console asks the gateway, against the whole stack as `make run` starts it:
who a printed key is, the demo's product names, and a refund previewed at the counter before
the return is taken."""

from __future__ import annotations

import pytest

from services.launcher import demo_data
from tests.e2e.conftest import LISBON, Retail, Stack, client, is_problem, near, ok

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


async def test_each_printed_key_learns_its_role_and_binding(stack: Stack) -> None:
    expected = {
        "admin": {},
        "shop": {"channel": "web"},
        "store": {"store_id": "store-ams-centraal"},
        "partner": {"partner_id": "partner-northwind"},
    }
    for role, binding in expected.items():
        async with client(stack, stack.printed_keys[role]) as caller:
            me = ok(await caller.get("/v1/me"))
        assert me["role"] == role
        assert {name: me[name] for name in ("channel", "store_id", "partner_id")} == {
            "channel": None,
            "store_id": None,
            "partner_id": None,
            **binding,
        }
        assert "api_key" not in me


async def test_the_demo_products_have_their_names(stack: Stack) -> None:
    names = {product.sku: product.name for product in demo_data.PRODUCTS}
    async with client(stack, stack.printed_keys["store"]) as staff:
        tees = ok(await staff.get("/v1/products", params={"q": "tee-wht", "limit": 50}))
        assert [(p["sku"], p["name"]) for p in tees["items"]] == [
            (sku, names[sku]) for sku in sorted(names) if sku.startswith("TEE-WHT")
        ]
        by_word = ok(await staff.get("/v1/products", params={"q": "SEASON"}))
        assert [p["sku"] for p in by_word["items"]] == ["SLEEPBAG-3S"]  # "Three-season ..."
        found = ok(await staff.get("/v1/availability", params={"sku": ["TEE-WHT-M", "KAYAK-2P"]}))
        assert [(item["sku"], item["name"]) for item in found["items"]] == [
            ("TEE-WHT-M", names["TEE-WHT-M"]),
            ("KAYAK-2P", names["KAYAK-2P"]),
        ]
    async with client(stack, stack.printed_keys["partner"]) as partner:
        ok(await partner.get("/v1/products", params={"q": "kayak"}))


async def test_the_counter_sees_the_refund_before_taking_the_return(retail: Retail) -> None:
    store = await retail.location("counter", "store", near(LISBON, -80))
    sku = retail.sku("mug")
    await retail.price(sku, 1250)
    ok(await retail.admin.post("/v1/admin/products", json={"sku": sku, "name": "Enamel mug"}))
    await retail.stock(store, sku, 4)
    await retail.routing_sees(sku, store, 4)
    shop = await retail.key("shop", channel="web")
    staff = await retail.key("store", store_id=store)
    order_id = await retail.place(shop, {sku: 2}, {"method": "pickup", "store_id": store})
    (fulfillment,) = (await retail.until(shop, order_id, "confirmed"))["fulfillments"]
    ok(await staff.post(f"/v1/fulfillments/{fulfillment['fulfillment_id']}/ready"))
    ok(await staff.post(f"/v1/fulfillments/{fulfillment['fulfillment_id']}/handover"))
    await retail.until(shop, order_id, "completed")

    body = {
        "order_id": order_id,
        "store_id": store,
        "lines": [{"sku": sku, "quantity": 2, "condition": "resellable"}],
        "reason": "a gift they did not want",
    }
    preview = ok(await staff.post("/v1/returns/preview", json=body))
    assert preview["refund"] == {"amount": 2500, "currency": "EUR"}
    still = ok(await shop.get(f"/v1/orders/{order_id}"))
    assert still["totals"]["refunded"]["amount"] == 0  # a preview takes nothing back

    returned = await staff.post("/v1/returns", json=body)
    assert returned.status_code == 201, returned.text
    assert (returned.json()["refund"], returned.json()["lines"]) == (
        preview["refund"],
        preview["lines"],
    )
    nothing_left = is_problem(await staff.post("/v1/returns/preview", json=body), 422)
    assert "already returned" in nothing_left["detail"]
    is_problem(await shop.post("/v1/returns/preview", json=body), 403)
