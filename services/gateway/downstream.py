"""Calls to inventory, pricing and orders: bounded in time, retried only when repeating the call
cannot have a second effect, and failing with a problem that names the service."""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp

from services.infrastructure.errors import BadGateway, ServiceUnavailable
from services.infrastructure.metrics import CACHE_READS
from services.infrastructure.telemetry import aiohttp_trace_configs

log = logging.getLogger(__name__)

RETRYABLE_STATUSES = frozenset({502, 503, 504})


@dataclass(frozen=True)
class Reply:
    """A downstream answer, kept as bytes: most are passed on to the client unchanged."""

    status: int
    body: bytes
    content_type: str
    replayed: bool = False
    """A stored first response, given again for a repeated Idempotency-Key."""

    @property
    def ok(self) -> bool:
        return self.status < 400

    def json(self) -> Any:
        return json.loads(self.body)


class Downstream:
    """One internal service behind the gateway."""

    def __init__(
        self,
        name: str,
        base_url: str,
        *,
        timeout: float,
        connect_timeout: float,
        retries: int,
    ) -> None:
        self.name = name
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.retries = retries
        # aiohttp rather than httpx: on the gateway's hot path httpx's connection pool cost
        # most of the gateway's CPU in profiles.
        self.session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(
                total=timeout, sock_connect=min(connect_timeout, timeout)
            ),
            # Idle connections are let go before the service's server closes them (uvicorn: after
            # 5 s), so a call never goes out on a connection that is already closed.
            connector=aiohttp.TCPConnector(limit=200, keepalive_timeout=4),
            # Client spans, and `traceparent` on every call: one trace from the gateway onwards.
            trace_configs=aiohttp_trace_configs(),
            raise_for_status=False,
        )

    async def aclose(self) -> None:
        await self.session.close()

    async def call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        safe_to_retry: bool = False,
    ) -> Reply:
        """Call the service. `safe_to_retry`: repeating the call after a timeout or a 5xx cannot
        have a second effect (a read, an absolute set, a creation carrying an idempotency key).
        A call whose connection was refused never reached the service and is always retried."""
        deadline = time.monotonic() + self.timeout
        query = _query(params)
        attempt = 0
        while True:
            attempt += 1
            failure: str
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                failure = f"no answer within {self.timeout:g}s"
                break
            try:
                async with (
                    asyncio.timeout(remaining),
                    self.session.request(
                        method, self.base_url + path, json=json, params=query, headers=headers
                    ) as response,
                ):
                    reply = Reply(
                        response.status,
                        await response.read(),
                        response.headers.get("content-type", "application/json"),
                    )
            except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as error:
                failure = f"cannot connect ({type(error).__name__})"
                retry = True
            except TimeoutError:
                failure = f"no answer within {self.timeout:g}s"
                retry = safe_to_retry
            except aiohttp.ClientError as error:
                failure = f"the connection failed ({type(error).__name__})"
                retry = safe_to_retry
            else:
                if reply.status in RETRYABLE_STATUSES:
                    failure = f"it answered {reply.status}"
                    retry = safe_to_retry
                elif reply.status >= 500:
                    raise BadGateway(
                        f"{self.name} failed on {method} {path} (HTTP {reply.status})",
                        service=self.name,
                    )
                else:
                    return reply
            if not retry or attempt > self.retries:
                break
            pause = min(0.05 * 2**attempt * random.uniform(0.5, 1.5), deadline - time.monotonic())
            log.info("%s %s %s: %s; retrying", self.name, method, path, failure)
            if pause > 0:
                await asyncio.sleep(pause)
        raise ServiceUnavailable(
            f"{self.name} is unavailable: {failure} ({method} {path}, {attempt} attempt"
            f"{'s' if attempt > 1 else ''}); try again shortly",
            unavailable=[self.name],
            retry_after=1,
        )


def _query(params: Mapping[str, Any] | None) -> list[tuple[str, str]]:
    """Query parameters as pairs, a list value repeating its name (`sku=A&sku=B`)."""
    pairs: list[tuple[str, str]] = []
    for name, value in (params or {}).items():
        for one in value if isinstance(value, list | tuple) else [value]:
            pairs.append((name, str(one)))
    return pairs


# The last part of an answer's time in which an ask refreshes it in the background: long enough
# for inventory to answer (a few ms) before it expires, short enough that a page is asked for
# about once per `seconds` (in the second half it was twice: a twentieth of the gateway's CPU
# under availability load went into the extra calls).
_REFRESH_AHEAD = 0.2


class ShortCache:
    """Successful answers to one read, kept for `seconds` from when they were asked and shared by
    every request that asks the same in that time; concurrent asks for an answer not yet kept
    wait for one call. An answer asked for in the last fifth of its time is refreshed in the
    background, so a read that is asked for often never waits for one (and is never older than
    `seconds`: the old answer is served only until it expires).

    For shop availability: a product page may show stock up to `seconds` old, which orders
    never rely on (routing asks inventory, the authority). Staff and admins are not served from
    it: they read what they have just changed."""

    def __init__(self, name: str, seconds: float, max_entries: int = 10_000) -> None:
        self.seconds = seconds
        self.max_entries = max_entries
        self._kept: dict[Hashable, tuple[float, Reply]] = {}
        self._calls: dict[Hashable, asyncio.Task[Reply]] = {}
        self._hits = CACHE_READS.labels(name, "hit")
        self._misses = CACHE_READS.labels(name, "miss")

    async def get(self, key: Hashable, call: Callable[[], Awaitable[Reply]]) -> Reply:
        if self.seconds <= 0:
            return await call()
        kept = self._kept.get(key)
        now = time.monotonic()
        if kept is not None and kept[0] > now:
            self._hits.inc()
            if kept[0] - now < self.seconds * _REFRESH_AHEAD and key not in self._calls:
                self._call(key, call).add_done_callback(_retrieved)
            return kept[1]
        self._misses.inc()
        task = self._calls.get(key) or self._call(key, call)
        # Shielded: a client that goes away must not cancel the call others wait for.
        return await asyncio.shield(task)

    def _call(self, key: Hashable, call: Callable[[], Awaitable[Reply]]) -> asyncio.Task[Reply]:
        task = self._calls[key] = asyncio.create_task(self._fetch(key, call))
        return task

    async def _fetch(self, key: Hashable, call: Callable[[], Awaitable[Reply]]) -> Reply:
        asked = time.monotonic()
        try:
            reply = await call()
        finally:
            del self._calls[key]
        if reply.ok:
            if len(self._kept) >= self.max_entries:
                self._forget_expired()
            if len(self._kept) < self.max_entries:
                self._kept[key] = (asked + self.seconds, reply)
        return reply

    def _forget_expired(self) -> None:
        now = time.monotonic()
        for key in [key for key, (until, _) in self._kept.items() if until <= now]:
            del self._kept[key]


def _retrieved(task: asyncio.Task[Reply]) -> None:
    """A background refresh that failed: the kept answer serves until it expires, and the next
    ask after that calls again (and sees the failure)."""
    if not task.cancelled():
        task.exception()
