"""In-memory stand-ins for unit tests (never for integration tests)."""

from __future__ import annotations

from typing import Any

from services.contracts.inventory import ReleaseStock
from services.infrastructure.inbox import Delivery, Dispatcher


class FakeUnitOfWork:
    """Remembers claimed ids, parked letters and commits across instances, like a database.

    One `within` a batch keeps what it did for the batch's commit once its block is left after
    a `commit()`; in a savepoint, leaving it otherwise undoes its claims too, and without one
    they stay in the batch (as statements already run would)."""

    def __init__(self, store: dict[str, Any]) -> None:
        self.store = store
        self.batch: FakeUnitOfWork | None = None
        self.savepoint = True

    def within(self, batch: FakeUnitOfWork, *, savepoint: bool = True) -> FakeUnitOfWork:
        self.batch = batch
        self.savepoint = savepoint
        return self

    async def __aenter__(self) -> FakeUnitOfWork:
        self.pending: list[Any] = []
        self.kept = False
        return self

    async def __aexit__(self, exc_type: object, *exc: object) -> None:
        if self.batch is not None and self.kept and exc_type is None:
            self.batch.pending.extend(self.pending)
        self.pending = []

    def _statement(self, done: tuple[str, Any]) -> None:
        if self.batch is not None and not self.savepoint:
            self.batch.pending.append(done)
        else:
            self.pending.append(done)

    async def claim_message(self, consumer: str, event_id: str, event_type: str) -> bool:
        key = (consumer, event_id)
        taken = [*self.pending, *(self.batch.pending if self.batch else ())]
        if key in self.store["claimed"] or ("claim", key) in taken:
            return False
        self._statement(("claim", key))
        return True

    async def claim_messages(self, consumer: str, messages: list[tuple[str, str]]) -> set[str]:
        assert len({event_id for event_id, _ in messages}) == len(messages), "an id twice"
        return {
            event_id
            for event_id, event_type in messages
            if await self.claim_message(consumer, event_id, event_type)
        }

    async def park_dead_letter(self, consumer: str, delivery: Delivery, reason: str) -> None:
        self._statement(("dead", reason))

    def emit(self, event: Any) -> None:
        self.pending.append(("emit", event))

    async def commit(self) -> None:
        if self.batch is not None:
            self.kept = True
            return
        for kind, value in self.pending:
            if kind == "claim":
                self.store["claimed"].add(value)
            elif kind == "dead":
                self.store["dead"].append(value)
            else:
                self.store["emitted"].append(value)
        self.pending = []


def make_dispatcher(store: dict[str, Any], handler: Any) -> Dispatcher[Any]:
    """A dispatcher of ReleaseStock to `handler`, over `store`, retrying at once."""
    return Dispatcher(
        "test-consumer",
        {ReleaseStock: handler},
        lambda: FakeUnitOfWork(store),
        max_attempts=3,
        retry_delay=0,
    )
