"""Demo data for the embedded stack: a small Dutch fashion and lifestyle retailer with two
warehouses, four city stores and one dropship partner. Pure data, no I/O: the launcher seeds it
through the services' HTTP APIs.

The assortment is shaped so that routing has something to decide: the web warehouse (Tilburg)
lacks a few skus that Venlo or the stores have, one sku is carried only by the stores, some store
levels are sold out, and the big outdoor items exist only at the dropship partner.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

CURRENCY = "EUR"


@dataclass(frozen=True)
class DemoLocation:
    location_id: str
    name: str
    type: str
    lat: float
    lon: float
    capabilities: tuple[str, ...]
    priority: int
    ship_capacity: int
    partner_id: str | None = None

    def body(self) -> dict[str, Any]:
        """The `LocationIn` request body."""
        body: dict[str, Any] = {
            "location_id": self.location_id,
            "name": self.name,
            "type": self.type,
            "lat": self.lat,
            "lon": self.lon,
            "capabilities": list(self.capabilities),
            "priority": self.priority,
            "ship_capacity": self.ship_capacity,
        }
        if self.partner_id is not None:
            body["partner_id"] = self.partner_id
        return body


@dataclass(frozen=True)
class DemoProduct:
    sku: str
    name: str
    price: int
    """Base price in minor units of `CURRENCY` (1999 is EUR 19.99), for the pricing service."""

    def body(self) -> dict[str, Any]:
        """The `ProductIn` request body: its name in inventory's catalog."""
        return {"sku": self.sku, "name": self.name}


class DemoStockLevel(NamedTuple):
    location_id: str
    sku: str
    on_hand: int
    safety_stock: int

    def body(self) -> dict[str, Any]:
        """The `StockLevelIn` request body."""
        return self._asdict()


WH_TILBURG = "wh-tilburg"
WH_VENLO = "wh-venlo"
DROPSHIP_NORTHWIND = "dropship-northwind"

_STORE_CAPABILITIES = ("ship", "pickup", "returns")

LOCATIONS: tuple[DemoLocation, ...] = (
    DemoLocation(
        WH_TILBURG, "Web warehouse Tilburg", "warehouse", 51.5555, 5.0913, ("ship", "returns"),
        priority=10, ship_capacity=5000,
    ),
    DemoLocation(
        WH_VENLO, "Warehouse Venlo", "warehouse", 51.3704, 6.1724, ("ship", "returns"),
        priority=20, ship_capacity=3000,
    ),
    DemoLocation(
        "store-ams-centraal", "Store Amsterdam Centraal (Damrak)", "store", 52.3738, 4.8910,
        _STORE_CAPABILITIES, priority=50, ship_capacity=80,
    ),
    DemoLocation(
        "store-rtm-lijnbaan", "Store Rotterdam Lijnbaan", "store", 51.9203, 4.4757,
        _STORE_CAPABILITIES, priority=50, ship_capacity=60,
    ),
    DemoLocation(
        "store-utr-hoog-catharijne", "Store Utrecht Hoog Catharijne", "store", 52.0894, 5.1100,
        _STORE_CAPABILITIES, priority=50, ship_capacity=60,
    ),
    DemoLocation(
        "store-dhg-grote-marktstraat", "Store The Hague Grote Marktstraat", "store", 52.0760,
        4.3106, _STORE_CAPABILITIES, priority=50, ship_capacity=40,
    ),
    DemoLocation(
        DROPSHIP_NORTHWIND, "Northwind Outdoor (dropship, Eindhoven)", "dropship", 51.4416, 5.4697,
        ("ship",), priority=80, ship_capacity=500, partner_id="partner-northwind",
    ),
)  # fmt: skip

