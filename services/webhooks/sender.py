"""Sending deliveries: a loop that takes due deliveries from the database, POSTs each signed
body in its own task (5 s at most, no redirects), and records the outcome.

One slow or dead endpoint never holds up the others: every send is its own task, and a webhook
has at most a few in flight (`webhook_concurrency_per_endpoint`), so it cannot take the slots
the others need. Each address a host resolves to is checked before it is connected to, at every
send, so a name that later resolves somewhere forbidden (DNS rebinding) is still refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import random
import socket
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from services.infrastructure.database import UnitOfWork
from services.infrastructure.errors import InvalidRequest
from services.infrastructure.metrics import WEBHOOK_DELIVERIES, WEBHOOK_LATENCY
from services.webhooks import db, domain, handlers

log = logging.getLogger(__name__)

WAKE_BATCHING_SECONDS = 0.01
USER_AGENT = "Omniroute-Webhooks/1.0 (+https://omniroute.dev/webhooks)"


class ForbiddenAddress(OSError):
    """The host resolves to an address a webhook may not reach. An OSError, so aiohttp reports
    it as the connection error it is."""


class AddressGuard:
    """Resolves a host and checks every address it resolves to."""

    def __init__(self, *, allow_private: bool) -> None:
        self.allow_private = allow_private
        self._resolver: AbstractResolver | None = None  # made on first use: it needs the loop

    def check(self, address: str) -> None:
        if (reason := domain.address_denial(address, allow_private=self.allow_private)) is not None:
            raise ForbiddenAddress(reason)

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        if _is_ip(host):
            self.check(host)
            return [_literal(host, port)]
        if self._resolver is None:
            self._resolver = DefaultResolver()
        found = await self._resolver.resolve(host, port, family)
        for result in found:
            try:
                self.check(result["host"])
            except ForbiddenAddress as exc:
                raise ForbiddenAddress(f"{host} resolves to {exc}") from None
        return found

    async def check_url(self, url: str) -> None:
        """For a new webhook: a 422 naming the problem when its host resolves nowhere or to any
        address it may not reach."""
        parts = urlsplit(url)
        host = parts.hostname or ""
        try:
            await self.resolve(host, parts.port or 0, socket.AF_UNSPEC)
        except ForbiddenAddress as exc:
            raise InvalidRequest(f"the webhook URL may not be used: {exc}") from None
        except OSError as exc:
            raise InvalidRequest(
                f"the webhook URL's host {host!r} does not resolve: {exc.strerror or exc}"
            ) from None

    async def close(self) -> None:
        if self._resolver is not None:
            await self._resolver.close()


class GuardedResolver(AbstractResolver):
    """aiohttp's resolver, through the guard: the connection goes only to checked addresses."""

    def __init__(self, guard: AddressGuard) -> None:
        self._guard = guard

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        return await self._guard.resolve(host, port, family)

    async def close(self) -> None:
        return None


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def _literal(host: str, port: int) -> ResolveResult:
    ip = ipaddress.ip_address(host.strip("[]"))
    return ResolveResult(
        hostname=host,
        host=str(ip),
        port=port,
        family=socket.AF_INET6 if ip.version == 6 else socket.AF_INET,
        proto=0,
        flags=socket.AI_NUMERICHOST,
    )


