"""The gateway's rules, without I/O: who may do what to which object, API key secrets, the rate
limit's token bucket, and what makes two requests "the same" for idempotency.

Authorisation answers with the reason for a denial (or None), so the edge can say exactly what
is wrong in the problem response.
"""

from __future__ import annotations

import hashlib
import json
import math
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jwt

from services.contracts.gateway import RateLimit, Role
from services.contracts.pricing import Channel

KEY_PREFIX = "omr_"


@dataclass(frozen=True)
class Principal:
    """Who is calling: an API key's role and binding."""

    key_id: str
    role: Role
    channel: Channel | None = None
    store_id: str | None = None
    partner_id: str | None = None
    rate_limit: RateLimit | None = None

    def describe(self) -> str:
        binding = self.channel or self.store_id or self.partner_id
        return f"{self.role.value} key {self.key_id}" + (f" ({binding})" if binding else "")


# API keys


def new_api_key() -> tuple[str, str]:
    """A key id (safe to show and log) and a secret with 256 bits of entropy."""
    return f"key_{secrets.token_hex(8)}", KEY_PREFIX + secrets.token_urlsafe(32)


def hash_api_key(api_key: str) -> str:
    """Keys are random and long, so a fast hash is enough to make a stolen table useless
    (unlike passwords, there is nothing to guess)."""
    return hashlib.sha256(api_key.encode()).hexdigest()


# Function-level authorisation


def role_denial(principal: Principal, allowed: frozenset[Role], action: str) -> str | None:
    if principal.role in allowed:
        return None
    roles = ", ".join(sorted(role.value for role in allowed))
    return f"a {principal.role.value} key may not {action}; that takes a key of role: {roles}"


# Object-level authorisation


def bound_channel(principal: Principal) -> Channel | None:
    """The channel a key sells in: a shop key's channel, `store` or `partner`."""
    return {
        Role.SHOP: principal.channel,
        Role.STORE: Channel.STORE,
        Role.PARTNER: Channel.PARTNER,
    }.get(principal.role)


def quote_channel(quote_token: str) -> str | None:
    """The channel a quote token was made for, read without checking its signature: orders
    checks the signature when the order is placed; this only decides who may use the quote."""
    try:
        claims = jwt.decode(quote_token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return None  # not a token at all: orders answers that with a clear 422
    channel = claims.get("channel")
    return channel if isinstance(channel, str) else None


def order_denial(principal: Principal, order_channel: str) -> str | None:
    """Shops see the orders of their own channel; store staff and admins see every order."""
    if principal.role in (Role.ADMIN, Role.STORE):
        return None
    if principal.role is Role.SHOP and principal.channel == order_channel:
        return None
    return f"this order was not placed in the channel of {principal.describe()}"


def store_denial(principal: Principal, store_id: str) -> str | None:
    """Store staff act for their own store only."""
    if principal.role is Role.ADMIN:
        return None
    if principal.role is Role.STORE and principal.store_id == store_id:
        return None
    return f"{principal.describe()} may not act for store {store_id}"


HANDOVER_STEPS = frozenset({"ready", "handover"})


def fulfillment_denial(
    principal: Principal, fulfillment: Mapping[str, Any], step: str | None = None
) -> str | None:
    """Whose work a fulfillment is: the store it is picked up at marks it ready and hands it
    over; the location serving it ships or rejects it (a store, or a partner's location). Either
    store may look at it. Nobody else but an admin."""
    if principal.role is Role.ADMIN:
        return None
    serving = fulfillment.get("location_id")
    collecting = fulfillment.get("pickup_store_id") or serving
    if principal.role is Role.STORE:
        if step is None:
            stores = {serving, collecting}
        else:
            stores = {collecting} if step in HANDOVER_STEPS else {serving}
        if principal.store_id in stores:
            return None
    if principal.role is Role.PARTNER and principal.partner_id == fulfillment.get("partner_id"):
        return None
    doing = f"{step} " if step else ""
    return (
        f"{principal.describe()} may not {doing}fulfillment {fulfillment.get('fulfillment_id')}: "
        "it is not this key's work"
    )


# Rate limit


@dataclass
class TokenBucket:
    """`burst` tokens, refilled continuously at `rate` per second; a request takes one."""

    rate: float
    burst: int
    tokens: float
    updated_at: float

    @classmethod
    def full(cls, limit: RateLimit, now: float) -> TokenBucket:
        return cls(limit.requests_per_second, limit.burst, float(limit.burst), now)

    def take(self, now: float) -> float:
        """0 if the request may go ahead, otherwise the seconds until a token is available."""
        self.tokens = min(self.burst, self.tokens + max(0.0, now - self.updated_at) * self.rate)
        self.updated_at = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate


def retry_after_seconds(wait: float) -> int:
    """Retry-After takes whole seconds; never 0, which would invite an immediate retry."""
    return max(1, math.ceil(wait))


# Idempotency


def request_fingerprint(method: str, path: str, body: Any) -> str:
    """Two requests are the same when method, path and the validated body are: the body is
    compared as canonical JSON, so key order and whitespace do not matter."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(f"{method} {path}\n{canonical}".encode()).hexdigest()


def downstream_idempotency_key(key_id: str, operation: str, idempotency_key: str) -> str:
    """The key the gateway hands to a service for a client's key: the same for every retry and
    every replica, and scoped to the API key and the operation, as the client's key is, so two
    clients' keys, or one key on two operations, never collide."""
    digest = hashlib.sha256(f"{key_id}\n{operation}\n{idempotency_key}".encode()).hexdigest()
    return f"gw-{digest[:40]}"
