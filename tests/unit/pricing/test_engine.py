"""Pricing engine, pure: properties for the invariants, examples for each promotion kind."""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.pricing.engine import (
    CartLine,
    PricedCart,
    PriceEntry,
    PricingError,
    Promotion,
    allocate,
    price_cart,
)
from services.retail.refunds import RefundError, refund_of_units

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
CHANNELS = ("web", "app", "store", "marketplace", "partner")
SKUS = ("SKU-A", "SKU-B", "SKU-C", "SKU-D", "SKU-E")
KINDS = ("percent_off", "amount_off", "buy_n_pay_m", "tiered", "bundle_price")


def cart(quantities: Mapping[str, int]) -> list[CartLine]:
    return [CartLine(sku, quantity) for sku, quantity in quantities.items()]


def base_prices(amounts: Mapping[str, int]) -> list[PriceEntry]:
    return [PriceEntry(sku, "EUR", amount) for sku, amount in amounts.items()]


def promotion(
    promotion_id: str, kind: str, skus: Sequence[str], params: dict[str, Any], **options: Any
) -> Promotion:
    # amount_off and bundle_price need a currency to mean anything; the examples are in EUR.
    options.setdefault("currency", "EUR" if kind in ("amount_off", "bundle_price") else None)
    return Promotion(promotion_id, f"{promotion_id} deal", kind, tuple(skus), params, **options)


def quote(
    lines: Sequence[CartLine],
    prices: Sequence[PriceEntry],
    promotions: Sequence[Promotion] = (),
    *,
    channel: str = "web",
    currency: str = "EUR",
    at: datetime = NOW,
) -> PricedCart:
    return price_cart(
        lines, currency=currency, channel=channel, prices=prices, promotions=promotions, at=at
    )


def percent_of(amount: int, percent: int) -> int:
    """Half-up rounding of an integer percent, independent of the engine's Decimal path."""
    return (amount * percent * 2 + 100) // 200


amounts = st.integers(1, 100_000)
quantities = st.integers(1, 12)
percents = st.one_of(st.integers(1, 100), st.integers(1, 999).map(lambda tenths: tenths / 10))


@dataclass(frozen=True)
class Scenario:
    lines: list[CartLine]
    prices: list[PriceEntry]
    promotions: list[Promotion]


@st.composite
def promotions_over(draw: st.DrawFn, promotion_id: str) -> Promotion:
    kind = draw(st.sampled_from(KINDS))
    skus = draw(
        st.lists(st.sampled_from(SKUS), min_size=1, max_size=3, unique=kind != "bundle_price")
    )
    if kind == "percent_off":
        params: dict[str, Any] = {"percent": draw(percents)}
    elif kind in ("amount_off", "bundle_price"):
        params = {"amount": draw(st.integers(1, 150_000))}
    elif kind == "buy_n_pay_m":
        buy = draw(st.integers(2, 5))
        params = {"buy": buy, "pay": draw(st.integers(1, buy - 1))}
    else:
        tier = st.fixed_dictionaries({"min_quantity": st.integers(1, 20), "percent": percents})
        params = {"tiers": draw(st.lists(tier, min_size=1, max_size=3))}
    return promotion(
        promotion_id,
        kind,
        skus,
        params,
        priority=draw(st.integers(0, 3)),
        exclusive=draw(st.booleans()),
    )


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    """A cart over some skus, base prices only, and promotions that may name other skus too."""
    skus = draw(st.lists(st.sampled_from(SKUS), min_size=1, max_size=4, unique=True))
    lines = [CartLine(sku, draw(quantities)) for sku in skus]
    prices = [PriceEntry(sku, "EUR", draw(amounts)) for sku in skus]
    count = draw(st.integers(0, 4))
    promotions = [draw(promotions_over(f"P{i}")) for i in range(count)]
    return Scenario(lines, prices, promotions)


@given(scenarios())
def test_totals_add_up_exactly(scenario: Scenario) -> None:
    priced = quote(scenario.lines, scenario.prices, scenario.promotions)
    for line in priced.lines:
        assert len(line.unit_net_prices) == line.quantity
        assert list(line.unit_net_prices) == sorted(line.unit_net_prices, reverse=True)
        assert line.total == sum(line.unit_net_prices)
        assert line.discount == line.unit_price * line.quantity - line.total
    assert priced.subtotal == sum(line.unit_price * line.quantity for line in priced.lines)
    assert priced.total == sum(line.total for line in priced.lines)
    assert priced.total == priced.subtotal - priced.discount_total
    assert priced.discount_total == sum(applied.discount for applied in priced.applied)
    assert all(applied.discount > 0 for applied in priced.applied)


