"""The catalog against the real database: naming products, finding them by the start of a sku
or of a word of their name in any case, taking what was typed literally, and availability
showing the names."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.integration.inventory.conftest import set_stock

pytestmark = pytest.mark.integration


class Catalog:
    """Products of a test's own: every sku starts with `TAG`, and every name word this test
    searches for starts with `tag`, which nothing else in the shared database has."""

    def __init__(self, inventory: httpx.AsyncClient) -> None:
        self.inventory = inventory
        self.tag = f"q{uuid.uuid4().hex[:8]}"
        self.TAG = self.tag.upper()

    async def name(self, sku: str, name: str) -> dict[str, Any]:
        response = await self.inventory.post("/products", json={"sku": sku, "name": name})
        assert response.status_code == 200, response.text
        return response.json()  # type: ignore[no-any-return]

    async def find(self, q: str, **params: Any) -> list[str]:
        response = await self.inventory.get("/products", params={"q": q, **params})
        assert response.status_code == 200, response.text
        return [item["sku"] for item in response.json()["items"]]


@pytest.fixture
async def catalog(inventory: httpx.AsyncClient) -> Catalog:
    catalog = Catalog(inventory)
    t, T = catalog.tag, catalog.TAG
    for sku, name in (
        (f"{T}-TEE-M", f"Organic {t}cotton tee, white, M"),
        (f"{T}-HOODIE", f"Three-{t}season hoodie"),
        (f"{T}-CAP", f"Cap x{t}inside a word"),
        (f"{T}-PCT", f"{t}100% wool scarf"),
        (f"{T}-XSS", f"<script>alert('{t}')</script>"),
    ):
        await catalog.name(sku, name)
    return catalog


async def test_a_product_is_named_and_renamed_by_its_sku(catalog: Catalog) -> None:
    sku = f"{catalog.TAG}-RENAMED"
    first = await catalog.name(sku, "Rain jacket, olive")
    renamed = await catalog.name(sku, "Rain jacket, olive, M")
    assert (first["sku"], first["name"]) == (sku, "Rain jacket, olive")
    assert (renamed["sku"], renamed["name"]) == (sku, "Rain jacket, olive, M")
    assert renamed["updated_at"] >= first["updated_at"]
    response = await catalog.inventory.get("/products", params={"q": sku})
    assert response.json() == {"items": [renamed]}


async def test_a_sku_is_found_by_its_start_in_any_case(catalog: Catalog) -> None:
    T = catalog.TAG
    assert await catalog.find(f"{T.lower()}-tee") == [f"{T}-TEE-M"]
    assert await catalog.find(f"{T}-TEE-M") == [f"{T}-TEE-M"]
    every = [f"{T}-CAP", f"{T}-HOODIE", f"{T}-PCT", f"{T}-TEE-M", f"{T}-XSS"]
    assert await catalog.find(T) == every  # by sku
    assert await catalog.find(T, limit=2) == every[:2]
    assert await catalog.find(f"-{T}") == []  # the start, not anywhere in it


async def test_a_name_is_found_by_the_start_of_any_of_its_words_in_any_case(
    catalog: Catalog,
) -> None:
    t, T = catalog.tag, catalog.TAG
    assert await catalog.find(f"{t}cot") == [f"{T}-TEE-M"]
    assert await catalog.find(f"{T}COTTON TEE") == [f"{T}-TEE-M"]  # across words, too
    assert await catalog.find(f"  {t}cotton ") == [f"{T}-TEE-M"]  # blanks around do not count
    assert await catalog.find(f"{t}season") == [f"{T}-HOODIE"]  # after a hyphen
    assert await catalog.find(f"{t}inside") == []  # inside a word is not its start
    assert await catalog.find(f"{t}otton") == []


async def test_what_is_typed_is_taken_literally(catalog: Catalog) -> None:
    t, T = catalog.tag, catalog.TAG
    # LIKE's wildcards match only themselves: unescaped, each of these would find every sku.
    assert await catalog.find(f"{T}%") == []
    assert await catalog.find(f"{T}_") == []
    assert await catalog.find(f"{T}-%") == []
    assert await catalog.find(f"{t}100%") == [f"{T}-PCT"]
    assert await catalog.find(f"{t}1_0") == []
    # Nor is anything a regular expression's operator.
    assert await catalog.find(f"{t}.*") == []
    assert await catalog.find(f"{t}[0-9]") == []
    assert await catalog.find(f"{t}1+") == []
    # Markup is text like any other: stored and answered as it was given (the JSON carries it
    # as a string; whoever shows it escapes it).
    response = await catalog.inventory.get("/products", params={"q": f"<script>alert('{t}"})
    assert response.status_code == 200
    (xss,) = response.json()["items"]
    assert xss["name"] == f"<script>alert('{t}')</script>"


@pytest.mark.parametrize(
    "q", ["(", ")", "[", "\\", "\\m", "[[:alnum:]]", "*", "+", "?", "{1}", "|", "^", "$", "'", '"']
)
async def test_any_text_is_a_search_never_an_error(inventory: httpx.AsyncClient, q: str) -> None:
    response = await inventory.get("/products", params={"q": q, "limit": 1})
    assert response.status_code == 200, response.text
    assert len(response.json()["items"]) <= 1


async def test_only_blanks_find_nothing(inventory: httpx.AsyncClient) -> None:
    response = await inventory.get("/products", params={"q": "   "})
    assert response.json() == {"items": []}


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"q": ""},
        {"q": "x" * 65},
        {"q": "a\x00b"},
        {"q": "a", "limit": 0},
        {"q": "a", "limit": 51},
    ],
)
async def test_a_search_out_of_bounds_is_a_422(
    inventory: httpx.AsyncClient, params: dict[str, Any]
) -> None:
    response = await inventory.get("/products", params=params)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize(
    "body",
    [
        {"sku": "BAD SKU", "name": "x"},
        {"sku": "OK", "name": ""},
        {"sku": "OK", "name": "x" * 201},
        {"sku": "OK", "name": "a\x00b"},
        {"sku": "OK"},
        {"sku": "OK", "name": "x", "colour": "red"},
    ],
)
async def test_a_bad_product_is_a_422(inventory: httpx.AsyncClient, body: dict[str, Any]) -> None:
    response = await inventory.post("/products", json=body)
    assert response.status_code == 422, response.text


async def test_availability_names_each_sku_the_catalog_knows(
    catalog: Catalog, store: dict[str, Any], unique: Callable[[str], str]
) -> None:
    T = catalog.TAG
    stocked, nameless = f"{T}-TEE-M", unique("NAMELESS").upper()
    await set_stock(catalog.inventory, store["location_id"], stocked, 4)
    await set_stock(catalog.inventory, store["location_id"], nameless, 2)
    response = await catalog.inventory.get(
        "/availability", params={"sku": [stocked, nameless, f"{T}-HOODIE", stocked]}
    )
    assert response.status_code == 200, response.text
    items = {item["sku"]: item for item in response.json()["items"]}
    assert list(items) == [stocked, nameless, f"{T}-HOODIE"]
    assert items[stocked]["name"] == f"Organic {catalog.tag}cotton tee, white, M"
    assert [loc["available"] for loc in items[stocked]["locations"]] == [4]
    assert items[nameless]["name"] is None
    assert items[nameless]["total_available"] == 2
    # Named but nowhere in stock: the name still comes with it.
    hoodie = items[f"{T}-HOODIE"]
    assert (hoodie["name"], hoodie["locations"], hoodie["total_available"]) == (
        f"Three-{catalog.tag}season hoodie",
        [],
        0,
    )

    stores_only = await catalog.inventory.get(
        "/availability", params={"sku": stocked, "location_type": "warehouse"}
    )
    (item,) = stores_only.json()["items"]
    assert (item["name"], item["locations"]) == (f"Organic {catalog.tag}cotton tee, white, M", [])
