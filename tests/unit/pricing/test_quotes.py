"""The quote path without a database: the price book in memory, and the quote as it is given
(serialised once, by hand) against the `Quote` contract it promises."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.contracts.pricing import Quote, QuoteRequest, QuoteTokenClaims
from services.infrastructure.quote_tokens import SigningKeys, verify_quote_token
from services.pricing.engine import PriceEntry, PricingError, Promotion
from services.pricing.handlers import price_quote
from services.pricing.price_book import NO_VERSION, BookExcerpt, PriceBookCache

KEYS = SigningKeys.parse("unit:unit-test-signing-key-0123456789-abcdefgh")
TTL = timedelta(minutes=15)
TEES = tuple(f"TEE-{n}" for n in range(3))
PRICES = (
    *(PriceEntry(sku, "EUR", 1999) for sku in TEES),
    PriceEntry("TEE-1", "EUR", 1799, channel="app"),
    PriceEntry("SOCKS", "EUR", 1299),
    PriceEntry("SOCKS", "USD", 1499),
    PriceEntry("BOTTLE", "EUR", 2499),
    PriceEntry("MUG", "EUR", 1299),
)
PROMOTIONS = (
    Promotion("tees-3-for-2", "Tees: 3 for 2", "buy_n_pay_m", TEES, {"buy": 3, "pay": 2}),
    Promotion(
        "socks-volume",
        "Socks",
        "tiered",
        ("SOCKS",),
        {"tiers": [{"min_quantity": 3, "percent": 10}, {"min_quantity": 6, "percent": 12.5}]},
        priority=20,
    ),
    Promotion(
        "camp-kit", "Camp kit", "bundle_price", ("BOTTLE", "MUG"), {"amount": 2999}, priority=30
    ),
    Promotion("app-only", "App: 5% off", "percent_off", ("MUG",), {"percent": 5}, ("app",)),
)
SKUS = (*TEES, "SOCKS", "BOTTLE", "MUG")


def excerpt(version: int, skus: tuple[str, ...] = SKUS) -> BookExcerpt:
    return BookExcerpt(
        version=version,
        skus=skus,
        prices=[p for p in PRICES if p.sku in skus],
        promotions=[p for p in PROMOTIONS if set(p.skus) & set(skus)],
    )


def test_a_newer_version_replaces_the_book_and_the_same_one_fills_it_in() -> None:
    cache = PriceBookCache()
    assert cache.book.version == NO_VERSION
    assert not cache.book.covers(["SOCKS"])

    first = cache.remember(excerpt(3, ("SOCKS", "NOPE")))
    assert cache.book is first
    assert first.covers(["SOCKS", "NOPE"])  # a sku without a price is known to have none
    assert first.prices_of(["NOPE"]) == []

    assert cache.remember(excerpt(3, ("MUG",))) is first
    assert first.covers(["SOCKS", "MUG"])

    newer = cache.remember(excerpt(4, ("MUG",)))
    assert cache.book is newer
    assert newer.version == 4
    assert not newer.covers(["SOCKS"])  # read again, at version 4, when a quote needs it


def test_an_older_excerpt_prices_its_own_quote_and_leaves_the_book_alone() -> None:
    cache = PriceBookCache()
    current = cache.remember(excerpt(7))
    late = cache.remember(excerpt(6, ("SOCKS",)))
    assert late is not current
    assert late.version == 6
    assert late.covers(["SOCKS"])
    assert cache.book is current


def test_a_promotion_that_names_several_skus_of_a_cart_counts_once() -> None:
    book = PriceBookCache().remember(excerpt(1))
    found = book.promotions_touching(["TEE-0", "TEE-1", "MUG"])
    assert sorted(p.promotion_id for p in found) == ["app-only", "camp-kit", "tees-3-for-2"]


carts = st.dictionaries(st.sampled_from(SKUS), st.integers(1, 12), min_size=1, max_size=5)


@settings(max_examples=60, deadline=None)
@given(
    cart=carts,
    channel=st.sampled_from(["web", "app", "store", "marketplace", "partner"]),
)
def test_the_quote_given_is_what_the_quote_contract_serialises(
    cart: dict[str, int], channel: str
) -> None:
    request = QuoteRequest.model_validate(
        {
            "channel": channel,
            "currency": "EUR",
            "lines": [{"sku": sku, "quantity": quantity} for sku, quantity in cart.items()],
        }
    )
    book = PriceBookCache().remember(excerpt(12))
    quote = price_quote(request, book, KEYS, TTL)

    # Byte for byte what FastAPI made of the `Quote` model before: validated, then serialised.
    assert Quote.model_validate_json(quote.body).model_dump_json().encode() == quote.body
    given = Quote.model_validate_json(quote.body)
    assert given.price_version == 12
    assert [line.sku for line in given.lines] == list(cart)
    assert given.total.amount == sum(line.total.amount for line in given.lines)
    assert given.expires_at - given.created_at == TTL

    claims = verify_quote_token(given.quote_token, KEYS)
    assert claims.quote_id == given.quote_id
    assert claims.total == given.total.amount
    assert [line.unit_net_prices for line in claims.lines] == [
        line.unit_net_prices for line in given.lines
    ]
    # The claims were built without validation: validating them changes nothing.
    assert QuoteTokenClaims.model_validate(claims.model_dump()) == claims

    record = quote.record
    assert (record.quote_id, record.total, record.price_version) == (
        given.quote_id,
        given.total.amount,
        12,
    )
    assert json.loads(record.quote) == json.loads(quote.body)
    assert QuoteRequest.model_validate_json(record.request) == request


def test_a_quote_at_a_moment_uses_the_prices_valid_then() -> None:
    now = datetime.now(UTC)
    book = PriceBookCache().remember(
        BookExcerpt(
            version=1,
            skus=("CAP",),
            prices=[
                PriceEntry("CAP", "EUR", 1000),
                PriceEntry("CAP", "EUR", 800, valid_from=now - timedelta(hours=1)),
                PriceEntry("CAP", "EUR", 500, valid_from=now + timedelta(hours=1)),
            ],
            promotions=[],
        )
    )
    request = QuoteRequest.model_validate(
        {"currency": "EUR", "lines": [{"sku": "CAP", "quantity": 1}]}
    )
    body = json.loads(price_quote(request, book, KEYS, TTL).body)
    assert body["total"] == {"amount": 800, "currency": "EUR"}


def test_an_unpriced_sku_is_a_pricing_error() -> None:
    book = PriceBookCache().remember(excerpt(1, ("NOPE",)))
    request = QuoteRequest.model_validate(
        {"currency": "EUR", "lines": [{"sku": "NOPE", "quantity": 1}]}
    )
    with pytest.raises(PricingError, match="NOPE"):
        price_quote(request, book, KEYS, TTL)
