"""The routing engine, pure: `(order, candidate locations with availability, rules) -> plan`.

No I/O and no framework, so a routing decision can be replayed from what was recorded and tested
without a database. Deterministic: inputs are sorted internally, scores are rounded before they
are compared and every tie is broken by location id. Inventory checks the plan again with a
conditional reservation; a location that fails comes back in `excluded` and is never planned again.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from services.retail.geo import distance_km

# Combinations per split size searched exhaustively (3 of 25 sites is 2,300); beyond that a
# greedy pick keeps routing fast at the cost of a possibly larger split.
EXHAUSTIVE_COMBINATIONS = 2_500
METHODS = ("delivery", "pickup", "reserve")


class RoutingError(ValueError):
    """The request itself is malformed (delivery without destination, pickup without store_id,
    no lines, quantity < 1, unknown method), or the rules or site list cannot be applied."""


@dataclass(frozen=True)
class Point:
    lat: float
    lon: float


@dataclass(frozen=True)
class Site:
    """A location as the orders service sees it: the directory entry plus projected availability."""

    location_id: str
    type: str  # "warehouse" | "store" | "dropship"
    lat: float
    lon: float
    capabilities: frozenset[str]  # subset of {"ship", "pickup", "returns"}
    priority: int  # lower is preferred
    ship_capacity_left: int  # parcels it can still ship today
    available: Mapping[str, int]  # sku -> available units (missing sku = 0)
    name: str = ""
    partner_id: str | None = None  # the partner a dropship location belongs to


@dataclass(frozen=True)
class RoutingRules:
    max_locations: int = 3  # most fulfillments one delivery may be split into
    pickup_fallback: str = "transfer"  # "transfer" | "reject"
    distance_weight: float = 1.0  # score points per km from the destination
    priority_weight: float = 1.0  # score points per priority unit
    low_capacity_weight: float = 100.0  # added in full when no capacity is left
    capacity_reference: int = 50  # capacity at which the low-capacity term reaches 0
    store_penalty: float = 25.0  # shipping from a store costs more handling than a warehouse
    dropship_penalty: float = 250.0  # own stock first: partners are for what the network lacks
    alternatives: int = 3  # nearest stores to suggest when a pickup is rejected
    transfer_days: int = 2  # extra days a transfer to the pickup store takes

    def __post_init__(self) -> None:
        if self.max_locations < 1 or self.capacity_reference < 1:
            raise RoutingError("max_locations and capacity_reference must be at least 1")
        if self.pickup_fallback not in ("transfer", "reject"):
            raise RoutingError(
                f"pickup_fallback must be transfer or reject: {self.pickup_fallback}"
            )
        if self.alternatives < 0 or self.transfer_days < 0:
            raise RoutingError("alternatives and transfer_days cannot be negative")


@dataclass(frozen=True)
class ShipWith:
    """An earlier delivery of the same buyer to the same address, not shipped yet: a parcel the
    new order may join (consolidation)."""

    order_id: str
    location_id: str
    shipment_id: str


@dataclass(frozen=True)
class RoutingRequest:
    method: str  # "delivery" | "pickup" | "reserve"
    lines: Mapping[str, int]  # sku -> units wanted
    destination: Point | None = None  # required for delivery
    store_id: str | None = None  # required for pickup and reserve
    excluded: frozenset[str] = frozenset()  # locations that already failed this order
    ship_with: tuple[ShipWith, ...] = ()  # earlier parcels to join, the earliest first


@dataclass(frozen=True)
class CandidateScore:
    location_id: str
    type: str
    distance_km: float | None  # None when there is no point to measure from
    score: float | None  # lower is better; None when not eligible
    covers: Mapping[str, int]  # per requested sku: min(available, wanted)
    eligible: bool
    reasons: tuple[str, ...]  # why it is not eligible, or notes on what it covers


@dataclass(frozen=True)
class PlannedFulfillment:
    location_id: str
    location_type: str
    method: str
    lines: Mapping[str, int]  # sku -> units from this location, sorted by sku
    pickup_store_id: str | None = None  # where the customer collects (pickup and reserve)
    transfer: bool = False  # stock travels from this location to the pickup store
    ready_in_days: int = 0
    ships_with: ShipWith | None = None  # joins that earlier parcel (consolidation)
    partner_id: str | None = None  # the partner whose (dropship) location this is


@dataclass(frozen=True)
class RoutingResult:
    fulfillments: tuple[PlannedFulfillment, ...]  # empty means rejected
    rejected_reason: str | None
    candidates: tuple[CandidateScore, ...]  # every site: eligible by (score, id), then the rest
    rules_applied: tuple[str, ...]
    explanation: str
    alternatives: tuple[str, ...] = ()  # a rejected collection: nearest stores with everything


@dataclass
class _Assessed:
    """A site under evaluation; `score` stays None while it is not eligible."""

    site: Site
    distance_km: float | None
    covers: dict[str, int]
    score: float | None = None
    reasons: list[str] = field(default_factory=list)


def haversine_km(a: Point, b: Point) -> float:
    """Great-circle distance between two points, in kilometres."""
    return distance_km(a.lat, a.lon, b.lat, b.lon)


def route_order(
    request: RoutingRequest, sites: Sequence[Site], rules: RoutingRules = RoutingRules()
) -> RoutingResult:
    """Plan which locations fulfil an order, and say why; an empty plan is a rejection."""
    wanted = _check(request, sites)
    ordered = sorted(sites, key=lambda site: site.location_id)
    # Distances are measured from where the goods go: the customer, or the store they collect at.
    origin = request.destination
    store = next((s for s in ordered if s.location_id == request.store_id), None)
    if request.method != "delivery":
        origin = Point(store.lat, store.lon) if store is not None else None
    assessed = [
        _Assessed(
            site,
            None if origin is None else round(haversine_km(origin, Point(site.lat, site.lon)), 3),
            {sku: max(0, min(site.available.get(sku, 0), n)) for sku, n in wanted.items()},
        )
        for site in ordered
    ]
    if request.method == "delivery":
        return _route_delivery(request, assessed, rules, wanted)
    return _route_collection(request, assessed, rules, wanted)


def _check(request: RoutingRequest, sites: Sequence[Site]) -> dict[str, int]:
    """The wanted units in sku order, once the request is known to make sense."""
    if request.method not in METHODS:
        raise RoutingError(f"unknown method {request.method!r}; expected one of {METHODS}")
    if not request.lines:
        raise RoutingError("an order needs at least one line")
    for sku, quantity in request.lines.items():
        if quantity < 1:
            raise RoutingError(f"quantity of {sku} must be at least 1, got {quantity}")
    point = request.destination
    if request.method == "delivery" and point is None:
        raise RoutingError("a delivery needs a destination")
    if point is not None and not (-90 <= point.lat <= 90 and -180 <= point.lon <= 180):
        raise RoutingError(f"destination is outside the globe: {point.lat}, {point.lon}")
    if request.method != "delivery" and not request.store_id:
        raise RoutingError(f"a {request.method} needs a store_id")
    ids = [site.location_id for site in sites]
    if len(set(ids)) != len(ids):  # two entries for one location cannot be ranked consistently
        repeated = sorted({i for i in ids if ids.count(i) > 1})
        raise RoutingError(f"location {', '.join(repeated)} is listed more than once")
    return {sku: request.lines[sku] for sku in sorted(request.lines)}


def _route_delivery(
    request: RoutingRequest, assessed: list[_Assessed], rules: RoutingRules, wanted: dict[str, int]
) -> RoutingResult:
    for a in assessed:
        _score_for_shipping(a, request.excluded, rules, wanted)
    eligible = sorted((a for a in assessed if a.score is not None), key=_rank)
    applied = _excluded_rule(request)
    for kind, penalty in (("store", rules.store_penalty), ("dropship", rules.dropship_penalty)):
        if penalty and any(a.site.type == kind for a in eligible):
            applied.append(f"{kind} penalty {_num(penalty)}")

    complete = [a for a in eligible if _units(a.covers) == _units(wanted)]
    joined = _consolidation(request.ship_with, complete)
    if joined is not None:
        parcel, a = joined
        applied.append("consolidation")
        why = (
            f"Ships with order {parcel.order_id} (shipment {parcel.shipment_id}): the same buyer "
            f"and address, not shipped yet, and {_named(a)} has everything."
        )
        planned = replace(_planned(a.site, "delivery", wanted), ships_with=parcel)
        return _result((planned,), None, assessed, applied, why)
    if complete:
        applied.append("single location preferred")
        why = f"{_named(complete[0])} has everything with the best score"
        why += f"; next best with everything was {_named(complete[1])}." if complete[1:] else "."
        return _result(
            (_planned(complete[0].site, "delivery", wanted),), None, assessed, applied, why
        )

    chosen, exhaustive = _fewest_split(eligible, wanted, rules.max_locations)
    if not exhaustive:
        applied.append("greedy split: too many candidates for an exhaustive search")
    if chosen is None:
        limit = f"{rules.max_locations} location{'s' if rules.max_locations > 1 else ''}"
        applied.append(f"split limit: {limit}")
        short = _greedy(eligible, wanted, rules.max_locations)[1]
        missing = ", ".join(f"{sku} short {n} of {wanted[sku]}" for sku, n in short.items() if n)
        reason = f"not enough stock to ship: {missing} within {limit}"
        return _result((), reason, assessed, applied, f"Rejected: {reason}.")

    assigned = _assign(chosen, wanted)
    used = [a for a in chosen if assigned[a.site.location_id]]
    plan = tuple(_planned(a.site, "delivery", assigned[a.site.location_id]) for a in used)
    applied.append(f"split across {len(plan)} locations (max {rules.max_locations})")
    why = f"No single location has everything; {_and(_named(a) for a in used)} cover it with the "
    why += f"fewest locations ({len(plan)}) and the lowest total score {_num(_total(used))}."
    return _result(plan, None, assessed, applied, why)


def _consolidation(
    parcels: Sequence[ShipWith], complete: Sequence[_Assessed]
) -> tuple[ShipWith, _Assessed] | None:
    """The earliest parcel of the buyer whose location can ship the whole new order too."""
    can_ship_all = {a.site.location_id: a for a in complete}
    for parcel in parcels:
        if parcel.location_id in can_ship_all:
            return parcel, can_ship_all[parcel.location_id]
    return None


def _score_for_shipping(
    a: _Assessed, excluded: frozenset[str], rules: RoutingRules, wanted: dict[str, int]
) -> None:
    a.reasons = _cannot_ship(a.site, excluded)
    if _units(a.covers) == 0:
        a.reasons.append("has none of the items")
    if a.reasons or a.distance_km is None:
        return
    # The rounded distance, so a score can be recomputed from the candidate's own figures.
    reference = rules.capacity_reference
    low_capacity = 1 - min(a.site.ship_capacity_left, reference) / reference
    penalty = {"store": rules.store_penalty, "dropship": rules.dropship_penalty}
    score = (
        rules.distance_weight * a.distance_km
        + rules.priority_weight * a.site.priority
        + rules.low_capacity_weight * low_capacity
        + penalty.get(a.site.type, 0.0)
    )
    a.score, a.reasons = round(score, 3), [_coverage_note(a.covers, wanted)]


def _cannot_ship(site: Site, excluded: frozenset[str]) -> list[str]:
    reasons = ["excluded after a failed attempt"] if site.location_id in excluded else []
    if "ship" not in site.capabilities:
        reasons.append("cannot ship")
    elif site.ship_capacity_left <= 0:
        reasons.append("no ship capacity left today")
    return reasons


def _fewest_split(
    eligible: list[_Assessed], wanted: dict[str, int], max_locations: int
) -> tuple[list[_Assessed] | None, bool]:
    """The fewest sites that together cover everything, cheapest total score first; the flag says
    whether the search was exhaustive."""
    if any(sum(a.covers[sku] for a in eligible) < n for sku, n in wanted.items()):
        return None, True
    for size in range(2, min(max_locations, len(eligible)) + 1):
        if math.comb(len(eligible), size) > EXHAUSTIVE_COMBINATIONS:
            chosen, short = _greedy(eligible, wanted, max_locations)
            return (None if any(short.values()) else chosen), False
        covering = [
            combo
            for combo in itertools.combinations(eligible, size)  # keeps rank order inside
            if all(sum(a.covers[sku] for a in combo) >= n for sku, n in wanted.items())
        ]
        if covering:
            best = min(covering, key=lambda c: (_total(c), tuple(a.site.location_id for a in c)))
            return list(best), True
    return None, True


def _greedy(
    eligible: list[_Assessed], wanted: dict[str, int], max_locations: int
) -> tuple[list[_Assessed], dict[str, int]]:
    """Take the site covering most of what is left until done; also returns what stays short."""
    remaining, chosen, pool = dict(wanted), list[_Assessed](), list(eligible)

    def gain(a: _Assessed) -> int:
        return sum(min(a.covers[sku], n) for sku, n in remaining.items())

    while pool and len(chosen) < max_locations and any(remaining.values()):
        best = min(pool, key=lambda a: (-gain(a), *_rank(a)))
        if not gain(best):
            break
        chosen.append(best)
        pool.remove(best)
        remaining = {sku: n - min(n, best.covers[sku]) for sku, n in remaining.items()}
    return sorted(chosen, key=_rank), remaining


def _assign(chosen: list[_Assessed], wanted: dict[str, int]) -> dict[str, dict[str, int]]:
    """Each sku from the best-scored site first, never beyond what a site has available."""
    assigned: dict[str, dict[str, int]] = {a.site.location_id: {} for a in chosen}
    for sku, needed in wanted.items():
        for a in chosen:
            take = min(needed, a.covers[sku])
            if take:
                assigned[a.site.location_id][sku] = take
                needed -= take
    return assigned


def _route_collection(
    request: RoutingRequest, assessed: list[_Assessed], rules: RoutingRules, wanted: dict[str, int]
) -> RoutingResult:
    """Pickup and reserve: the customer collects at the chosen store, from its stock or a transfer."""
    store_id, method = request.store_id or "", request.method
    applied = _excluded_rule(request)
    for a in assessed:
        a.reasons = ["not the chosen store"]
    chosen = next((a for a in assessed if a.site.location_id == store_id), None)
    if chosen is None:  # stores leave the directory; an old link must not crash the checkout
        reason = f"unknown store {store_id}: it is not in the location directory"
        return _result((), reason, assessed, applied, f"Rejected: {reason}.")

    store, others = chosen.site, [a for a in assessed if a is not chosen]
    problem = _store_problem(chosen, request.excluded, wanted)
    chosen.reasons = ["chosen store", problem or "covers everything"]
    if problem is None:
        chosen.score = 0.0
        applied.append(f"{method} at the chosen store")
        why = f"{store_id} has everything for {method}; the customer collects there."
        plan = (_planned(store, method, wanted, store_id),)
        return _result(plan, None, assessed, applied, why)

    can_collect = "pickup" in store.capabilities
    if method == "pickup" and rules.pickup_fallback == "transfer" and can_collect:
        applied.append("pickup fallback: transfer")
        for a in others:
            a.reasons = _cannot_transfer(a, request.excluded, wanted)
            a.score, a.reasons = (
                (None, a.reasons) if a.reasons else (a.distance_km, ["transfer source"])
            )
        sources = [a for a in others if a.score is not None]
        if sources:
            source = min(
                sources, key=lambda a: (a.score or 0.0, a.site.priority, a.site.location_id)
            )
            plan = (_planned(source.site, "pickup", wanted, store_id, rules.transfer_days),)
            why = f"{store_id} {problem}, so {source.site.location_id}, the nearest warehouse with "
            why += f"everything ({_num(source.score or 0.0)} km), transfers it there; ready in "
            why += f"{rules.transfer_days} days."
            return _result(plan, None, assessed, applied, why)
        problem += "; no warehouse can transfer everything"
    elif method == "reserve":
        applied.append("reserve holds stock in the store: no transfer")
    else:
        applied.append("pickup fallback: reject" if can_collect else "store offers no pickup")

    fits = [
        a
        for a in others
        if "pickup" in a.site.capabilities
        and a.site.location_id not in request.excluded
        and _units(a.covers) == _units(wanted)
    ]
    fits.sort(key=lambda a: (a.distance_km or 0.0, a.site.location_id))
    del fits[rules.alternatives :]
    for a in fits:
        a.reasons.append(f"alternative: has everything, {_num(a.distance_km or 0.0)} km away")
    alternatives = tuple(a.site.location_id for a in fits)
    reason = f"{store_id} {problem}"
    why = f"Rejected: {reason}."
    if alternatives:
        why += f" Nearest stores with everything: {', '.join(alternatives)}."
    return _result((), reason, assessed, applied, why, alternatives)


def _store_problem(
    chosen: _Assessed, excluded: frozenset[str], wanted: dict[str, int]
) -> str | None:
    if chosen.site.location_id in excluded:
        return "was excluded after a failed attempt"
    if "pickup" not in chosen.site.capabilities:
        return "does not offer pickup"
    lacking = [f"{chosen.covers[s]} of {n} {s}" for s, n in wanted.items() if chosen.covers[s] < n]
    return f"has {', '.join(lacking)}" if lacking else None


def _cannot_transfer(a: _Assessed, excluded: frozenset[str], wanted: dict[str, int]) -> list[str]:
    reasons = _cannot_ship(a.site, excluded)
    if a.site.type != "warehouse":
        reasons.append("not a warehouse: transfers come from warehouses")
    if _units(a.covers) < _units(wanted):
        reasons.append(f"lacks items for a transfer ({_coverage_note(a.covers, wanted)})")
    return reasons


def _excluded_rule(request: RoutingRequest) -> list[str]:
    return [f"excluded: {', '.join(sorted(request.excluded))}"] if request.excluded else []


def _result(
    plan: tuple[PlannedFulfillment, ...],
    rejected_reason: str | None,
    assessed: list[_Assessed],
    applied: list[str],
    explanation: str,
    alternatives: tuple[str, ...] = (),
) -> RoutingResult:
    eligible = sorted((a for a in assessed if a.score is not None), key=_rank)
    rest = sorted((a for a in assessed if a.score is None), key=lambda a: a.site.location_id)
    candidates = tuple(
        CandidateScore(
            a.site.location_id,
            a.site.type,
            a.distance_km,
            a.score,
            a.covers,
            a.score is not None,
            tuple(a.reasons),
        )
        for a in eligible + rest
    )
    return RoutingResult(
        plan, rejected_reason, candidates, tuple(applied), explanation, alternatives
    )


def _planned(
    site: Site,
    method: str,
    lines: Mapping[str, int],
    pickup_store_id: str | None = None,
    transfer_days: int | None = None,
) -> PlannedFulfillment:
    """A fulfillment with its lines in sku order; `transfer_days` marks a transfer."""
    in_order = {sku: lines[sku] for sku in sorted(lines)}
    transfer = transfer_days is not None
    return PlannedFulfillment(
        site.location_id,
        site.type,
        method,
        in_order,
        pickup_store_id,
        transfer,
        transfer_days or 0,
        partner_id=site.partner_id,
    )


def _rank(a: _Assessed) -> tuple[float, str]:
    return (math.inf if a.score is None else a.score, a.site.location_id)


def _units(lines: Mapping[str, int]) -> int:
    return sum(lines.values())


def _total(combo: Iterable[_Assessed]) -> float:
    return round(sum(a.score or 0.0 for a in combo), 3)


def _coverage_note(covers: Mapping[str, int], wanted: Mapping[str, int]) -> str:
    has, needs = _units(covers), _units(wanted)
    return "covers everything" if has == needs else f"covers {has} of {needs} units"


def _named(a: _Assessed) -> str:
    return f"{a.site.location_id} ({a.site.type}, score {_num(a.score or 0.0)})"


def _and(names: Iterable[str]) -> str:
    items = list(names)
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


def _num(value: float) -> str:
    """At most 3 decimals, no trailing zeros: 250.0 -> "250", 12.50 -> "12.5"."""
    return f"{value:.3f}".rstrip("0").rstrip(".")


# Backorders: stock on its way


@dataclass(frozen=True)
class Supply:
    """Stock on its way to a location (a purchase order or transfer), as much of it as can still
    be promised."""

    supply_id: str
    location_id: str
    sku: str
    promisable: int
    expected_at: datetime


@dataclass(frozen=True)
class BackorderPlan:
    """Where a pre-order waits for its stock, and when that stock is expected."""

    fulfillment: PlannedFulfillment
    promised_at: datetime
    explanation: str


def plan_backorder(
    request: RoutingRequest, sites: Sequence[Site], supplies: Sequence[Supply]
) -> BackorderPlan | None:
    """The location whose incoming stock covers every line soonest (then the nearest, then by
    id), for an order nothing can serve now; None when nothing incoming can cover it. Deliveries
    wait at a location that ships; collections only at their own store (no transfer promised)."""
    wanted = _check(request, sites)
    by_id = {site.location_id: site for site in sites}
    if request.method == "delivery":
        places = [
            s
            for s in by_id.values()
            if "ship" in s.capabilities and s.location_id not in request.excluded
        ]
    else:
        store = by_id.get(request.store_id or "")
        places = [store] if store is not None and "pickup" in store.capabilities else []
    origin = request.destination
    options: list[tuple[datetime, float, str, BackorderPlan]] = []
    for place in places:
        ready = _covered_by(wanted, [s for s in supplies if s.location_id == place.location_id])
        if ready is None:
            continue
        distance = 0.0 if origin is None else haversine_km(origin, Point(place.lat, place.lon))
        pickup_store = None if request.method == "delivery" else request.store_id
        planned = _planned(place, request.method, wanted, pickup_store)
        why = (
            f"Nothing is in stock for it now; incoming stock at {place.name or place.location_id} "
            f"covers every line by {ready.isoformat()}."
        )
        options.append(
            (ready, round(distance, 3), place.location_id, BackorderPlan(planned, ready, why))
        )
    if not options:
        return None
    return min(options, key=lambda option: option[:3])[3]


def _covered_by(wanted: Mapping[str, int], supplies: Sequence[Supply]) -> datetime | None:
    """When the earliest supplies cover every wanted unit, or None if they never do."""
    ready: datetime | None = None
    for sku, units in wanted.items():
        left = units
        for supply in sorted(
            (s for s in supplies if s.sku == sku and s.promisable > 0),
            key=lambda s: (s.expected_at, s.supply_id),
        ):
            left -= supply.promisable
            if left <= 0:
                ready = supply.expected_at if ready is None else max(ready, supply.expected_at)
                break
        if left > 0:
            return None
    return ready
