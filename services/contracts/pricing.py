"""Pricing's contract: price book and promotion events, and the quote API."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, ClassVar, get_args

from pydantic import (
    AfterValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_validator,
)

from services.contracts import topics
from services.contracts.base import Contract, Event, Identifier, Instant, Sku, Text

Currency = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Z]{3}$"),
    Field(description="ISO 4217 currency code.", examples=["EUR"]),
]
MinorUnits = Annotated[int, Field(ge=0, le=10**12, description="Money in minor units (cents).")]


class Channel(StrEnum):
    WEB = "web"
    APP = "app"
    STORE = "store"
    MARKETPLACE = "marketplace"
    PARTNER = "partner"


class Money(Contract):
    amount: int
    currency: Currency


class PromotionKind(StrEnum):
    PERCENT_OFF = "percent_off"
    AMOUNT_OFF = "amount_off"
    BUY_N_PAY_M = "buy_n_pay_m"
    TIERED = "tiered"
    BUNDLE_PRICE = "bundle_price"


def _two_decimals(percent: float) -> float:
    if Decimal(str(percent)).as_tuple().exponent < -2:  # type: ignore[operator]
        raise ValueError("percent takes at most two decimals")
    return percent


# `multiple_of` puts the rule into the schema (JSON Schema's multipleOf is decimal, like the rule);
# pydantic's own multiple_of check forgives float noise, so `_two_decimals` stays the judge.
Percent = Annotated[float, Field(gt=0, le=100, multiple_of=0.01), AfterValidator(_two_decimals)]


class PercentOffParams(Contract):
    percent: Percent


class AmountOffParams(Contract):
    amount: int = Field(gt=0, le=10**9, description="Minor units off each unit.")


class BuyNPayMParams(Contract):
    buy: int = Field(ge=2, le=100)
    pay: int = Field(ge=1, le=99)

    @model_validator(mode="after")
    def _pay_less(self) -> BuyNPayMParams:
        if self.pay >= self.buy:
            raise ValueError(f"pay ({self.pay}) must be less than buy ({self.buy})")
        return self


class Tier(Contract):
    min_quantity: int = Field(ge=1, le=100_000)
    percent: Percent


class TieredParams(Contract):
    tiers: tuple[Tier, ...] = Field(min_length=1, max_length=20)

    @model_validator(mode="after")
    def _distinct(self) -> TieredParams:
        thresholds = [tier.min_quantity for tier in self.tiers]
        if len(thresholds) != len(set(thresholds)):
            raise ValueError("each tier needs its own min_quantity")
        return self


class BundlePriceParams(Contract):
    amount: int = Field(gt=0, le=10**12, description="Price of one complete bundle, minor units.")


PromotionParams = (
    PercentOffParams | AmountOffParams | BuyNPayMParams | TieredParams | BundlePriceParams
)
PARAMS_BY_KIND: dict[PromotionKind, type[PromotionParams]] = {
    PromotionKind.PERCENT_OFF: PercentOffParams,
    PromotionKind.AMOUNT_OFF: AmountOffParams,
    PromotionKind.BUY_N_PAY_M: BuyNPayMParams,
    PromotionKind.TIERED: TieredParams,
    PromotionKind.BUNDLE_PRICE: BundlePriceParams,
}


def _params_by_kind(schema: dict[str, Any]) -> None:
    """The promotion's schema as the union tagged by `kind` that validation enforces: one
    branch per kind, binding `params` to that kind's model (and, but for a bundle, distinct
    skus). Built from PARAMS_BY_KIND, the map validation uses, so the two cannot drift."""
    # The `params` property lists the models in the union's order; pydantic resolves the refs
    # (placeholders at this point) wherever they end up.
    refs = dict(
        zip(get_args(PromotionParams), schema["properties"]["params"]["anyOf"], strict=True)
    )
    branches = []
    for kind, model in PARAMS_BY_KIND.items():
        properties: dict[str, Any] = {"kind": {"const": kind.value}, "params": dict(refs[model])}
        if kind is not PromotionKind.BUNDLE_PRICE:
            properties["skus"] = {"uniqueItems": True}
        branches.append({"properties": properties})
    schema["oneOf"] = branches


# HTTP API (internal; the gateway fronts it)


class _Window(Contract):
    valid_from: Instant | None = None
    valid_to: Instant | None = Field(default=None, description="Exclusive end.")

    @model_validator(mode="after")
    def _ordered(self) -> _Window:
        if self.valid_from and self.valid_to and self.valid_to <= self.valid_from:
            raise ValueError("valid_to must be after valid_from")
        return self


class PriceIn(_Window):
    """A base price (no channel) or a channel-scoped one. The same sku, currency, channel and
    valid_from update the existing entry."""

    sku: Sku
    currency: Currency
    amount: MinorUnits
    channel: Channel | None = None
    priority: int = Field(default=0, ge=0, le=10_000, description="Higher wins among overlaps.")


class Price(PriceIn):
    price_version: int
    updated_at: datetime


class PromotionIn(_Window):
    """A promotion. `params` depend on `kind`: percent_off {percent}, amount_off {amount},
    buy_n_pay_m {buy, pay} ("3 for 2" is buy 3 pay 2), tiered {tiers[{min_quantity, percent}]},
    bundle_price {amount}. Amounts are minor units of `currency`."""

    model_config = ConfigDict(json_schema_extra=_params_by_kind)

    promotion_id: Identifier
    name: Text = Field(min_length=1, max_length=200)
    kind: PromotionKind
    skus: tuple[Sku, ...] = Field(
        min_length=1, max_length=500, description="Distinct, but for a bundle."
    )
    channels: tuple[Channel, ...] = Field(default=(), description="Empty: every channel.")
    params: PromotionParams = Field(description="The parameters of this `kind` of promotion.")
    priority: int = Field(default=100, ge=0, le=10_000, description="Lower is applied first.")
    exclusive: bool = Field(
        default=False, description="Exclusive: only on undiscounted units, and nothing after it."
    )
    currency: Currency | None = Field(
        default=None,
        description="Only carts in this currency. Without it the promotion applies in every "
        "currency, and the amounts of amount_off and bundle_price are minor units of the cart's.",
    )
    active: bool = True

    @field_validator("params", mode="wrap")
    @classmethod
    def _params_of_kind(
        cls, params: Any, _: ValidatorFunctionWrapHandler, info: ValidationInfo
    ) -> Any:
        # The union is tagged by a sibling field, which pydantic's discriminated unions cannot
        # express: `kind` (validated first) picks the model.
        kind = info.data.get("kind")
        if kind is None:  # `kind` is missing or invalid, and its own error says so
            return params
        return PARAMS_BY_KIND[kind].model_validate(params)

    @model_validator(mode="after")
    def _distinct_skus(self) -> PromotionIn:
        if self.kind is not PromotionKind.BUNDLE_PRICE and len(set(self.skus)) != len(self.skus):
            raise ValueError("skus must be distinct (only a bundle may list a sku twice)")
        return self


class Promotion(PromotionIn):
    price_version: int
    updated_at: datetime


class QuoteLineIn(Contract):
    sku: Sku
    quantity: int = Field(gt=0, le=10_000)


class QuoteRequest(Contract):
    channel: Channel = Channel.WEB
    currency: Currency
    lines: tuple[QuoteLineIn, ...] = Field(min_length=1, max_length=200)

    @model_validator(mode="after")
    def _unique(self) -> QuoteRequest:
        skus = [line.sku for line in self.lines]
        if len(skus) != len(set(skus)):
            raise ValueError("each sku may appear only once; add the quantities up instead")
        return self


class AppliedPromotion(Contract):
    promotion_id: Identifier
    name: str
    kind: PromotionKind
    discount: Money
    skus: tuple[Sku, ...]


class QuoteLine(Contract):
    sku: Sku
    quantity: int
    unit_price: Money
    discount: Money
    total: Money
    unit_net_prices: tuple[int, ...] = Field(
        description="What each unit really costs after discounts, most expensive first: a "
        "refund of n units pays back the next n of these."
    )
    promotions: tuple[Identifier, ...]


class Quote(Contract):
    quote_id: Identifier
    channel: Channel
    currency: Currency
    lines: tuple[QuoteLine, ...]
    subtotal: Money
    discount_total: Money
    total: Money
    promotions: tuple[AppliedPromotion, ...]
    channel_rules: tuple[str, ...] = Field(
        description="Channel-specific prices or promotions that made this cart cost something "
        "other than in any channel; empty means the same price everywhere."
    )
    price_version: int
    created_at: datetime
    expires_at: datetime
    quote_token: str = Field(description="Signed; the orders service checks it offline.")


class TokenLine(Contract):
    """A quoted line inside a quote token. `net` is run-length encoded, most expensive first:
    [[1333, 2], [1332, 1]] means two units at 13.33 and one at 13.32."""

    sku: Sku
    quantity: int
    unit_price: int
    net: tuple[tuple[int, int], ...]

    @property
    def unit_net_prices(self) -> tuple[int, ...]:
        return tuple(amount for amount, count in self.net for _ in range(count))


class QuoteTokenClaims(Contract):
    """What a quote token vouches for: the priced cart, so an order can be charged exactly what
    was quoted without asking pricing again."""

    quote_id: Identifier
    channel: Channel
    currency: Currency
    lines: tuple[TokenLine, ...]
    subtotal: int
    discount_total: int
    total: int
    price_version: int
    iat: int
    exp: int


def run_length(unit_net_prices: tuple[int, ...]) -> tuple[tuple[int, int], ...]:
    runs: list[list[int]] = []
    for amount in unit_net_prices:
        if runs and runs[-1][0] == amount:
            runs[-1][1] += 1
        else:
            runs.append([amount, 1])
    return tuple((amount, count) for amount, count in runs)


# Events (pricing.events.v1)


class PriceChanged(Event):
    TYPE: ClassVar[str] = "omniroute.pricing.price_changed.v1"
    TOPIC: ClassVar[str] = topics.PRICING_EVENTS.name

    sku: Sku
    currency: Currency
    channel: Channel | None
    amount: int
    valid_from: datetime | None
    valid_to: datetime | None
    priority: int
    price_version: int

    KEY: ClassVar[str] = "{sku}"


class PromotionChanged(Event):
    TYPE: ClassVar[str] = "omniroute.pricing.promotion_changed.v1"
    TOPIC: ClassVar[str] = topics.PRICING_EVENTS.name

    promotion: PromotionIn
    price_version: int

    KEY: ClassVar[str] = "{promotion.promotion_id}"
