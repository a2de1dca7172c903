"""Inventory rules, pure: no I/O, no framework. Everything here is a plain function of its inputs.

The database enforces the same invariants again (CHECK constraints and conditional updates), so
the rules here produce clear answers and the database makes them hold under concurrency.
"""

from __future__ import annotations

import math
import string
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from services.contracts.inventory import AdjustmentReason, StockCorrection, SupplyStatus
from services.retail.geo import distance_km
from services.retail.holds import hold_problem


class StockRuleViolation(ValueError):
    """A requested change would break a stock invariant; the message says which and why."""


def available(on_hand: int, reserved: int, safety_stock: int) -> int:
    """What of a level can still be promised: never negative, even when safety stock exceeds
    the rest."""
    return max(on_hand - reserved - safety_stock, 0)


@dataclass(frozen=True)
class Level:
    on_hand: int
    reserved: int
    safety_stock: int = 0

    @property
    def available(self) -> int:
        """What can still be promised: never negative, even when safety stock exceeds the rest."""
        return available(self.on_hand, self.reserved, self.safety_stock)

    def check(self) -> None:
        if self.on_hand < 0:
            raise StockRuleViolation(f"on_hand would be {self.on_hand}; it cannot go below 0")
        if self.reserved < 0:
            raise StockRuleViolation(f"reserved would be {self.reserved}; it cannot go below 0")
        if self.reserved > self.on_hand:
            raise StockRuleViolation(
                f"on_hand would be {self.on_hand} while {self.reserved} units are reserved; "
                "release or commit reservations first"
            )


def adjust(level: Level, delta: int, reason: AdjustmentReason) -> Level:
    """A relative stock adjustment; the reason fixes the sign a delta may have."""
    if delta == 0:
        raise StockRuleViolation("delta must not be 0")
    if reason is AdjustmentReason.RECEIPT and delta < 0:
        raise StockRuleViolation("a receipt adds stock: delta must be positive")
    if reason in (AdjustmentReason.POS_SALE, AdjustmentReason.DAMAGE) and delta > 0:
        raise StockRuleViolation(f"a {reason.value} removes stock: delta must be negative")
    adjusted = Level(level.on_hand + delta, level.reserved, level.safety_stock)
    adjusted.check()
    return adjusted


def set_on_hand(level: Level, on_hand: int, safety_stock: int | None = None) -> Level:
    """An absolute count. It may not drop below what is reserved: those units are promised."""
    result = Level(
        on_hand, level.reserved, level.safety_stock if safety_stock is None else safety_stock
    )
    result.check()
    return result


@dataclass(frozen=True)
class FeedOutcome:
    level: Level
    shortfall: int  # units the partner reported missing below what is already reserved


def apply_feed(level: Level, reported_on_hand: int) -> FeedOutcome:
    """A partner's absolute figure. Reservations are preserved: when the partner reports fewer
    units than are reserved there, on_hand stays at the reserved quantity and the shortfall is
    reported, instead of silently breaking promises already made to customers."""
    if reported_on_hand >= level.reserved:
        return FeedOutcome(Level(reported_on_hand, level.reserved, level.safety_stock), 0)
    return FeedOutcome(
        Level(level.reserved, level.reserved, level.safety_stock), level.reserved - reported_on_hand
    )


def feed_is_newer(sequence: int, last_applied: int | None) -> bool:
    """Feeds may arrive out of order; only a sequence above the last applied one counts."""
    return last_applied is None or sequence > last_applied


@dataclass(frozen=True)
class Shortfall:
    sku: str
    requested: int
    available: int


def shortages(requested: dict[str, int], levels: dict[str, Level]) -> list[Shortfall]:
    """Which lines of an all-or-nothing reservation cannot be held, in sku order."""
    missing = []
    for sku in sorted(requested):
        level = levels.get(sku)
        available = level.available if level is not None else 0
        if requested[sku] > available:
            missing.append(Shortfall(sku, requested[sku], available))
    return missing


def hold_is_valid(hold_until: datetime | None, now: datetime) -> str | None:
    """None when the hold time is acceptable (or there is none), otherwise why not."""
    return None if hold_until is None else hold_problem(hold_until, now)


# Incoming stock: supplies, the promises made against them, and their receipt


@dataclass(frozen=True)
class SupplyState:
    """A purchase order or transfer on its way. `promised` counts units promised to backorders
    that have not arrived yet, so `received + promised <= quantity` always holds."""

    location_id: str
    sku: str
    quantity: int
    received: int = 0
    promised: int = 0

    @property
    def incoming(self) -> int:
        return self.quantity - self.received

    @property
    def promisable(self) -> int:
        """Units still incoming that no backorder was promised."""
        return max(self.quantity - self.received - self.promised, 0)

    @property
    def status(self) -> SupplyStatus:
        return SupplyStatus.RECEIVED if self.received >= self.quantity else SupplyStatus.INCOMING


def check_supply_change(current: SupplyState | None, proposed: SupplyState) -> None:
    """An upsert of a supply may not strand what was received or promised against it."""
    if current is None:
        return
    if (proposed.location_id, proposed.sku) != (current.location_id, current.sku) and (
        current.received or current.promised
    ):
        raise StockRuleViolation(
            f"{current.received} units of it were received and {current.promised} promised at "
            f"{current.location_id} as {current.sku}; its location and sku cannot change"
        )
    if proposed.quantity < current.received + current.promised:
        raise StockRuleViolation(
            f"quantity {proposed.quantity} is below the {current.received} units received plus "
            f"the {current.promised} promised to backorders"
        )


