"""In-memory stand-ins for unit tests (never for integration tests)."""

from __future__ import annotations

from typing import Any

from services.infrastructure.inbox import Delivery


class FakeUnitOfWork:
    """Remembers claimed ids, parked letters and commits across instances, like a database."""

    def __init__(self, store: dict[str, Any]) -> None:
        self.store = store

    async def __aenter__(self) -> FakeUnitOfWork:
        self.pending: list[Any] = []
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.pending = []

    async def claim_message(self, consumer: str, event_id: str, event_type: str) -> bool:
        key = (consumer, event_id)
        if key in self.store["claimed"]:
            return False
        self.pending.append(("claim", key))
        return True

    async def park_dead_letter(self, consumer: str, delivery: Delivery, reason: str) -> None:
        self.pending.append(("dead", reason))

    def emit(self, event: Any) -> None:
        self.pending.append(("emit", event))

    async def commit(self) -> None:
        for kind, value in self.pending:
            if kind == "claim":
                self.store["claimed"].add(value)
            elif kind == "dead":
                self.store["dead"].append(value)
            else:
                self.store["emitted"].append(value)
        self.pending = []