@given(scenarios())
def test_no_unit_costs_less_than_nothing_or_more_than_its_price(scenario: Scenario) -> None:
    priced = quote(scenario.lines, scenario.prices, scenario.promotions)
    for line in priced.lines:
        assert all(0 <= net <= line.unit_price for net in line.unit_net_prices)


@given(scenarios(), st.data())
def test_line_order_does_not_change_the_price(scenario: Scenario, data: st.DataObject) -> None:
    shuffled = data.draw(st.permutations(scenario.lines))
    first = quote(scenario.lines, scenario.prices, scenario.promotions)
    second = quote(shuffled, scenario.prices, scenario.promotions)
    assert [line.sku for line in second.lines] == [line.sku for line in shuffled]
    assert {line.sku: line for line in first.lines} == {line.sku: line for line in second.lines}
    assert (first.subtotal, first.discount_total, first.total) == (
        second.subtotal,
        second.discount_total,
        second.total,
    )
    assert first.applied == second.applied


@given(
    st.lists(st.sampled_from(SKUS[:3]), min_size=3, max_size=3),
    st.tuples(amounts, amounts, amounts),
    st.booleans(),
)
def test_three_for_two_on_three_units_pays_for_the_two_dearest(
    picked: list[str], unit_prices: tuple[int, int, int], exclusive: bool
) -> None:
    price_of = dict(zip(SKUS[:3], unit_prices, strict=True))
    three_for_two = promotion(
        "3FOR2", "buy_n_pay_m", SKUS[:3], {"buy": 3, "pay": 2}, exclusive=exclusive
    )
    priced = quote(cart(Counter(picked)), base_prices(price_of), [three_for_two])
    paid = [price_of[sku] for sku in picked]
    assert priced.total == sum(paid) - min(paid)


@given(
    st.integers(2, 5),
    st.integers(1, 6),
    st.integers(1, 50),
    st.integers(51, 100),
    amounts,
)
def test_tier_boundaries_are_exact(
    low: int, step: int, low_percent: int, high_percent: int, unit_price: int
) -> None:
    high = low + step
    tiers = [
        {"min_quantity": high, "percent": high_percent},
        {"min_quantity": low, "percent": low_percent},
    ]
    volume = promotion("VOLUME", "tiered", ["SKU-A"], {"tiers": tiers})

    def discount_for(quantity: int) -> int:
        return quote(
            cart({"SKU-A": quantity}), base_prices({"SKU-A": unit_price}), [volume]
        ).discount_total

    assert discount_for(low - 1) == 0
    assert discount_for(low) == percent_of(unit_price * low, low_percent)
    assert discount_for(high - 1) == percent_of(unit_price * (high - 1), low_percent)
    assert discount_for(high) == percent_of(unit_price * high, high_percent)


@given(scenarios())
def test_every_channel_pays_the_same_without_channel_rules(scenario: Scenario) -> None:
    quotes = [
        quote(scenario.lines, scenario.prices, scenario.promotions, channel=channel)
        for channel in CHANNELS
    ]
    web = quotes[0]
    for other in quotes:
        assert other.lines == web.lines
        assert (other.subtotal, other.discount_total, other.total) == (
            web.subtotal,
            web.discount_total,
            web.total,
        )
        assert other.applied == web.applied
        assert other.channel_rules == ()


@given(scenarios(), st.data())
def test_refunds_of_every_unit_sum_to_what_was_paid(
    scenario: Scenario, data: st.DataObject
) -> None:
    priced = quote(scenario.lines, scenario.prices, scenario.promotions)
    for line in priced.lines:
        cuts = data.draw(st.sets(st.integers(1, line.quantity - 1))) if line.quantity > 1 else set()
        bounds = [0, *sorted(cuts), line.quantity]
        refunds = [
            refund_of_units(line.unit_net_prices, start, end - start)
            for start, end in itertools.pairwise(bounds)
        ]
        assert all(refund >= 0 for refund in refunds)
        assert sum(refunds) == line.total


@given(st.lists(st.integers(0, 100_000), max_size=12), st.data())
def test_allocation_adds_up_stays_within_the_weights_and_is_fair(
    weights: list[int], data: st.DataObject
) -> None:
    amount = data.draw(st.integers(0, 2 * sum(weights)))
    shares = allocate(amount, weights)
    assert shares == allocate(amount, weights)
    assert sum(shares) == amount
    for share, weight in zip(shares, weights, strict=True):
        assert share >= 0
        assert share <= weight or amount > sum(weights)
        if weight == 0:
            assert share == 0
        else:
            # Largest remainder: every share is its exact quota rounded down or up.
            assert abs(share - Fraction(amount * weight, sum(weights))) < 1