class Sender:
    """Takes due deliveries and sends them, each in its own task."""

    def __init__(
        self,
        unit_of_work: Callable[[], UnitOfWork],
        guard: AddressGuard,
        policy: handlers.RetryPolicy,
        *,
        timeout: float,
        concurrency: int,
        per_endpoint: int,
        poll_interval: float,
        lease_seconds: float,
    ) -> None:
        self._unit_of_work = unit_of_work
        self._guard = guard
        self._policy = policy
        self._timeout = timeout
        self._concurrency = concurrency
        self._per_endpoint = per_endpoint
        self._poll_interval = poll_interval
        self._lease_seconds = lease_seconds
        self._rng = random.Random()
        self._wake = asyncio.Event()
        self._in_flight: Counter[str] = Counter()
        self._tasks: set[asyncio.Task[None]] = set()
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.Task[None] | None = None

    def wake(self) -> None:
        """New deliveries committed: look now rather than at the next poll."""
        self._wake.set()

    def start(self) -> None:
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(
                resolver=GuardedResolver(self._guard), limit=self._concurrency
            ),
            timeout=aiohttp.ClientTimeout(total=self._timeout),
            cookie_jar=aiohttp.DummyCookieJar(),
            headers={"User-Agent": USER_AGENT},
        )
        self._loop = asyncio.create_task(self._run(), name="webhook-sender")

    async def stop(self) -> None:
        if self._loop is not None:
            self._loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop
        # Attempts in flight are cut short; their leases bring them back after a restart.
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
        await self._guard.close()

    async def _run(self) -> None:
        while True:
            try:
                room = self._concurrency - len(self._tasks)
                claimed = await self._take(room)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("could not take due webhook deliveries; trying again")
                room, claimed = 0, 0
            if claimed and claimed == room:
                continue  # it took all it could: there may be more due
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._poll_interval)
                # Woken by a commit or a finished attempt: wait a moment for more, so a busy
                # stream of events costs one query per few deliveries, not one each (a profile
                # had the sender's queries at a sixth of the process).
                await asyncio.sleep(WAKE_BATCHING_SECONDS)

    async def _take(self, room: int) -> int:
        if room <= 0:
            return 0
        async with self._unit_of_work() as uow:
            claimed = await db.claim_due(
                uow.connection,
                limit=room,
                in_flight=self._in_flight,
                per_endpoint=self._per_endpoint,
                lease_seconds=self._lease_seconds,
            )
            await uow.commit()
        for delivery in claimed:
            self._in_flight[delivery.webhook_id] += 1
            task = asyncio.create_task(self._deliver(delivery))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return len(claimed)

    async def _deliver(self, delivery: db.Claimed) -> None:
        try:
            attempt = await self._attempt(delivery)
            WEBHOOK_DELIVERIES.labels("delivered" if attempt.succeeded else "failed").inc()
            if attempt.succeeded and delivery.attempts == 1:
                WEBHOOK_LATENCY.observe((datetime.now(UTC) - delivery.event_at).total_seconds())
            if not attempt.succeeded:
                log.info(
                    "webhook delivery %s to %s failed (attempt %d): %s",
                    delivery.delivery_id,
                    delivery.webhook_id,
                    delivery.attempts,
                    domain.describe_failure(attempt.status_code, attempt.error),
                )
            async with self._unit_of_work() as uow:
                await handlers.record_attempt(delivery, attempt, uow, self._policy, self._rng)
        except asyncio.CancelledError:
            raise
        except Exception:
            # The lease brings it back: at least once, even when recording failed.
            log.exception("could not record webhook delivery %s", delivery.delivery_id)
        finally:
            self._in_flight[delivery.webhook_id] -= 1
            if self._in_flight[delivery.webhook_id] <= 0:
                del self._in_flight[delivery.webhook_id]
            self.wake()

    async def _attempt(self, delivery: db.Claimed) -> handlers.Attempt:
        assert self._session is not None
        headers = domain.signed_headers(
            delivery.secret, delivery.delivery_id, datetime.now(UTC), delivery.body
        )
        try:
            async with self._session.post(
                delivery.url, data=delivery.body.encode(), headers=headers, allow_redirects=False
            ) as response:
                await response.content.read(1024)  # a little, so the connection can be reused
                status = response.status
        except TimeoutError:
            return handlers.Attempt(None, f"no answer within {self._timeout:g} s")
        except aiohttp.ClientConnectorError as exc:
            cause: Any = exc.os_error
            if isinstance(cause, ForbiddenAddress):
                return handlers.Attempt(None, f"refused: {cause}")
            return handlers.Attempt(None, f"could not connect: {cause.strerror or cause}")
        except ForbiddenAddress as exc:
            return handlers.Attempt(None, f"refused: {exc}")
        except aiohttp.ClientError as exc:
            return handlers.Attempt(None, f"{exc.__class__.__name__}: {exc}"[:500])
        if 300 <= status < 400:
            return handlers.Attempt(status, f"HTTP {status}: redirects are not followed")
        return handlers.Attempt(status)
