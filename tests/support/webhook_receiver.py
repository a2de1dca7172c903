"""A real HTTP endpoint for webhooks: it records every request, and answers each as its script
says (a status, a pause first, or no answer at all), the way a partner's system might."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.types import Receive, Scope, Send

from tests.support.http import listening

HANG = -1
"""A scripted answer: take the request and never answer it."""


@dataclass(frozen=True)
class Received:
    headers: dict[str, str]
    body: bytes
    at: float  # time.time() when it arrived

    @property
    def payload(self) -> dict[str, Any]:
        found: dict[str, Any] = json.loads(self.body)
        return found

    @property
    def webhook_id(self) -> str:
        return self.headers["webhook-id"]


@dataclass
class Receiver:
    """Answers 200 unless `script` says otherwise: each request takes the next entry, an HTTP
    status, `HANG`, or `(seconds, status)` to answer late."""

    script: list[int | tuple[float, int]] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)
    url: str = ""
    in_flight: int = 0
    most_in_flight: int = 0
    """The most requests it held open at once."""
    _arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        self.received.append(Received(headers, body, time.time()))
        self._arrived.set()
        answer = self.script.pop(0) if self.script else 200
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            if answer == HANG:
                while (await receive())["type"] != "http.disconnect":
                    pass  # held open until the sender gives up
                return
            if isinstance(answer, tuple):
                delay, answer = answer
                await asyncio.sleep(delay)
            await send({"type": "http.response.start", "status": answer, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})
        finally:
            self.in_flight -= 1

    def of(self, event_type: str, **data: Any) -> list[Received]:
        return [
            r
            for r in self.received
            if r.payload["type"] == event_type
            and all(r.payload["data"].get(k) == v for k, v in data.items())
        ]

    async def wait_for(
        self, predicate: Callable[[list[Received]], bool], timeout: float = 20
    ) -> list[Received]:
        """Wait until `predicate` holds for what has arrived; the arrivals then."""
        deadline = time.monotonic() + timeout
        while not predicate(self.received):
            left = deadline - time.monotonic()
            if left <= 0:
                seen = [(r.payload["type"], r.webhook_id) for r in self.received]
                raise AssertionError(f"not received within {timeout} s; got {seen}")
            self._arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), min(left, 0.2))
        return list(self.received)


@contextlib.asynccontextmanager
async def receiving(
    script: list[int | tuple[float, int]] | None = None, path: str = "/hooks"
) -> AsyncIterator[Receiver]:
    """A receiver listening on a free local port; its `url` ends in `path`."""
    receiver = Receiver(script=list(script or []))
    async with listening(receiver) as base:
        receiver.url = base + path
        yield receiver
