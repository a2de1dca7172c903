"""Stock set a moment ago sells at once: an order placed right after `/v1/admin/stock` is
confirmed, never rejected because orders' view of stock is still behind (DESIGN.md §7)."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import LISBON, Retail, address, near, ok

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


async def test_twelve_skus_ordered_right_after_their_stock_is_set_are_all_confirmed(
    retail: Retail,
) -> None:
    # Locations opened a moment ago too: routing may not have heard of them either.
    warehouse = await retail.location("fresh-wh", "warehouse", near(LISBON, 30), priority=10)
    store = await retail.location("fresh-store", "store", near(LISBON, 31))
    shop = await retail.key("shop", channel="web")
    skus = [retail.sku(f"fresh{n}") for n in range(12)]
    for sku in skus:
        await retail.price(sku, 1200)

    placed: list[tuple[str, str, str]] = []
    for n, sku in enumerate(skus):
        at, fulfillment = (
            (store, {"method": "pickup", "store_id": store})
            if n % 2
            else (warehouse, {"method": "delivery", "address": address(near(LISBON, 30, 1))})
        )
        # No waiting between the stock change and the order: quote and order follow at once.
        await retail.stock(at, sku, 2)
        body = retail.order_body(await retail.quote(shop, {sku: 1}), fulfillment)
        response = await shop.post("/v1/orders", json=body)
        assert response.status_code == 202, response.text
        placed.append((response.json()["order_id"], sku, at))

    for order_id, sku, at in placed:
        order = await retail.until(shop, order_id, "confirmed", "rejected")
        routing = ok(await retail.admin.get(f"/v1/orders/{order_id}/routing"))
        assert order["status"] == "confirmed", routing
        (fulfillment,) = order["fulfillments"]
        assert fulfillment["location_id"] == at
        assert [(line["sku"], line["quantity"]) for line in fulfillment["lines"]] == [(sku, 1)]
