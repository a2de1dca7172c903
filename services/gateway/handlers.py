"""The gateway's use cases: API keys, authentication, the rate limit and idempotent replay."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from pydantic import BaseModel, RootModel, ValidationError
from sqlalchemy.ext.asyncio import AsyncConnection

from services.contracts.gateway import ApiKey, ApiKeyCreated, ApiKeyIn, ApiKeyPage, RateLimit, Role
from services.contracts.operations import (
    ChannelConversion,
    ChannelOrders,
    ExceptionItem,
    ExceptionKind,
    LocationsWork,
    MessagingStatus,
    OperationsExceptions,
    OperationsSummary,
    OrderCounts,
    QuoteCounts,
    StoreOperations,
    StoresOperations,
)
from services.contracts.pricing import Channel
from services.gateway import db, domain
from services.gateway.domain import Principal
from services.gateway.downstream import Downstream, Reply, ShortCache
from services.infrastructure.database import UnitOfWork
from services.infrastructure.errors import (
    BadGateway,
    Conflict,
    InvalidRequest,
    NotFound,
    ServiceUnavailable,
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
    operations_timeout: float = 2.0
    """Longest the command center waits for one service."""
    outbox_delay: float = 5.0
    """Seconds an outbox row may wait for the relay before it counts as a backlog."""
    availability: ShortCache = field(default_factory=lambda: ShortCache("availability", 0))
    """Shop availability answers, reused for a moment."""

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


async def own_api_key(principal: Principal, uow: UnitOfWork) -> ApiKey:
    """The caller's own key (never its secret). One revoked since it was checked (the
    authenticator trusts a verified key for a few seconds) no longer answers."""
    row = await db.api_key_by_id(uow.connection, principal.key_id)
    if row is None or row.revoked_at is not None:
        raise Unauthorized("this API key is not valid: it is unknown or has been revoked")
    return api_key_view(row)


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
        async with self._statements() as conn:
            # Rate limits and failures are not the request's answer: the client may try again.
            if reply.status == 429 or reply.status >= 500:
                await db.release_idempotency_key(conn, *scope)
            else:
                kept = keep(reply)
                await db.complete_idempotency_key(
                    conn, *scope, kept.status, kept.body, kept.content_type
                )
        return reply

    @contextlib.asynccontextmanager
    async def _statements(self) -> AsyncIterator[AsyncConnection]:
        """A connection on which each statement commits by itself. Every step of a key's record
        is one statement that stands alone (a claim, a take-over, a completion, each checking
        its own condition), so a transaction around each only added a BEGIN and a COMMIT, four
        round trips per order."""
        async with self._unit_of_work() as uow:
            yield await uow.connection.execution_options(isolation_level="AUTOCOMMIT")

    async def _claim(self, scope: tuple[str, str, str], fingerprint: str) -> Reply | None:
        """None once this request owns the key; the stored response if there is one."""
        deadline = time.monotonic() + self._wait_seconds
        while True:
            async with self._statements() as conn:
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
            async with self._statements() as conn:
                await db.release_idempotency_key(conn, *scope)
        except Exception:  # the lease runs out instead, and a retry takes over
            log.exception("could not release idempotency key of %s", scope[0])


async def purge_idempotency_records(uow: UnitOfWork, retention_hours: float) -> int:
    purged = await db.purge_idempotency_records(uow.connection, retention_hours)
    await uow.commit()
    return purged


# The command center (DESIGN.md §8.3): each service answers for its own data at `/operations/*`
# and the gateway puts the answers together; a service that does not answer is named, and the
# rest is still answered.

M = TypeVar("M", bound=BaseModel)
EXCEPTIONS_LIMIT = 200


class Unanswered(Exception):
    """A service gave no usable answer; the message says why."""


class _Store(BaseModel):
    """What the command center needs of inventory's locations (any other field is ignored)."""

    location_id: str
    name: str


_Stores = RootModel[list[_Store]]


