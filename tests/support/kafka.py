"""Plain aiokafka helpers for tests: publish as an outside client would, and watch topics."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from services.contracts.base import Message
from services.contracts.envelope import Envelope


def envelope_bytes(event: Message, *, event_id: str | None = None) -> bytes:
    envelope = Envelope.wrap(event, source="/tests", event_id=event_id)
    return envelope.model_dump_json(exclude_none=True).encode()


def cloud_event(type_: str, data: dict[str, Any], *, event_id: str | None = None) -> bytes:
    """A CloudEvent built by hand, the way a client that does not use our code would."""
    return json.dumps(
        {
            "specversion": "1.0",
            "id": event_id or str(uuid.uuid4()),
            "source": "/some/other/system",
            "type": type_,
            "time": datetime.now(UTC).isoformat(),
            "datacontenttype": "application/json",
            "data": data,
        }
    ).encode()


class Producer:
    def __init__(self, bootstrap: str) -> None:
        self._producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap, enable_idempotence=False, acks="all"
        )

    async def start(self) -> None:
        await self._producer.start()

    async def stop(self) -> None:
        await self._producer.stop()

    async def send(
        self,
        topic: str,
        value: bytes,
        key: str | None = None,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> None:
        await self._producer.send_and_wait(
            topic, value, key=key.encode() if key else None, headers=headers
        )

    async def send_event(self, event: Message, *, event_id: str | None = None) -> str:
        event_id = event_id or str(uuid.uuid4())
        await self.send(event.TOPIC, envelope_bytes(event, event_id=event_id), event.message_key)
        return event_id


class TopicWatcher:
    """Reads topics from the beginning in the background and keeps every decoded message."""

    def __init__(self, bootstrap: str, *topics: str) -> None:
        self._consumer = AIOKafkaConsumer(
            *topics,
            bootstrap_servers=bootstrap,
            group_id=None,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        self.messages: list[dict[str, Any]] = []
        self._task: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()

    async def start(self) -> None:
        await self._consumer.start()
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._consumer.stop()

    async def _run(self) -> None:
        async for record in self._consumer:
            try:
                body = json.loads(record.value)
            except (TypeError, ValueError):
                body = {"undecodable": record.value}
            body["_key"] = record.key.decode() if record.key else None
            # Tests send hostile headers too (not UTF-8): they must not end the watching.
            body["_headers"] = {k: v.decode(errors="replace") for k, v in record.headers or ()}
            self.messages.append(body)
            self._changed.set()

    def matching(self, predicate: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
        return [m for m in self.messages if predicate(m)]

    async def wait_for(
        self,
        predicate: Callable[[dict[str, Any]], bool],
        *,
        count: int = 1,
        timeout: float = 20.0,
    ) -> list[dict[str, Any]]:
        """At least `count` messages matching `predicate`, or fail naming what was seen."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.matching(predicate)
            if len(found) >= count:
                return found
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(
                    f"expected {count} matching messages within {timeout}s, saw {len(found)}: "
                    f"{[m.get('type') for m in found]}"
                )
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout=min(remaining, 0.5))


def of_type(type_suffix: str, **data: Any) -> Callable[[dict[str, Any]], bool]:
    """Predicate: an event whose type contains `type_suffix` and whose data has these values."""

    def predicate(message: dict[str, Any]) -> bool:
        if type_suffix not in message.get("type", ""):
            return False
        payload = message.get("data", {})
        return all(payload.get(k) == v for k, v in data.items())

    return predicate


async def eventually(
    check: Callable[[], Any], *, timeout: float = 20.0, interval: float = 0.1
) -> Any:
    """Await `check()` until it returns a truthy value; fail with its last result."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s; last result: {last!r}")
