"""A query parameter that takes one value is a 422 when given twice; one that takes a list
takes each."""

from __future__ import annotations

import httpx
import pytest

pytestmark = pytest.mark.integration


async def test_a_single_valued_query_parameter_given_twice_is_a_422(
    inventory: httpx.AsyncClient,
) -> None:
    response = await inventory.get("/stock-levels?location_id=a&location_id=b")
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")
    assert "'location_id' (2 times)" in response.json()["detail"]
    assert (await inventory.get("/stock-levels?sku=A&sku=B")).status_code == 200


async def test_the_gateway_says_so_too_and_through_its_own_dependencies(
    gateway: httpx.AsyncClient,
) -> None:
    twice = await gateway.get("/v1/availability?sku=A&near=1,2&near=3,4")
    assert twice.status_code == 422, twice.text
    assert "'near'" in twice.json()["detail"]
    assert (await gateway.get("/v1/availability?sku=A&sku=B")).status_code == 200
