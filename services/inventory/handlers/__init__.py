"""Inventory use cases. Each runs in one unit of work: load, apply the domain rules, save, emit.
Commands from Kafka never raise for business reasons: they answer with an event instead."""

from services.inventory.handlers.common import stock_level_view
from services.inventory.handlers.incoming import (
    promise_stock,
    receive_supply,
    release_promise,
    upsert_supply,
)
from services.inventory.handlers.products import upsert_product
from services.inventory.handlers.reservations import (
    commit_stock,
    expire_reservations,
    release_stock,
    reserve_stock,
    restock_return,
)
from services.inventory.handlers.stock import (
    adjust_stock,
    apply_stock_feed,
    set_stock_level,
    upsert_location,
)

__all__ = [
    "adjust_stock",
    "apply_stock_feed",
    "commit_stock",
    "expire_reservations",
    "promise_stock",
    "receive_supply",
    "release_promise",
    "release_stock",
    "reserve_stock",
    "restock_return",
    "set_stock_level",
    "stock_level_view",
    "upsert_location",
    "upsert_product",
    "upsert_supply",
]