def units_to_receive(requested: int | None, current: SupplyState) -> int:
    """How many units a receipt takes in: what was asked for (everything still incoming when
    nothing was), never more than is still incoming."""
    if current.incoming <= 0:
        raise StockRuleViolation(f"all {current.quantity} units were received already")
    if requested is None:
        return current.incoming
    if requested > current.incoming:
        raise StockRuleViolation(
            f"{requested} units cannot arrive: only {current.incoming} of {current.quantity} are "
            "still incoming (raise the supply's quantity first)"
        )
    return requested


@dataclass(frozen=True)
class Incoming:
    """A supply as a promise sees it: what it can still promise, and when it is expected."""

    supply_id: str
    promisable: int
    expected_at: datetime


@dataclass(frozen=True)
class Draw:
    supply_id: str
    quantity: int
    expected_at: datetime


def draw_on_supplies(wanted: int, supplies: Iterable[Incoming]) -> list[Draw] | None:
    """Promise `wanted` units from the supplies expected soonest (ties by supply id), from
    several when one is not enough, never beyond what each can still promise; None when all of
    them together cannot cover it."""
    draws, left = [], wanted
    for supply in sorted(supplies, key=lambda s: (s.expected_at, s.supply_id)):
        if left == 0:
            break
        if supply.promisable <= 0:
            continue
        take = min(left, supply.promisable)
        draws.append(Draw(supply.supply_id, take, supply.expected_at))
        left -= take
    return draws if left == 0 else None


def promised_at(draws: Iterable[Draw]) -> datetime:
    """A promise is kept when the last supply it draws on arrives."""
    return max(draw.expected_at for draw in draws)


@dataclass(frozen=True)
class Waiting:
    """A promise waiting on a supply: units of it promised that have not arrived yet."""

    promise_id: str
    outstanding: int


def assign_arrivals(units: int, waiting: Sequence[Waiting]) -> list[tuple[str, int]]:
    """Arriving units go to the promises waiting on that supply in the order they were made
    (`waiting` is in that order), each taking what it still waits for, until the units run out.
    What is left over is nobody's: it becomes available."""
    assigned, left = [], units
    for promise in waiting:
        if left == 0:
            break
        take = min(left, promise.outstanding)
        if take > 0:
            assigned.append((promise.promise_id, take))
            left -= take
    return assigned


def correction_delta(level: Level, correction: StockCorrection, released: int) -> int:
    """The on_hand change a rejected pick asks for, after its units were released: `not_in_stock`
    counts the location down to what other reservations hold (nothing more is there);
    `damaged` writes the released units off."""
    if correction is StockCorrection.NOT_IN_STOCK:
        return level.reserved - level.on_hand
    return -min(released, level.on_hand - level.reserved)


def within_reach(
    places: Iterable[tuple[str, float, float]],
    near: tuple[float, float] | None,
    radius_km: float | None,
) -> dict[str, float | None]:
    """Of `(location_id, lat, lon)`, those within the radius of `near`, with their distance in
    km (to the metre); without a point, every one of them, with no distance."""
    if near is None:
        return {location_id: None for location_id, _, _ in places}
    lat, lon = near
    reach: dict[str, float | None] = {}
    for location_id, place_lat, place_lon in places:
        distance = round(distance_km(lat, lon, place_lat, place_lon), 3)
        if radius_km is None or distance <= radius_km:
            reach[location_id] = distance
    return reach


def nearest_first(location_ids: Iterable[str], reach: Mapping[str, float | None]) -> list[str]:
    """Of these locations, those within reach, nearest first, ties broken by location id;
    without a point (no distances), all of them by location id."""
    return sorted((i for i in location_ids if i in reach), key=lambda i: (reach[i] or 0.0, i))


@dataclass(frozen=True)
class Movement:
    on_hand_delta: int
    reserved_delta: int


def replay(movements: Sequence[Movement]) -> Level:
    """The level the ledger says there should be: the sum of every movement since zero."""
    return Level(
        sum(m.on_hand_delta for m in movements),
        sum(m.reserved_delta for m in movements),
    )


def parse_point(text: str) -> tuple[float, float]:
    """`"52.37,4.89"` -> (52.37, 4.89), with a clear error for anything else."""
    parts = text.split(",")
    if len(parts) != 2:
        raise ValueError(f"near must be 'LAT,LON', got {text!r}")
    try:
        lat, lon = float(parts[0]), float(parts[1])
    except ValueError:
        raise ValueError(f"near must be two numbers 'LAT,LON', got {text!r}") from None
    if not (-90 <= lat <= 90 and -180 <= lon <= 180) or math.isnan(lat) or math.isnan(lon):
        raise ValueError(f"near is outside the globe: {text!r}")
    return lat, lon


# The catalog: finding products by what someone typed

_LIKE_SPECIAL = str.maketrans({"\\": "\\\\", "%": "\\%", "_": "\\_"})
_REGEX_SPECIAL = str.maketrans({c: "\\" + c for c in string.punctuation})


@dataclass(frozen=True)
class SearchPatterns:
    """What a product search looks for, as PostgreSQL patterns that take the typed text
    literally: a sku starting with it (`ILIKE`, with `\\` escaping), or a name with a word
    starting with it (`~*`, a regular expression)."""

    sku_prefix: str
    word_start: str

    @classmethod
    def of(cls, text: str) -> SearchPatterns | None:
        """None when nothing but blanks was typed: that matches no product."""
        typed = text.strip()
        if not typed:
            return None
        # A word starts at the beginning of the name or after anything but a letter or digit
        # ("Three-season" has the words "Three" and "season"). In PostgreSQL's regular
        # expressions a backslash before a character that is not a letter or digit always
        # means that character itself, so escaping ASCII punctuation leaves no operator in
        # the typed text; no other character is one.
        return cls(
            sku_prefix=typed.translate(_LIKE_SPECIAL) + "%",
            word_start="(^|[^[:alnum:]])" + typed.translate(_REGEX_SPECIAL),
        )