def test_largest_remainder_gives_the_extra_cents_to_the_lowest_index_on_ties() -> None:
    assert allocate(100, [1, 1, 1]) == [34, 33, 33]
    assert allocate(2, [1, 1, 1]) == [1, 1, 0]
    assert allocate(10, [1, 2, 3]) == [2, 3, 5]
    assert allocate(0, []) == []
    assert allocate(0, [0, 0]) == [0, 0]


@pytest.mark.parametrize(("amount", "weights"), [(1, []), (1, [0, 0]), (-1, [1]), (1, [2, -1])])
def test_allocation_refuses_what_cannot_be_split(amount: int, weights: list[int]) -> None:
    with pytest.raises(PricingError):
        allocate(amount, weights)


def test_an_exclusive_three_for_two_keeps_a_later_percent_off_its_units() -> None:
    promotions = [
        promotion("3FOR2", "buy_n_pay_m", ["SKU-A"], {"buy": 3, "pay": 2}, exclusive=True),
        promotion("TEN", "percent_off", ["SKU-A"], {"percent": 10}, priority=200),
    ]
    priced = quote(cart({"SKU-A": 4}), base_prices({"SKU-A": 1000}), promotions)
    (line,) = priced.lines
    # 1000 off the group of three is split 334/333/333; only the fourth unit gets the 10 %.
    assert line.unit_net_prices == (900, 667, 667, 666)
    assert line.promotions == ("3FOR2", "TEN")
    assert [(a.promotion_id, a.discount) for a in priced.applied] == [("3FOR2", 1000), ("TEN", 100)]


def test_a_combinable_three_for_two_leaves_its_units_open_to_a_later_percent() -> None:
    promotions = [
        promotion("3FOR2", "buy_n_pay_m", ["SKU-A"], {"buy": 3, "pay": 2}),
        promotion("TEN", "percent_off", ["SKU-A"], {"percent": 10}, priority=200),
    ]
    priced = quote(cart({"SKU-A": 3}), base_prices({"SKU-A": 1000}), promotions)
    assert priced.total == 1800


def test_combinable_percentages_stack_on_the_net_price() -> None:
    promotions = [
        promotion("TEN", "percent_off", ["SKU-A"], {"percent": 10}, priority=1),
        promotion("TWENTY", "percent_off", ["SKU-A"], {"percent": 20}, priority=2),
    ]
    priced = quote(cart({"SKU-A": 1}), base_prices({"SKU-A": 10_000}), promotions)
    assert priced.total == 7200
    assert [a.discount for a in priced.applied] == [1000, 1800]


def test_an_exclusive_promotion_skips_units_that_already_have_a_discount() -> None:
    promotions = [
        promotion("TEN", "percent_off", ["SKU-A"], {"percent": 10}, priority=1),
        promotion("HALF", "percent_off", ["SKU-A", "SKU-B"], {"percent": 50}, exclusive=True),
    ]
    prices = base_prices({"SKU-A": 1000, "SKU-B": 1000})
    priced = quote(cart({"SKU-A": 1, "SKU-B": 1}), prices, promotions)
    by_sku = {line.sku: line for line in priced.lines}
    assert by_sku["SKU-A"].total == 900
    assert by_sku["SKU-B"].total == 500
    assert [(a.promotion_id, a.skus) for a in priced.applied] == [
        ("TEN", ("SKU-A",)),
        ("HALF", ("SKU-B",)),
    ]


def test_promotions_apply_only_inside_their_validity_window() -> None:
    def total_at(at: datetime, **window: datetime) -> int:
        sale = promotion("SALE", "percent_off", ["SKU-A"], {"percent": 50}, **window)
        return quote(cart({"SKU-A": 1}), base_prices({"SKU-A": 1000}), [sale], at=at).total

    assert total_at(NOW, valid_from=NOW) == 500
    assert total_at(NOW - timedelta(microseconds=1), valid_from=NOW) == 1000
    assert total_at(NOW - timedelta(microseconds=1), valid_to=NOW) == 500
    assert total_at(NOW, valid_to=NOW) == 1000


