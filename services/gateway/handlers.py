"""The gateway's use cases: API keys, authentication, the rate limit and idempotent replay."""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from services.contracts.gateway import ApiKey, ApiKeyCreated, ApiKeyIn, ApiKeyPage, RateLimit, Role
from services.contracts.pricing import Channel
from services.gateway import db, domain
from services.gateway.domain import Principal
from services.gateway.downstream import Downstream, Reply
from services.infrastructure.database import UnitOfWork
from services.infrastructure.errors import (
    Conflict,
    InvalidRequest,
    NotFound,
    TooManyRequests,
    Unauthorized,
)

log = logging.getLogger(__name__)

UnitOfWorkFactory = Callable[[], UnitOfWork]


@dataclass
class Gateway:
    """What the routes work with: the services behind the gateway and its own state."""

    inventory: Downstream
    pricing: Downstream
    orders: Downstream
    webhooks: Downstream
    authenticator: Authenticator
    rate_limiter: RateLimiter
    idempotency: Idempotency

    async def aclose(self) -> None:
        for service in (self.inventory, self.pricing, self.orders, self.webhooks):
            await service.aclose()


# API keys


def api_key_view(row: Any) -> ApiKey:
    return ApiKey(
        key_id=row.key_id,
        name=row.name,
        role=Role(row.role),
        channel=Channel(row.channel) if row.channel else None,
        store_id=row.store_id,
        partner_id=row.partner_id,
        rate_limit=RateLimit.model_validate(row.rate_limit) if row.rate_limit else None,
        created_at=row.created_at,
        revoked_at=row.revoked_at,
    )


async def create_api_key(body: ApiKeyIn, uow: UnitOfWork) -> ApiKeyCreated:
    """Create a key; its secret is in the answer and nowhere else."""
    key_id, secret = domain.new_api_key()
    row = await db.insert_api_key(
        uow.connection,
        {
            "key_id": key_id,
            "name": body.name,
            "role": body.role.value,
            "channel": body.channel.value if body.channel else None,
            "store_id": body.store_id,
            "partner_id": body.partner_id,
            "rate_limit": body.rate_limit.model_dump() if body.rate_limit else None,
            "key_hash": domain.hash_api_key(secret),
        },
    )
    await uow.commit()
    return ApiKeyCreated(**api_key_view(row).model_dump(), api_key=secret)


def without(secret_field: str) -> Callable[[Reply], Reply]:
    """What is kept for replaying a creation that answers with a secret: everything but it."""

    def keep(reply: Reply) -> Reply:
        if not reply.ok:
            return reply
        created = reply.json()
        created[secret_field] = None
        return Reply(reply.status, json.dumps(created).encode(), reply.content_type)

    return keep


without_secret = without("api_key")


async def ensure_bootstrap_admin_key(secret: str, uow: UnitOfWork) -> bool:
    """An admin key with exactly this value (OMNIROUTE_BOOTSTRAP_ADMIN_KEY); True if created."""
    if len(secret) < 16:
        raise ValueError("OMNIROUTE_BOOTSTRAP_ADMIN_KEY must be at least 16 characters long")
    key_hash = domain.hash_api_key(secret)
    created = await db.ensure_api_key(
        uow.connection,
        {
            # A new value adds a key; the same value finds its key by hash and adds nothing. The
            # id is random: one derived from the hash would help guess a human-chosen value.
            "key_id": f"key_bootstrap_{secrets.token_hex(6)}",
            "name": "bootstrap admin (OMNIROUTE_BOOTSTRAP_ADMIN_KEY)",
            "role": Role.ADMIN.value,
            "key_hash": key_hash,
        },
    )
    await uow.commit()
    return created


async def list_api_keys(
    cursor: str | None, limit: int, include_revoked: bool, uow: UnitOfWork
) -> ApiKeyPage:
    rows = await db.api_key_page(uow.connection, cursor, limit + 1, include_revoked)
    items = tuple(api_key_view(row) for row in rows[:limit])
    return ApiKeyPage(items=items, next_cursor=items[-1].key_id if len(rows) > limit else None)


async def revoke_api_key(key_id: str, uow: UnitOfWork) -> ApiKey:
    row = await db.revoke_api_key(uow.connection, key_id)
    if row is None:
        raise NotFound(f"API key {key_id!r} does not exist")
    await uow.commit()
    return api_key_view(row)


# Authentication and the rate limit


class Authenticator:
    """Finds the key behind a bearer token. A verified key is trusted for `cache_seconds`
    without asking the database, which keeps authentication off the hot path."""

    def __init__(self, unit_of_work: UnitOfWorkFactory, cache_seconds: float) -> None:
        self._unit_of_work = unit_of_work
        self._cache_seconds = cache_seconds
        self._cache: dict[str, tuple[float, Principal]] = {}

    async def authenticate(self, api_key: str | None) -> Principal:
        if not api_key:
            raise Unauthorized(
                "this route needs an API key: send it as `Authorization: Bearer <api key>`"
            )
        key_hash = domain.hash_api_key(api_key)
        now = time.monotonic()
        cached = self._cache.get(key_hash)
        if cached is not None and cached[0] > now:
            return cached[1]
        async with self._unit_of_work() as uow:
            row = await db.api_key_by_hash(uow.connection, key_hash)
        if row is None:
            self._cache.pop(key_hash, None)
            raise Unauthorized("this API key is not valid: it is unknown or has been revoked")
        principal = Principal(
            key_id=row.key_id,
            role=Role(row.role),
            channel=Channel(row.channel) if row.channel else None,
            store_id=row.store_id,
            partner_id=row.partner_id,
            rate_limit=RateLimit.model_validate(row.rate_limit) if row.rate_limit else None,
        )
        if len(self._cache) > 10_000:  # bounded: drop everything rather than track recency
            self._cache.clear()
        self._cache[key_hash] = (now + self._cache_seconds, principal)
        return principal