PRODUCTS: tuple[DemoProduct, ...] = (
    DemoProduct("TEE-WHT-S", "Organic cotton tee, white, S", 1999),
    DemoProduct("TEE-WHT-M", "Organic cotton tee, white, M", 1999),
    DemoProduct("TEE-WHT-L", "Organic cotton tee, white, L", 1999),
    DemoProduct("TEE-BLK-S", "Organic cotton tee, black, S", 1999),
    DemoProduct("TEE-BLK-M", "Organic cotton tee, black, M", 1999),
    DemoProduct("TEE-BLK-L", "Organic cotton tee, black, L", 1999),
    DemoProduct("JEANS-SLIM-30", "Slim jeans, indigo, W30", 5999),
    DemoProduct("JEANS-SLIM-32", "Slim jeans, indigo, W32", 5999),
    DemoProduct("JEANS-SLIM-34", "Slim jeans, indigo, W34", 5999),
    DemoProduct("JEANS-REG-32", "Regular jeans, stone wash, W32", 5499),
    DemoProduct("JEANS-REG-34", "Regular jeans, stone wash, W34", 5499),
    DemoProduct("HOODIE-GRY-S", "Hoodie, heather grey, S", 4999),
    DemoProduct("HOODIE-GRY-M", "Hoodie, heather grey, M", 4999),
    DemoProduct("HOODIE-GRY-L", "Hoodie, heather grey, L", 4999),
    DemoProduct("HOODIE-NAVY-M", "Hoodie, navy, M", 4999),
    DemoProduct("HOODIE-NAVY-L", "Hoodie, navy, L", 4999),
    DemoProduct("JACKET-RAIN-M", "Rain jacket, olive, M", 8999),
    DemoProduct("JACKET-RAIN-L", "Rain jacket, olive, L", 8999),
    DemoProduct("SOCKS-3PK", "Everyday socks, 3-pack", 1299),
    DemoProduct("SOCKS-WOOL", "Merino hiking socks", 1499),
    DemoProduct("CAP-NAVY", "Baseball cap, navy", 1999),
    DemoProduct("BEANIE-GRY", "Rib beanie, grey", 1799),
    DemoProduct("SCARF-WOOL", "Lambswool scarf, camel", 2999),
    DemoProduct("TOTE-CANVAS", "Canvas tote bag", 1499),
    DemoProduct("BACKPACK-20L", "Daypack 20 l", 4999),
    DemoProduct("BOTTLE-750", "Insulated bottle 750 ml", 2499),
    DemoProduct("MUG-ENAMEL", "Enamel camping mug", 1299),
    DemoProduct("TOWEL-BEACH", "Striped beach towel", 2499),
    DemoProduct("SUNGLASSES-CLS", "Classic sunglasses", 3999),
    DemoProduct("SNEAKER-WHT-42", "Leather sneaker, white, EU 42", 8999),
    DemoProduct("SNEAKER-WHT-43", "Leather sneaker, white, EU 43", 8999),
    DemoProduct("SNEAKER-WHT-44", "Leather sneaker, white, EU 44", 8999),
    DemoProduct("KAYAK-2P", "Inflatable kayak, 2 person", 49900),
    DemoProduct("SUP-BOARD", "Inflatable stand-up paddle board", 39900),
    DemoProduct("TENT-4P", "Family tent, 4 person", 24900),
    DemoProduct("SLEEPBAG-3S", "Three-season sleeping bag", 8999),
)

DROPSHIP_ONLY: frozenset[str] = frozenset({"KAYAK-2P", "SUP-BOARD", "TENT-4P", "SLEEPBAG-3S"})
"""Too big for the own network: only the dropship partner carries these."""

DROPSHIP_ALSO: frozenset[str] = frozenset({"BOTTLE-750", "BACKPACK-20L", "MUG-ENAMEL"})
"""Carried by the partner as well as by the own network, so routing can choose."""

NOT_AT_TILBURG: frozenset[str] = frozenset(
    {"JEANS-SLIM-34", "HOODIE-NAVY-L", "SCARF-WOOL", "SNEAKER-WHT-44"}
)
"""Out of the web warehouse's range: orders for these route elsewhere."""

