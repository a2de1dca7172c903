"""Calls to inventory, pricing and orders: bounded in time, retried only when repeating the call
cannot have a second effect, and failing with a problem that names the service."""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

from services.infrastructure.errors import BadGateway, ServiceUnavailable

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
        self.timeout = timeout
        self.retries = retries
        self.client = httpx.AsyncClient(
            base_url=base_url,
            timeout=httpx.Timeout(timeout, connect=min(connect_timeout, timeout)),
            limits=httpx.Limits(max_connections=200, max_keepalive_connections=50),
        )
        # Client spans, and `traceparent` on every call: one trace from the gateway onwards.
        HTTPXClientInstrumentor.instrument_client(self.client)

    async def aclose(self) -> None:
        await self.client.aclose()

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
        attempt = 0
        while True:
            attempt += 1
            failure: str
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                failure = f"no answer within {self.timeout:g}s"
                break
            try:
                async with asyncio.timeout(remaining):
                    response = await self.client.request(
                        method, path, json=json, params=params, headers=headers
                    )
            except (httpx.ConnectError, httpx.ConnectTimeout) as error:
                failure = f"cannot connect ({type(error).__name__})"
                retry = True
            except (TimeoutError, httpx.TimeoutException):
                failure = f"no answer within {self.timeout:g}s"
                retry = safe_to_retry
            except httpx.TransportError as error:
                failure = f"the connection failed ({type(error).__name__})"
                retry = safe_to_retry
            else:
                reply = Reply(
                    response.status_code,
                    response.content,
                    response.headers.get("content-type", "application/json"),
                )
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