def test_prices_apply_only_inside_their_validity_window() -> None:
    prices = [
        PriceEntry("SKU-A", "EUR", 2000, valid_to=NOW),
        PriceEntry("SKU-A", "EUR", 1500, valid_from=NOW),
    ]
    assert quote(cart({"SKU-A": 1}), prices).total == 1500
    assert quote(cart({"SKU-A": 1}), prices, at=NOW - timedelta(microseconds=1)).total == 2000
    with pytest.raises(PricingError, match="no price for sku SKU-A in EUR"):
        quote(cart({"SKU-A": 1}), prices[:1])


def test_price_resolution_prefers_priority_then_the_newest_then_the_cheapest() -> None:
    older = NOW - timedelta(days=2)
    newer = NOW - timedelta(days=1)
    assert (
        quote(
            cart({"SKU-A": 1}),
            [PriceEntry("SKU-A", "EUR", 900), PriceEntry("SKU-A", "EUR", 1100, priority=1)],
        ).total
        == 1100
    )
    assert (
        quote(
            cart({"SKU-A": 1}),
            [
                PriceEntry("SKU-A", "EUR", 900, valid_from=older),
                PriceEntry("SKU-A", "EUR", 1100, valid_from=newer),
                PriceEntry("SKU-A", "EUR", 800),
            ],
        ).total
        == 1100
    )
    assert (
        quote(
            cart({"SKU-A": 1}), [PriceEntry("SKU-A", "EUR", 900), PriceEntry("SKU-A", "EUR", 800)]
        ).total
        == 800
    )


def test_unpriced_skus_are_named() -> None:
    prices = [*base_prices({"SKU-A": 1000}), PriceEntry("GHOST-2", "USD", 500)]
    with pytest.raises(PricingError, match="no price for skus GHOST-1, GHOST-2 in EUR"):
        quote(cart({"GHOST-2": 1, "SKU-A": 1, "GHOST-1": 1}), prices)


@pytest.mark.parametrize(
    ("lines", "at", "message"),
    [
        ([], NOW, "at least one line"),
        ([CartLine("SKU-A", 0)], NOW, "quantity of SKU-A must be at least 1"),
        ([CartLine("SKU-A", 1), CartLine("SKU-A", 2)], NOW, "SKU-A appears on more than one"),
        ([CartLine("SKU-A", 1)], datetime(2025, 6, 1), "timezone-aware"),
    ],
)
def test_a_cart_that_cannot_be_priced_is_refused(
    lines: list[CartLine], at: datetime, message: str
) -> None:
    with pytest.raises(PricingError, match=message):
        quote(lines, base_prices({"SKU-A": 1000}), at=at)


def test_a_bundle_price_splits_its_discount_by_unit_price() -> None:
    bundle = promotion("DUO", "bundle_price", ["SKU-A", "SKU-B"], {"amount": 2400})
    prices = base_prices({"SKU-A": 2000, "SKU-B": 1000})
    priced = quote(cart({"SKU-A": 2, "SKU-B": 1}), prices, [bundle])
    by_sku = {line.sku: line for line in priced.lines}
    assert by_sku["SKU-A"].unit_net_prices == (2000, 1600)
    assert by_sku["SKU-B"].unit_net_prices == (800,)
    assert [(a.promotion_id, a.discount) for a in priced.applied] == [("DUO", 600)]


def test_an_amount_applies_in_its_own_currency_or_in_any_without_one() -> None:
    lines = cart({"SKU-A": 1, "SKU-B": 1})
    amounts_off = [
        promotion("ANY", "amount_off", ["SKU-A"], {"amount": 100}, currency=None),
        promotion("USD", "amount_off", ["SKU-B"], {"amount": 100}, currency="USD"),
    ]
    priced = quote(lines, base_prices({"SKU-A": 1000, "SKU-B": 1000}), amounts_off)
    assert {line.sku: line.total for line in priced.lines} == {"SKU-A": 900, "SKU-B": 1000}


def test_amount_off_never_takes_a_unit_below_zero() -> None:
    five_off = promotion("FIVE", "amount_off", ["SKU-A", "SKU-B"], {"amount": 500})
    prices = base_prices({"SKU-A": 300, "SKU-B": 1000})
    priced = quote(cart({"SKU-A": 2, "SKU-B": 1}), prices, [five_off])
    by_sku = {line.sku: line for line in priced.lines}
    assert by_sku["SKU-A"].unit_net_prices == (0, 0)
    assert by_sku["SKU-B"].unit_net_prices == (500,)
    assert priced.discount_total == 1100