NOT_AT_VENLO: frozenset[str] = frozenset({"SCARF-WOOL", "SUNGLASSES-CLS", "TEE-WHT-S"})
"""SCARF-WOOL is in neither warehouse: online it can only ship from a store."""


def _spread(location_id: str, sku: str, size: int) -> int:
    """A stable pseudo-random number in [0, size): varied but identical on every run."""
    return zlib.crc32(f"{location_id}/{sku}".encode()) % size


def _level(location: DemoLocation, sku: str) -> DemoStockLevel | None:
    if location.type == "dropship":
        if sku not in DROPSHIP_ONLY | DROPSHIP_ALSO:
            return None
        return DemoStockLevel(
            location.location_id, sku, 5 + _spread(location.location_id, sku, 26), 0
        )
    if sku in DROPSHIP_ONLY:
        return None
    if location.type == "warehouse":
        excluded = NOT_AT_TILBURG if location.location_id == WH_TILBURG else NOT_AT_VENLO
        if sku in excluded:
            return None
        on_hand = 40 + 10 * _spread(location.location_id, sku, 37)
        return DemoStockLevel(location.location_id, sku, on_hand, 5)
    # A store: small numbers, about one level in five sold out (kept as a level at 0, so staff
    # see "carried here, none left" rather than "not carried").
    roll = _spread(location.location_id, sku, 65)
    on_hand = 0 if roll < 13 else roll % 13
    safety_stock = 1 if on_hand >= 4 and roll % 4 == 0 else 0
    return DemoStockLevel(location.location_id, sku, on_hand, safety_stock)


def stock_levels() -> list[DemoStockLevel]:
    """Every demo stock level, location by location in `LOCATIONS` order."""
    levels = (_level(location, product.sku) for location in LOCATIONS for product in PRODUCTS)
    return [level for level in levels if level is not None]


def prices() -> list[dict[str, Any]]:
    """Base prices for every product, plus one app-only price so channel rules can be seen."""
    base = [{"sku": p.sku, "currency": CURRENCY, "amount": p.price} for p in PRODUCTS]
    return [*base, {"sku": "CAP-NAVY", "currency": CURRENCY, "amount": 1499, "channel": "app"}]


PROMOTIONS: tuple[dict[str, Any], ...] = (
    {
        "promotion_id": "tees-3-for-2",
        "name": "Tees: 3 for 2",
        "kind": "buy_n_pay_m",
        "skus": [p.sku for p in PRODUCTS if p.sku.startswith("TEE-")],
        "params": {"buy": 3, "pay": 2},
        "priority": 10,
    },
    {
        "promotion_id": "socks-volume",
        "name": "Socks: 10% off from 3, 20% off from 6",
        "kind": "tiered",
        "skus": ["SOCKS-3PK", "SOCKS-WOOL"],
        "params": {
            "tiers": [{"min_quantity": 3, "percent": 10}, {"min_quantity": 6, "percent": 20}]
        },
        "priority": 20,
    },
    {
        "promotion_id": "camp-kit",
        "name": "Camp kit: bottle and mug for 29.99",
        "kind": "bundle_price",
        "skus": ["BOTTLE-750", "MUG-ENAMEL"],
        "params": {"amount": 2999},
        "currency": CURRENCY,
        "priority": 30,
    },
)


def supplies(now: datetime | None = None) -> list[dict[str, Any]]:
    """Purchase orders on their way, so availability shows incoming stock and a shop can take a
    pre-order (`allow_backorder`) for what only the partner has on the shelf today."""
    moment = (now or datetime.now(UTC)).replace(minute=0, second=0, microsecond=0)
    return [
        {
            "supply_id": "po-demo-kayak",
            "location_id": WH_TILBURG,
            "sku": "KAYAK-2P",
            "quantity": 12,
            "expected_at": (moment + timedelta(days=10)).isoformat(),
        },
        {
            "supply_id": "po-demo-tent",
            "location_id": WH_TILBURG,
            "sku": "TENT-4P",
            "quantity": 6,
            "expected_at": (moment + timedelta(days=21)).isoformat(),
        },
    ]
