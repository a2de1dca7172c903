"""A small retail network per test, with ids of its own, for the order saga to route over
(through the services' internal APIs)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx

from tests.support.kafka import eventually

AMSTERDAM = (52.3731, 4.8922)


@dataclass
class Network:
    inventory: httpx.AsyncClient
    pricing: httpx.AsyncClient
    orders: httpx.AsyncClient
    tag: str
    skus: list[str] = field(default_factory=list)

    def id(self, name: str) -> str:
        return f"{name}-{self.tag}"

    @property
    def warehouse(self) -> str:
        return self.id("wh")

    @property
    def store_ams(self) -> str:
        return self.id("store-ams")

    @property
    def store_utr(self) -> str:
        return self.id("store-utr")

    @property
    def partner_location(self) -> str:
        return self.id("dropship")

    @property
    def partner(self) -> str:
        return self.id("partner")

    async def build(self) -> None:
        # Far from everything else in the test session (which is around the Netherlands), so
        # other tests' locations never win a routing decision here.
        base_lat, base_lon = -33.9, 18.4
        # The customer lives 7 km from the warehouse; the stores are 33 and 45 km away, the
        # partner 75 km: the warehouse wins whenever it has the stock.
        places = [
            (self.warehouse, "warehouse", (base_lat, base_lon), ["ship", "returns"], 10, None),
            (
                self.store_ams,
                "store",
                (base_lat + 0.3, base_lon),
                ["ship", "pickup", "returns"],
                50,
                None,
            ),
            (
                self.store_utr,
                "store",
                (base_lat + 0.3, base_lon + 0.3),
                ["ship", "pickup", "returns"],
                50,
                None,
            ),
            (
                self.partner_location,
                "dropship",
                (base_lat - 0.5, base_lon - 0.5),
                ["ship"],
                80,
                self.partner,
            ),
        ]
        for location_id, kind, (lat, lon), capabilities, priority, partner in places:
            response = await self.inventory.post(
                "/locations",
                json={
                    "location_id": location_id,
                    "name": location_id,
                    "type": kind,
                    "lat": lat,
                    "lon": lon,
                    "capabilities": capabilities,
                    "priority": priority,
                    "ship_capacity": 100,
                    "partner_id": partner,
                },
            )
            assert response.status_code == 200, response.text
        # Each location travels on its own partition: wait until routing knows all of them.
        ours = {place[0] for place in places}

        async def known() -> bool:
            response = await self.orders.get("/routing/sites", params={"sku": "ANY"})
            return ours <= {site["location_id"] for site in response.json()}

        await eventually(known)

    @property
    def customer_address(self) -> dict[str, Any]:
        return {
            "line1": "Long Street 1",
            "postal_code": "8001",
            "city": "Cape Town",
            "country": "ZA",
            "lat": -33.92,
            "lon": 18.42,
        }

    async def stock(self, location_id: str, sku: str, on_hand: int) -> None:
        response = await self.inventory.post(
            "/stock-levels", json={"location_id": location_id, "sku": sku, "on_hand": on_hand}
        )
        assert response.status_code == 200, response.text

    async def price(self, sku: str, amount: int) -> None:
        response = await self.pricing.post(
            "/prices", json={"sku": sku, "currency": "EUR", "amount": amount}
        )
        assert response.status_code == 200, response.text

    async def sees(self, sku: str, location_id: str, available: int) -> None:
        """Wait until orders' projection shows this availability (it follows inventory's events)."""

        async def check() -> bool:
            response = await self.orders.get("/routing/sites", params={"sku": sku})
            sites = {s["location_id"]: s for s in response.json()}
            site = sites.get(location_id)
            return site is not None and site["available"][sku] == available

        await eventually(check, timeout=20)

    async def quote(self, lines: dict[str, int], channel: str = "web") -> dict[str, Any]:
        response = await self.pricing.post(
            "/quotes",
            json={
                "channel": channel,
                "currency": "EUR",
                "lines": [{"sku": s, "quantity": q} for s, q in lines.items()],
            },
        )
        assert response.status_code == 201, response.text
        return response.json()  # type: ignore[no-any-return]

    def order_body(self, quote: dict[str, Any], fulfillment: dict[str, Any]) -> dict[str, Any]:
        return {
            "quote_token": quote["quote_token"],
            "customer": {"id": "cust-1", "email": "ada@example.com"},
            "fulfillment": fulfillment,
            "lines": [
                {"sku": line["sku"], "quantity": line["quantity"]} for line in quote["lines"]
            ],
        }

    async def place(
        self, lines: dict[str, int], fulfillment: dict[str, Any], **headers: str
    ) -> str:
        body = self.order_body(await self.quote(lines), fulfillment)
        response = await self.orders.post("/orders", json=body, headers=headers)
        assert response.status_code == 202, response.text
        return response.json()["order_id"]  # type: ignore[no-any-return]

    def deliver(self) -> dict[str, Any]:
        return {"method": "delivery", "address": self.customer_address}

    def collect(self, store_id: str | None = None) -> dict[str, Any]:
        return {"method": "pickup", "store_id": store_id or self.store_ams}

    def hold(self, until: datetime, store_id: str | None = None) -> dict[str, Any]:
        return {
            "method": "reserve",
            "store_id": store_id or self.store_ams,
            "hold_until": until.isoformat(),
        }

    async def order(self, order_id: str) -> dict[str, Any]:
        response = await self.orders.get(f"/orders/{order_id}")
        assert response.status_code == 200, response.text
        return response.json()  # type: ignore[no-any-return]

    async def until(self, order_id: str, *statuses: str, timeout: float = 20) -> dict[str, Any]:
        """The order once it reaches one of `statuses`."""
        deadline = time.monotonic() + timeout
        found: dict[str, Any] = {}

        async def check() -> dict[str, Any] | None:
            nonlocal found
            found = await self.order(order_id)
            return found if found["status"] in statuses else None

        try:
            return await eventually(check, timeout=max(deadline - time.monotonic(), 0.1))  # type: ignore[no-any-return]
        except AssertionError:
            raise AssertionError(
                f"order {order_id} is {found.get('status')} ({found.get('status_reason')}), not {statuses}"
            ) from None

    async def settled(self, order_id: str) -> dict[str, Any]:
        """The order once no fulfillment waits for inventory's answer (after a re-route the
        order keeps its status while the new fulfillment is pending)."""

        async def check() -> dict[str, Any] | None:
            order = await self.order(order_id)
            pending = [f for f in order["fulfillments"] if f["status"] == "pending"]
            return None if pending else order

        return await eventually(check)  # type: ignore[no-any-return]

    async def level(self, location_id: str, sku: str) -> dict[str, Any]:
        response = await self.inventory.get(
            "/stock-levels", params={"location_id": location_id, "sku": sku}
        )
        (found,) = response.json()
        return found  # type: ignore[no-any-return]

    async def act(
        self, fulfillment_id: str, action: str, body: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        response = await self.orders.post(f"/fulfillments/{fulfillment_id}/{action}", json=body)
        assert response.status_code == 200, response.text
        return response.json()  # type: ignore[no-any-return]