async def _ask(
    gateway: Gateway,
    service: Downstream,
    path: str,
    model: type[M],
    params: Mapping[str, Any] | None = None,
) -> M:
    try:
        async with asyncio.timeout(gateway.operations_timeout):
            reply = await service.call("GET", path, params=params, safe_to_retry=True)
    except TimeoutError:
        raise Unanswered(f"no answer within {gateway.operations_timeout:g}s") from None
    except (ServiceUnavailable, BadGateway) as error:
        raise Unanswered(error.detail) from None
    if not reply.ok:
        raise Unanswered(f"it answered {reply.status} to GET {path}")
    try:
        return model.model_validate_json(reply.body)
    except ValidationError:
        raise Unanswered(f"its answer to GET {path} does not match the contract") from None


async def _ask_all(
    asks: Mapping[tuple[str, str], Awaitable[Any]],
) -> tuple[dict[tuple[str, str], Any], dict[str, str]]:
    """Answers by (service, what was asked), and why each service that failed did not answer."""
    results = await asyncio.gather(*asks.values(), return_exceptions=True)
    answers: dict[tuple[str, str], Any] = {}
    unavailable: dict[str, str] = {}
    for (service, what), result in zip(asks, results, strict=True):
        if isinstance(result, Unanswered):
            log.warning("operations: %s did not answer for %s: %s", service, what, result)
            unavailable.setdefault(service, str(result))
        elif isinstance(result, BaseException):
            raise result
        else:
            answers[service, what] = result
    return answers, unavailable


async def operations_summary(gateway: Gateway, minutes: int) -> OperationsSummary:
    """Orders per minute by channel and status, and conversion per channel, from orders' and
    pricing's counts of the same window."""
    window = {"minutes": minutes}
    answers, unavailable = await _ask_all(
        {
            ("orders", "orders"): _ask(
                gateway, gateway.orders, "/operations/orders", OrderCounts, window
            ),
            ("pricing", "quotes"): _ask(
                gateway, gateway.pricing, "/operations/quotes", QuoteCounts, window
            ),
        }
    )
    counts: OrderCounts | None = answers.get(("orders", "orders"))
    quotes: QuoteCounts | None = answers.get(("pricing", "quotes"))
    orders = dict.fromkeys(Channel, 0)
    for bucket in counts.orders_per_minute if counts else ():
        orders[bucket.channel] += bucket.orders
    quoted = dict.fromkeys(Channel, 0)
    for given in quotes.quotes_by_channel if quotes else ():
        quoted[given.channel] += given.quotes
    return OperationsSummary(
        generated_at=datetime.now(UTC),
        window_minutes=minutes,
        orders_per_minute=counts.orders_per_minute if counts else (),
        orders_by_channel=tuple(
            ChannelOrders(channel=channel, orders=orders[channel])
            for channel in (Channel if counts else ())
        ),
        conversion=tuple(
            ChannelConversion(
                channel=channel,
                quotes=quoted[channel],
                orders=orders[channel],
                rate=round(orders[channel] / quoted[channel], 4) if quoted[channel] else None,
            )
            for channel in (Channel if counts and quotes else ())
        ),
        unavailable=tuple(sorted(unavailable)),
    )


async def operations_exceptions(gateway: Gateway, pending_seconds: int) -> OperationsExceptions:
    """What needs attention across the services, most urgent first, at most 200 items."""
    services = (gateway.inventory, gateway.pricing, gateway.orders, gateway.webhooks)
    asks: dict[tuple[str, str], Awaitable[Any]] = {
        (service.name, "messaging"): _ask(
            gateway, service, "/operations/messaging", MessagingStatus
        )
        for service in services
    }
    asks["orders", "exceptions"] = _ask(
        gateway,
        gateway.orders,
        "/operations/exceptions",
        OperationsExceptions,
        {"pending_seconds": pending_seconds},
    )
    answers, unavailable = await _ask_all(asks)
    now = datetime.now(UTC)
    items = [
        ExceptionItem(
            kind=ExceptionKind.SERVICE_UNAVAILABLE,
            service=service,
            detail=f"{service} did not answer ({why}): what it reports is missing here",
        )
        for service, why in unavailable.items()
    ]
    for (_, what), answer in answers.items():
        if what == "messaging":
            items.extend(messaging_exceptions(answer, now, gateway.outbox_delay))
        else:
            items.extend(answer.items)
    return OperationsExceptions(generated_at=now, items=most_urgent(items, EXCEPTIONS_LIMIT))