class RateLimiter:
    """A token bucket per API key, in this gateway process: with several gateway replicas each
    enforces the limit on the requests it sees."""

    def __init__(
        self, limit_for_role: Callable[[Role], RateLimit], failed_authentication: RateLimit
    ) -> None:
        self._limit_for_role = limit_for_role
        self._failed_authentication = failed_authentication
        self._buckets: dict[str, domain.TokenBucket] = {}

    def check(self, principal: Principal) -> None:
        limit = principal.rate_limit or self._limit_for_role(principal.role)
        wait = self._take(principal.key_id, limit)
        if wait:
            seconds = domain.retry_after_seconds(wait)
            raise TooManyRequests(
                f"{principal.describe()} is over its rate limit of "
                f"{limit.requests_per_second:g} requests/s (bursts of {limit.burst}); "
                f"retry in {seconds}s",
                retry_after=seconds,
            )

    def charge_failed_authentication(self, client: str) -> None:
        """Requests without a valid key are limited per client address, so guessing keys (each
        guess a database lookup) stays slow."""
        wait = self._take(f"client:{client}", self._failed_authentication)
        if wait:
            seconds = domain.retry_after_seconds(wait)
            raise TooManyRequests(
                f"too many requests with a key that is not valid from {client}; retry in {seconds}s",
                retry_after=seconds,
            )

    def _take(self, name: str, limit: RateLimit) -> float:
        now = time.monotonic()
        bucket = self._buckets.get(name)
        if bucket is None or (bucket.rate, bucket.burst) != (
            limit.requests_per_second,
            limit.burst,
        ):
            if len(self._buckets) > 100_000:  # bounded: forget everyone rather than grow
                self._buckets.clear()
            bucket = self._buckets[name] = domain.TokenBucket.full(limit, now)
        return bucket.take(now)


# Idempotency


Action = Callable[[str], Awaitable[Reply]]


class Idempotency:
    """Replays the first response to a repeated `Idempotency-Key`.

    The key is claimed in the database before the work starts, so of concurrent duplicates
    exactly one does the work and the others wait for its response. The work gets a downstream
    idempotency key derived from the client's, so even a retried or taken-over attempt reaches
    orders with the same key and has one effect.
    """

    def __init__(
        self, unit_of_work: UnitOfWorkFactory, lease_seconds: float, wait_seconds: float
    ) -> None:
        self._unit_of_work = unit_of_work
        self._lease_seconds = lease_seconds
        self._wait_seconds = wait_seconds

    async def run(
        self,
        principal: Principal,
        idempotency_key: str | None,
        operation: str,
        fingerprint: str,
        action: Action,
        keep: Callable[[Reply], Reply] = lambda reply: reply,
    ) -> Reply:
        """`operation` (method and path) scopes the key; `keep` turns the response into what
        may be stored for replay (no secrets)."""
        if idempotency_key is None:
            return await action(f"gw-{uuid.uuid4().hex}")
        scope = (principal.key_id, operation, idempotency_key)
        replay = await self._claim(scope, fingerprint)
        if replay is not None:
            return replay
        try:
            reply = await action(domain.downstream_idempotency_key(*scope))
        except Exception:
            await self._release(scope)
            raise
        async with self._unit_of_work() as uow:
            # Rate limits and failures are not the request's answer: the client may try again.
            if reply.status == 429 or reply.status >= 500:
                await db.release_idempotency_key(uow.connection, *scope)
            else:
                kept = keep(reply)
                await db.complete_idempotency_key(
                    uow.connection,
                    *scope,
                    kept.status,
                    kept.body,
                    kept.content_type,
                )
            await uow.commit()
        return reply

    async def _claim(self, scope: tuple[str, str, str], fingerprint: str) -> Reply | None:
        """None once this request owns the key; the stored response if there is one."""
        deadline = time.monotonic() + self._wait_seconds
        while True:
            async with self._unit_of_work() as uow:
                conn = uow.connection
                claimed = await db.claim_idempotency_key(
                    conn, *scope, fingerprint, self._lease_seconds
                )
                if not claimed:
                    record = await db.idempotency_record(conn, *scope)
                    if record is not None and record.fingerprint != fingerprint:
                        raise InvalidRequest(
                            "this Idempotency-Key was already used for this operation with a "
                            "different body; use a new key for a new request",
                        )
                    if record is not None and record.response_status is not None:
                        return Reply(
                            record.response_status,
                            record.response_body or b"",
                            record.content_type or "application/json",
                            replayed=True,
                        )
                    if record is not None:
                        claimed = await db.take_over_abandoned(conn, *scope, self._lease_seconds)
                await uow.commit()
            if claimed:
                return None
            if time.monotonic() > deadline:
                raise Conflict(
                    "a request with this Idempotency-Key is still being processed; "
                    "retry shortly to get its response",
                    retry_after=1,
                )
            await asyncio.sleep(0.05)

    async def _release(self, scope: tuple[str, str, str]) -> None:
        try:
            async with self._unit_of_work() as uow:
                await db.release_idempotency_key(uow.connection, *scope)
                await uow.commit()
        except Exception:  # the lease runs out instead, and a retry takes over
            log.exception("could not release idempotency key of %s", scope[0])


async def purge_idempotency_records(uow: UnitOfWork, retention_hours: float) -> int:
    purged = await db.purge_idempotency_records(uow.connection, retention_hours)
    await uow.commit()
    return purged
