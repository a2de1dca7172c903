"""The price book each pricing process keeps in memory, against the real database: a change,
made here or by another replica, is used by the very next quote, and every quote is stored."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from services.pricing import db
from services.pricing.app import create_app as create_pricing
from services.pricing.settings import PricingSettings
from tests.integration.conftest import client_of
from tests.integration.inventory.test_api import assert_problem
from tests.integration.pricing.test_pricing import put_price, put_promotion, quote

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def other_replica(pricing_settings: PricingSettings) -> AsyncIterator[httpx.AsyncClient]:
    """A second pricing process on the same database, with a price book of its own."""
    app = create_pricing(pricing_settings)
    async with app.router.lifespan_context(app), client_of(app, "pricing-2") as client:
        yield client


async def test_a_price_change_is_used_by_the_next_quote(
    pricing: httpx.AsyncClient, unique: Callable[[str], str]
) -> None:
    cap = unique("CAP")
    await put_price(pricing, cap, 1000)
    first = await quote(pricing, {cap: 2})  # read from the database, then kept
    again = await quote(pricing, {cap: 2})  # from memory
    assert first["total"]["amount"] == again["total"]["amount"] == 2000
    assert again["price_version"] == first["price_version"]

    changed = await put_price(pricing, cap, 900)
    after = await quote(pricing, {cap: 2})
    assert after["total"]["amount"] == 1800
    assert after["price_version"] >= changed["price_version"]

    promotion = await put_promotion(
        pricing,
        promotion_id=unique("caps-10"),
        name="Caps: 10% off",
        kind="percent_off",
        skus=[cap],
        params={"percent": 10},
    )
    promoted = await quote(pricing, {cap: 2})
    assert promoted["total"]["amount"] == 1620
    assert [p["promotion_id"] for p in promoted["promotions"]] == [promotion["promotion_id"]]
    assert promoted["price_version"] >= promotion["price_version"]


async def test_a_change_on_another_replica_is_used_by_the_next_quote(
    pricing: httpx.AsyncClient, other_replica: httpx.AsyncClient, unique: Callable[[str], str]
) -> None:
    mug, kit = unique("MUG"), unique("KIT")
    await put_price(pricing, mug, 1200)
    assert (await quote(pricing, {mug: 1}))["total"]["amount"] == 1200
    assert (await quote(other_replica, {mug: 1}))["total"]["amount"] == 1200
    # This replica now knows, at this version, that the kit has no price.
    refused = await pricing.post(
        "/quotes", json={"currency": "EUR", "lines": [{"sku": kit, "quantity": 1}]}
    )
    assert_problem(refused, 422, kit)

    await put_price(other_replica, mug, 1100)
    assert (await quote(pricing, {mug: 1}))["total"]["amount"] == 1100
    await put_price(other_replica, kit, 500)
    given = await quote(pricing, {mug: 1, kit: 1})
    assert given["total"]["amount"] == 1600
    assert (await pricing.get(f"/quotes/{given['quote_id']}")).json() == given
    assert (await other_replica.get(f"/quotes/{given['quote_id']}")).json() == given


async def test_quotes_given_together_are_each_stored(
    pricing: httpx.AsyncClient, unique: Callable[[str], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    sock = unique("SOCK")
    await put_price(pricing, sock, 300)
    await quote(pricing, {sock: 1})  # the book now knows the sku: quotes go straight to storing

    batches: list[int] = []
    store = db.store_quotes_if_current

    async def counting(driver: Any, records: Sequence[db.QuoteRecord]) -> set[str]:
        batches.append(len(records))
        return await store(driver, records)

    monkeypatch.setattr(db, "store_quotes_if_current", counting)
    given = await asyncio.gather(*(quote(pricing, {sock: n}) for n in range(1, 41)))

    assert len({g["quote_id"] for g in given}) == 40
    assert sum(batches) == 40
    assert max(batches) > 1  # one statement stored several of them
    for g in given:
        assert (await pricing.get(f"/quotes/{g['quote_id']}")).json() == g


async def test_a_quote_priced_from_an_older_book_is_not_stored(
    pricing_app: FastAPI, pricing: httpx.AsyncClient, unique: Callable[[str], str]
) -> None:
    hat = unique("HAT")
    version = (await put_price(pricing, hat, 700))["price_version"]
    now = datetime.now(UTC)
    stale = db.QuoteRecord(
        quote_id=unique("q-stale"),
        channel="web",
        currency="EUR",
        total=700,
        price_version=version - 1,
        request="{}",
        quote="{}",
        created_at=now,
        expires_at=now,
    )
    current = stale._replace(quote_id=unique("q-current"), price_version=version)
    async with db.connected(pricing_app.state.quoting.engine) as driver:
        assert await db.store_quotes_if_current(driver, [stale, current]) == {current.quote_id}
    assert (await pricing.get(f"/quotes/{stale.quote_id}")).status_code == 404
