"""The pricing engine, pure: one function prices a cart the same way for every channel.

No I/O and no framework, so a quote and the order that follows it are provably priced by the
same rules. Money is integer minor units; discounts are allocated to single units
(largest remainder), so every unit knows what it really cost and refunds are exact.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any


class PricingError(ValueError):
    """A cart that cannot be priced (no price for a sku, duplicate lines); message says why."""


@dataclass(frozen=True)
class PriceEntry:
    """One row of the price book."""

    sku: str
    currency: str
    amount: int
    channel: str | None = None
    valid_from: datetime | None = None
    valid_to: datetime | None = None
    priority: int = 0


@dataclass(frozen=True)
class Promotion:
    """A discount rule; `priority` ascending is the order of evaluation."""

    promotion_id: str
    name: str
    kind: str
    skus: tuple[str, ...]
    params: Mapping[str, Any]
    channels: tuple[str, ...] = ()
    valid_from: datetime | None = None
    valid_to: datetime | None = None
    priority: int = 100
    exclusive: bool = False
    currency: str | None = None


@dataclass(frozen=True)
class CartLine:
    sku: str
    quantity: int


@dataclass(frozen=True)
class AppliedPromotion:
    promotion_id: str
    name: str
    kind: str
    discount: int
    skus: tuple[str, ...]


@dataclass(frozen=True)
class PricedLine:
    sku: str
    quantity: int
    unit_price: int
    unit_net_prices: tuple[int, ...]
    discount: int
    total: int
    promotions: tuple[str, ...]
    price_channel: str | None


@dataclass(frozen=True)
class PricedCart:
    currency: str
    channel: str
    lines: tuple[PricedLine, ...]
    subtotal: int
    discount_total: int
    total: int
    applied: tuple[AppliedPromotion, ...]
    channel_rules: tuple[str, ...]


@dataclass(eq=False)
class _Unit:
    """One physical unit in the cart: discounts land on units, never on lines."""

    sku: str
    index: int
    net: int
    discounted: bool = False
    locked: bool = False


_EARLIEST = datetime.min.replace(tzinfo=UTC)  # where a price without valid_from ranks

# A deal is the units a promotion takes together and the share of its discount each one gets.
_Deal = tuple[list[_Unit], list[int]]


def allocate(amount: int, weights: Sequence[int]) -> list[int]:
    """Split `amount` in proportion to `weights` by largest remainder; ties go to the lower index.

    Exact integer arithmetic, so the shares always add up to `amount`; while `amount` is at most
    `sum(weights)` (every discount is), no share exceeds its weight.
    """
    if amount < 0 or any(weight < 0 for weight in weights):
        raise PricingError("an allocation needs a non-negative amount and non-negative weights")
    whole = sum(weights)
    if whole == 0:
        if amount:
            raise PricingError(f"cannot allocate {amount} over weights that are all 0")
        return [0] * len(weights)
    shares = [amount * weight // whole for weight in weights]
    remainders = [amount * weight % whole for weight in weights]
    by_remainder = sorted(range(len(weights)), key=lambda i: (-remainders[i], i))
    for i in by_remainder[: amount - sum(shares)]:
        shares[i] += 1
    return shares


def price_cart(
    lines: Sequence[CartLine],
    *,
    currency: str,
    channel: str,
    prices: Sequence[PriceEntry],
    promotions: Sequence[Promotion],
    at: datetime,
) -> PricedCart:
    """Price a cart for one channel at one moment: list prices first, then promotions in order."""
    _check_cart(lines, at)
    book = [p for p in prices if p.currency == currency and _valid(p.valid_from, p.valid_to, at)]
    notes: list[str] = []
    chosen: dict[str, PriceEntry] = {}
    for line in lines:
        entry, base = _resolve_price(line.sku, channel, book)
        if entry is None:
            continue
        chosen[line.sku] = entry
        if entry.channel is not None and (base is None or base.amount != entry.amount):
            otherwise = "(no base price)" if base is None else f"instead of {base.amount}"
            notes.append(f"price of {line.sku} for channel {channel}: {entry.amount} {otherwise}")
    missing = sorted(line.sku for line in lines if line.sku not in chosen)
    if missing:
        noun = "sku" if len(missing) == 1 else "skus"
        raise PricingError(f"no price for {noun} {', '.join(missing)} in {currency}")

    quantities = {line.sku: line.quantity for line in lines}
    # Units in sku order, never request order, so permuting the cart cannot move a cent.
    units = [
        _Unit(s, i, chosen[s].amount) for s in sorted(quantities) for i in range(quantities[s])
    ]
    candidates = [p for p in promotions if _applies(p, quantities, currency, channel, at)]
    applied, line_promotions = _apply_promotions(units, candidates)
    restricted = {p.promotion_id: p for p in candidates if p.channels}
    for done in applied:
        if done.promotion_id in restricted:
            only = ", ".join(sorted(restricted[done.promotion_id].channels))
            what = f"promotion {done.promotion_id} ({done.name})"
            notes.append(f"{what} only for channels {only}: {done.discount} off")

    priced = tuple(
        _priced_line(line, chosen[line.sku], units, line_promotions.get(line.sku, []))
        for line in lines
    )
    subtotal = sum(line.unit_price * line.quantity for line in priced)
    total = sum(line.total for line in priced)
    return PricedCart(
        currency=currency,
        channel=channel,
        lines=priced,
        subtotal=subtotal,
        discount_total=subtotal - total,
        total=total,
        applied=tuple(applied),
        channel_rules=tuple(sorted(notes)),
    )


def _check_cart(lines: Sequence[CartLine], at: datetime) -> None:
    if at.tzinfo is None or at.utcoffset() is None:
        raise PricingError("the pricing moment must be timezone-aware")
    if not lines:
        raise PricingError("a cart needs at least one line")
    for line in lines:
        if line.quantity < 1:
            raise PricingError(f"quantity of {line.sku} must be at least 1, got {line.quantity}")
    repeated = sorted(sku for sku, n in Counter(line.sku for line in lines).items() if n > 1)
    if repeated:
        raise PricingError(f"sku {', '.join(repeated)} appears on more than one line; merge them")


def _valid(valid_from: datetime | None, valid_to: datetime | None, at: datetime) -> bool:
    return (valid_from is None or valid_from <= at) and (valid_to is None or at < valid_to)


def _resolve_price(
    sku: str, channel: str, book: Sequence[PriceEntry]
) -> tuple[PriceEntry | None, PriceEntry | None]:
    """The entry to charge and the base entry it replaces; a channel price beats the base price."""
    entries = [entry for entry in book if entry.sku == sku]
    base = _best([entry for entry in entries if entry.channel is None])
    return _best([entry for entry in entries if entry.channel == channel]) or base, base


def _best(entries: Sequence[PriceEntry]) -> PriceEntry | None:
    """Highest priority, then the newest, then the cheapest: a total order, so always one winner."""
    return max(
        entries, key=lambda e: (e.priority, e.valid_from or _EARLIEST, -e.amount), default=None
    )


def _applies(
    promotion: Promotion, quantities: Mapping[str, int], currency: str, channel: str, at: datetime
) -> bool:
    # A promotion without a currency applies in any; its amounts (amount_off, bundle_price) are
    # then minor units of whatever currency the cart is priced in.
    return (
        _valid(promotion.valid_from, promotion.valid_to, at)
        and (not promotion.channels or channel in promotion.channels)
        and promotion.currency in (None, currency)
        and any(sku in quantities for sku in promotion.skus)
    )


def _apply_promotions(
    units: list[_Unit], promotions: Sequence[Promotion]
) -> tuple[list[AppliedPromotion], dict[str, list[str]]]:
    """Each promotion in turn takes what the earlier ones left; an exclusive one locks its units."""
    applied: list[AppliedPromotion] = []
    by_sku: dict[str, list[str]] = {}
    for promo in sorted(promotions, key=lambda p: (p.priority, p.promotion_id)):
        # An exclusive promotion only takes units nobody has discounted yet.
        eligible = [u for u in units if u.sku in promo.skus and not u.locked]
        eligible = [u for u in eligible if not (promo.exclusive and u.discounted)]
        deals = [(group, shares) for group, shares in _deals(promo, eligible) if sum(shares)]
        touched: set[str] = set()
        for group, shares in deals:
            for unit, share in zip(group, shares, strict=True):
                # An exclusive deal claims all of its units, even one whose share rounded to 0.
                unit.locked = unit.locked or promo.exclusive
                if share:
                    unit.net -= share
                    unit.discounted = True
                    touched.add(unit.sku)
        if not touched:
            continue
        for sku in touched:
            by_sku.setdefault(sku, []).append(promo.promotion_id)
        discount = sum(sum(shares) for _, shares in deals)
        skus = tuple(sorted(touched))
        applied.append(AppliedPromotion(promo.promotion_id, promo.name, promo.kind, discount, skus))
    return applied, by_sku


def _deals(promotion: Promotion, units: list[_Unit]) -> list[_Deal]:
    params = promotion.params
    match promotion.kind:
        case "percent_off":
            return _percent_deals(units, params["percent"])
        case "amount_off":
            return [([unit], [min(int(params["amount"]), unit.net)]) for unit in units]
        case "buy_n_pay_m":
            return _buy_n_pay_m_deals(units, int(params["buy"]), int(params["pay"]))
        case "tiered":
            reached = [t for t in params["tiers"] if int(t["min_quantity"]) <= len(units)]
            if not reached:
                return []
            tier = max(reached, key=lambda t: (int(t["min_quantity"]), Decimal(str(t["percent"]))))
            return _percent_deals(units, tier["percent"])
        case "bundle_price":
            return _bundle_deals(units, promotion.skus, int(params["amount"]))
    raise PricingError(f"unknown promotion kind {promotion.kind!r} ({promotion.promotion_id})")


def _percent_deals(units: list[_Unit], percent: Any) -> list[_Deal]:
    """One deal over all units; str() first, so a percent of 12.5 is exactly 12.5."""
    nets = [unit.net for unit in units]
    raw = Decimal(sum(nets)) * Decimal(str(percent)) / 100
    off = int(raw.quantize(Decimal(1), rounding=ROUND_HALF_UP))
    return [(units, allocate(min(max(off, 0), sum(nets)), nets))]


def _buy_n_pay_m_deals(units: list[_Unit], buy: int, pay: int) -> list[_Deal]:
    """Groups of `buy` from the dearest down; the cheapest `buy - pay` of a group are free, and
    that discount is spread over the whole group so each unit carries its fair share."""
    ranked = sorted(units, key=lambda unit: (-unit.net, unit.sku, unit.index))
    deals: list[_Deal] = []
    for start in range(0, len(ranked) - buy + 1, buy):
        group = ranked[start : start + buy]
        nets = [unit.net for unit in group]
        deals.append((group, allocate(sum(nets[pay:]), nets)))
    return deals


def _bundle_deals(units: list[_Unit], contents: Sequence[str], amount: int) -> list[_Deal]:
    """As many complete bundles as the cart holds, each built from the dearest units left."""
    needed = Counter(contents)
    ranked = sorted(units, key=lambda unit: (-unit.net, unit.index))
    stock = {sku: [unit for unit in ranked if unit.sku == sku] for sku in needed}
    bundles = min(len(stock[sku]) // n for sku, n in needed.items())
    deals: list[_Deal] = []
    for b in range(bundles):
        bundle = [u for sku, n in sorted(needed.items()) for u in stock[sku][b * n : (b + 1) * n]]
        nets = [unit.net for unit in bundle]
        deals.append((bundle, allocate(max(0, sum(nets) - amount), nets)))
    return deals


def _priced_line(
    line: CartLine, entry: PriceEntry, units: Sequence[_Unit], promotions: list[str]
) -> PricedLine:
    nets = tuple(sorted((unit.net for unit in units if unit.sku == line.sku), reverse=True))
    total = sum(nets)
    return PricedLine(
        sku=line.sku,
        quantity=line.quantity,
        unit_price=entry.amount,
        unit_net_prices=nets,
        discount=entry.amount * line.quantity - total,
        total=total,
        promotions=tuple(promotions),
        price_channel=entry.channel,
    )
