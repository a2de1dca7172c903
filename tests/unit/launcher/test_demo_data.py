"""The demo data must be accepted by inventory's API as it is, and keep the shapes the routing
demos rely on."""

import re

import pytest

from services.contracts.inventory import LocationIn, LocationType, StockLevelIn
from services.launcher import demo_data

SKU_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]*$")
LOCATION_IDS = {location.location_id for location in demo_data.LOCATIONS}
SKUS = {product.sku for product in demo_data.PRODUCTS}


def _locations_of(sku: str) -> set[str]:
    return {level.location_id for level in demo_data.stock_levels() if level.sku == sku}


@pytest.mark.parametrize("location", demo_data.LOCATIONS, ids=lambda loc: loc.location_id)
def test_every_location_is_a_valid_location_request(location: demo_data.DemoLocation) -> None:
    LocationIn.model_validate(location.body())


def test_every_stock_level_is_a_valid_request_for_a_known_location_and_sku() -> None:
    for level in demo_data.stock_levels():
        StockLevelIn.model_validate(level.body())
        assert level.location_id in LOCATION_IDS
        assert level.sku in SKUS


def test_ids_are_unique_and_skus_match_the_contract_pattern() -> None:
    assert len(LOCATION_IDS) == len(demo_data.LOCATIONS)
    assert len(SKUS) == len(demo_data.PRODUCTS)
    assert all(SKU_PATTERN.match(sku) for sku in SKUS)


def test_one_stock_level_per_location_and_sku() -> None:
    keys = [(level.location_id, level.sku) for level in demo_data.stock_levels()]
    assert len(keys) == len(set(keys))


def test_prices_are_positive_minor_units() -> None:
    assert all(isinstance(p.price, int) and p.price > 0 for p in demo_data.PRODUCTS)


def test_some_sku_is_stocked_only_by_the_dropship_partner() -> None:
    dropship = {
        location.location_id
        for location in demo_data.LOCATIONS
        if location.type == LocationType.DROPSHIP.value
    }
    assert any(_locations_of(sku) and _locations_of(sku) <= dropship for sku in SKUS)


def test_some_sku_is_missing_at_the_web_warehouse_but_on_a_store_shelf() -> None:
    stores = {
        location.location_id
        for location in demo_data.LOCATIONS
        if location.type == LocationType.STORE.value
    }
    levels = demo_data.stock_levels()
    at_tilburg = {level.sku for level in levels if level.location_id == demo_data.WH_TILBURG}
    on_store_shelves = {
        level.sku for level in levels if level.location_id in stores and level.on_hand > 0
    }
    assert on_store_shelves - at_tilburg


def test_stores_have_some_sold_out_levels_and_some_safety_stock() -> None:
    store_levels = [
        level for level in demo_data.stock_levels() if level.location_id.startswith("store-")
    ]
    assert any(level.on_hand == 0 for level in store_levels)
    assert any(level.safety_stock > 0 for level in store_levels)
    assert all(0 <= level.on_hand <= 12 for level in store_levels)


def test_the_data_is_deterministic() -> None:
    assert demo_data.stock_levels() == demo_data.stock_levels()
