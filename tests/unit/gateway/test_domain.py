"""The gateway's rules: authorisation by role and binding, the token bucket, idempotency."""

from __future__ import annotations

import jwt
import pytest

from services.contracts.gateway import RateLimit, Role
from services.contracts.pricing import Channel
from services.gateway import domain
from services.gateway.domain import Principal

WEB_SHOP = Principal("key_web", Role.SHOP, channel=Channel.WEB)
APP_SHOP = Principal("key_app", Role.SHOP, channel=Channel.APP)
AMSTERDAM = Principal("key_ams", Role.STORE, store_id="store-ams")
UTRECHT = Principal("key_utr", Role.STORE, store_id="store-utr")
NORTHWIND = Principal("key_nw", Role.PARTNER, partner_id="northwind")
SOUTHWIND = Principal("key_sw", Role.PARTNER, partner_id="southwind")
ADMIN = Principal("key_admin", Role.ADMIN)


def test_role_denial_names_the_roles_that_may() -> None:
    allowed = frozenset({Role.STORE, Role.ADMIN})
    assert domain.role_denial(AMSTERDAM, allowed, "read routing decisions") is None
    reason = domain.role_denial(WEB_SHOP, allowed, "read routing decisions")
    assert reason == (
        "a shop key may not read routing decisions; that takes a key of role: admin, store"
    )


def test_a_shop_sees_only_its_channels_orders_while_stores_and_admins_see_all() -> None:
    assert domain.order_denial(WEB_SHOP, "web") is None
    assert domain.order_denial(APP_SHOP, "web") is not None
    assert domain.order_denial(AMSTERDAM, "web") is None
    assert domain.order_denial(ADMIN, "app") is None
    assert domain.order_denial(NORTHWIND, "partner") is not None


def test_store_staff_act_for_their_own_store_only() -> None:
    assert domain.store_denial(AMSTERDAM, "store-ams") is None
    assert domain.store_denial(AMSTERDAM, "store-utr") == (
        "store key key_ams (store-ams) may not act for store store-utr"
    )
    assert domain.store_denial(ADMIN, "store-utr") is None
    assert domain.store_denial(WEB_SHOP, "store-ams") is not None


@pytest.mark.parametrize(
    ("principal", "fulfillment", "allowed"),
    [
        (AMSTERDAM, {"location_id": "store-ams"}, True),
        (AMSTERDAM, {"location_id": "wh-1", "pickup_store_id": "store-ams"}, True),
        (UTRECHT, {"location_id": "store-ams", "pickup_store_id": "store-ams"}, False),
        (NORTHWIND, {"location_id": "dropship-nw", "partner_id": "northwind"}, True),
        (SOUTHWIND, {"location_id": "dropship-nw", "partner_id": "northwind"}, False),
        (NORTHWIND, {"location_id": "store-ams", "partner_id": None}, False),
        (WEB_SHOP, {"location_id": "store-ams"}, False),
        (ADMIN, {"location_id": "anything"}, True),
    ],
)
def test_fulfillments_are_acted_on_by_their_own_store_or_partner(
    principal: Principal, fulfillment: dict[str, str | None], allowed: bool
) -> None:
    reason = domain.fulfillment_denial(principal, {"fulfillment_id": "ful_1", **fulfillment})
    assert (reason is None) is allowed


TRANSFER = {"fulfillment_id": "ful_2", "location_id": "wh-1", "pickup_store_id": "store-ams"}
SHIP_FROM_STORE = {"fulfillment_id": "ful_3", "location_id": "store-utr", "pickup_store_id": None}


@pytest.mark.parametrize(
    ("principal", "fulfillment", "step", "allowed"),
    [
        # A transfer for pickup: the pickup store readies and hands over, the warehouse ships.
        (AMSTERDAM, TRANSFER, "ready", True),
        (AMSTERDAM, TRANSFER, "handover", True),
        (AMSTERDAM, TRANSFER, "ship", False),
        (AMSTERDAM, TRANSFER, "reject", False),
        # Ship-from-store: the serving store ships or rejects; no other store may.
        (UTRECHT, SHIP_FROM_STORE, "ship", True),
        (UTRECHT, SHIP_FROM_STORE, "reject", True),
        (AMSTERDAM, SHIP_FROM_STORE, "reject", False),
        (ADMIN, TRANSFER, "ship", True),
    ],
)
def test_each_step_belongs_to_the_store_that_does_it(
    principal: Principal, fulfillment: dict[str, str | None], step: str, allowed: bool
) -> None:
    assert (domain.fulfillment_denial(principal, fulfillment, step) is None) is allowed


def test_keys_sell_in_their_bound_channel() -> None:
    assert domain.bound_channel(APP_SHOP) is Channel.APP
    assert domain.bound_channel(AMSTERDAM) is Channel.STORE
    assert domain.bound_channel(NORTHWIND) is Channel.PARTNER
    assert domain.bound_channel(ADMIN) is None


def test_the_quote_channel_is_read_from_the_token_without_its_secret() -> None:
    token = jwt.encode({"quote_id": "qt_1", "channel": "app"}, "k" * 32, algorithm="HS256")
    assert domain.quote_channel(token) == "app"
    assert domain.quote_channel("not a token") is None


def test_api_keys_are_random_and_only_their_hash_is_compared() -> None:
    first_id, first = domain.new_api_key()
    second_id, second = domain.new_api_key()
    assert first != second
    assert first_id != second_id
    assert first.startswith(domain.KEY_PREFIX)
    assert len(first) > 40
    assert domain.hash_api_key(first) == domain.hash_api_key(first)
    assert domain.hash_api_key(first) != domain.hash_api_key(second)
    assert first not in domain.hash_api_key(first)


def test_the_bucket_allows_a_burst_then_refills_at_the_rate() -> None:
    bucket = domain.TokenBucket.full(RateLimit(requests_per_second=2, burst=3), now=100.0)
    assert [bucket.take(100.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take(100.0) == pytest.approx(0.5)  # one token takes half a second
    assert bucket.take(100.5) == 0.0
    assert bucket.take(100.5) > 0
    assert bucket.take(110.0) == 0.0  # refilled, but never beyond the burst
    assert bucket.tokens == pytest.approx(2.0)


def test_retry_after_is_whole_seconds_and_never_zero() -> None:
    assert domain.retry_after_seconds(0.01) == 1
    assert domain.retry_after_seconds(1.2) == 2


def test_the_fingerprint_ignores_key_order_but_not_content_or_path() -> None:
    first = domain.request_fingerprint("POST", "/v1/orders", {"a": 1, "b": [1, 2]})
    assert first == domain.request_fingerprint("POST", "/v1/orders", {"b": [1, 2], "a": 1})
    assert first != domain.request_fingerprint("POST", "/v1/orders", {"a": 2, "b": [1, 2]})
    assert first != domain.request_fingerprint("POST", "/v1/returns", {"a": 1, "b": [1, 2]})


def test_downstream_keys_are_stable_and_scoped_to_the_api_key() -> None:
    key = domain.downstream_idempotency_key("key_a", "POST /v1/orders", "checkout-1")
    assert key == domain.downstream_idempotency_key("key_a", "POST /v1/orders", "checkout-1")
    assert key != domain.downstream_idempotency_key("key_b", "POST /v1/orders", "checkout-1")
    assert key != domain.downstream_idempotency_key("key_a", "POST /v1/returns", "checkout-1")
    assert len(key) <= 64