def test_fractional_percentages_are_exact_and_round_half_up() -> None:
    deal = promotion("ODD", "percent_off", ["SKU-A"], {"percent": 12.5})
    assert quote(cart({"SKU-A": 1}), base_prices({"SKU-A": 1000}), [deal]).discount_total == 125
    assert quote(cart({"SKU-A": 1}), base_prices({"SKU-A": 4}), [deal]).discount_total == 1
    assert quote(cart({"SKU-A": 1}), base_prices({"SKU-A": 3}), [deal]).discount_total == 0


def test_the_free_unit_of_a_three_for_two_refunds_what_it_really_cost() -> None:
    three_for_two = promotion("3FOR2", "buy_n_pay_m", SKUS[:3], {"buy": 3, "pay": 2})
    prices = base_prices({"SKU-A": 3000, "SKU-B": 2000, "SKU-C": 1000})
    priced = quote(cart({"SKU-A": 1, "SKU-B": 1, "SKU-C": 1}), prices, [three_for_two])
    nets = {line.sku: line.unit_net_prices for line in priced.lines}
    assert nets == {"SKU-A": (2500,), "SKU-B": (1667,), "SKU-C": (833,)}
    assert refund_of_units(nets["SKU-C"], 0, 1) == 833


def test_refunds_cannot_exceed_the_units_sold() -> None:
    with pytest.raises(
        RefundError,
        match=r"only 1 of 3 units are left to give back \(2 already returned or cancelled\), not 2",
    ):
        refund_of_units([500, 400, 300], 2, 2)
    with pytest.raises(RefundError, match="at least 1 unit"):
        refund_of_units([500], 0, 0)


def test_a_channel_price_is_named_in_channel_rules() -> None:
    prices = [PriceEntry("TEE-WHT-M", "EUR", 1999), PriceEntry("TEE-WHT-M", "EUR", 1799, "app")]
    web = quote(cart({"TEE-WHT-M": 1}), prices, channel="web")
    app = quote(cart({"TEE-WHT-M": 1}), prices, channel="app")
    assert (web.total, web.lines[0].price_channel, web.channel_rules) == (1999, None, ())
    assert (app.total, app.lines[0].price_channel) == (1799, "app")
    assert app.channel_rules == ("price of TEE-WHT-M for channel app: 1799 instead of 1999",)


def test_a_channel_price_equal_to_the_base_price_is_no_rule() -> None:
    prices = [PriceEntry("SKU-A", "EUR", 1000), PriceEntry("SKU-A", "EUR", 1000, "store")]
    assert quote(cart({"SKU-A": 1}), prices, channel="store").channel_rules == ()


def test_a_channel_only_price_is_named_even_without_a_base_price() -> None:
    prices = [PriceEntry("SKU-A", "EUR", 1000, "partner")]
    priced = quote(cart({"SKU-A": 1}), prices, channel="partner")
    assert priced.channel_rules == ("price of SKU-A for channel partner: 1000 (no base price)",)
    with pytest.raises(PricingError, match="no price for sku SKU-A"):
        quote(cart({"SKU-A": 1}), prices, channel="web")


def test_a_channel_restricted_promotion_is_named_in_channel_rules() -> None:
    app_only = promotion("APP10", "percent_off", ["SKU-A"], {"percent": 10}, channels=("app",))
    prices = base_prices({"SKU-A": 1000})
    assert quote(cart({"SKU-A": 1}), prices, [app_only], channel="web").total == 1000
    app = quote(cart({"SKU-A": 1}), prices, [app_only], channel="app")
    assert app.total == 900
    assert app.channel_rules == ("promotion APP10 (APP10 deal) only for channels app: 100 off",)


def test_an_exclusive_deal_claims_a_unit_even_when_its_share_rounds_to_nothing() -> None:
    promotions = [
        promotion("3FOR2", "buy_n_pay_m", SKUS[:3], {"buy": 3, "pay": 2}, exclusive=True),
        promotion("HALF", "percent_off", ["SKU-B"], {"percent": 50}, priority=200),
    ]
    prices = base_prices({"SKU-A": 1000, "SKU-B": 1000, "SKU-C": 1})
    priced = quote(cart({"SKU-A": 1, "SKU-B": 1, "SKU-C": 1}), prices, promotions)
    # The free unit is worth 1 cent, which all lands on SKU-A; SKU-B still belongs to the deal.
    assert [line.total for line in priced.lines] == [999, 1000, 1]
    assert [a.promotion_id for a in priced.applied] == ["3FOR2"]