def messaging_exceptions(
    status: MessagingStatus, now: datetime, outbox_delay: float
) -> list[ExceptionItem]:
    """Dead letters, an outbox its relay is behind on, and consumers behind their topics."""
    items = []
    service = status.service
    if status.dead_letters:
        items.append(
            ExceptionItem(
                kind=ExceptionKind.DEAD_LETTERS,
                service=service,
                detail=f"{status.dead_letters} message(s) {service} could not apply are parked "
                "in its dead_letters table, each with the reason",
                since=status.oldest_dead_letter_at,
                count=status.dead_letters,
            )
        )
    oldest = status.oldest_unpublished_at
    if status.outbox_backlog and oldest and (now - oldest).total_seconds() > outbox_delay:
        items.append(
            ExceptionItem(
                kind=ExceptionKind.OUTBOX_BACKLOG,
                service=service,
                detail=f"{status.outbox_backlog} event(s) of {service} wait to be published, the "
                f"oldest for {(now - oldest).total_seconds():.0f} s: its relay or the broker is "
                "behind",
                since=oldest,
                count=status.outbox_backlog,
            )
        )
    behind: dict[str, dict[str, int]] = {}
    for lag in status.consumer_lag:
        if lag.lag > 0:
            behind.setdefault(lag.group, {})[lag.topic] = lag.lag
    for group, topics in sorted(behind.items()):
        where = ", ".join(f"{topic} by {lag}" for topic, lag in sorted(topics.items()))
        items.append(
            ExceptionItem(
                kind=ExceptionKind.CONSUMER_LAG,
                subject=group,
                service=service,
                detail=f"consumer group {group} of {service} is behind on {where} (the "
                "partitions of the replica that answered)",
                count=sum(topics.values()),
            )
        )
    return items


_URGENCY = {kind: rank for rank, kind in enumerate(ExceptionKind)}
_NEVER = datetime.max.replace(tzinfo=UTC)


def most_urgent(items: Iterable[ExceptionItem], limit: int) -> tuple[ExceptionItem, ...]:
    """In `ExceptionKind`'s order (what holds everything back first), then the longest waiting
    first."""
    ranked = sorted(items, key=lambda i: (_URGENCY[i.kind], i.since or _NEVER, i.subject or ""))
    return tuple(ranked[:limit])


async def operations_stores(gateway: Gateway, minutes: int) -> StoresOperations:
    """Every store location inventory knows, with orders' figures for it (zeros and null for a
    store without work yet). Without either service there is no honest answer: a 503."""
    answers, unavailable = await _ask_all(
        {
            ("inventory", "stores"): _ask(
                gateway, gateway.inventory, "/locations", _Stores, {"type": "store"}
            ),
            ("orders", "stores"): _ask(
                gateway, gateway.orders, "/operations/stores", LocationsWork, {"minutes": minutes}
            ),
        }
    )
    if unavailable:
        raise ServiceUnavailable(
            "; ".join(f"{service} did not answer: {why}" for service, why in unavailable.items()),
            unavailable=sorted(unavailable),
            retry_after=1,
        )
    work = {item.location_id: item for item in answers["orders", "stores"].items}
    items = []
    for store in sorted(answers["inventory", "stores"].root, key=lambda s: s.location_id):
        found = work.get(store.location_id)
        items.append(
            StoreOperations(
                store_id=store.location_id,
                name=store.name,
                fulfillments=found.fulfillments if found else 0,
                by_status=found.by_status if found else {},
                rejects=found.rejects if found else 0,
                median_minutes_to_ready=found.median_minutes_to_ready if found else None,
            )
        )
    return StoresOperations(
        generated_at=datetime.now(UTC), window_minutes=minutes, items=tuple(items)
    )
