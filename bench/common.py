"""What the benchmarks share: the embedded stack in a scratch directory, and percentiles."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from services.contracts import topics
from services.infrastructure.broker import ensure_topics
from services.infrastructure.migrations import create_database_if_missing, upgrade_to_head
from services.launcher.embedded import EmbeddedKafka, EmbeddedPostgres, free_port


def say(message: str) -> None:
    print(message, flush=True)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


class Stack:
    """PostgreSQL (default durability, as `make run` has it) and the broker, for one run."""

    def __init__(self) -> None:
        self.work = Path(tempfile.mkdtemp(prefix="omniroute-bench-"))
        self.postgres = EmbeddedPostgres(self.work / "pg", delete_on_stop=True)
        self.kafka = EmbeddedKafka(port=free_port(), log_path=self.work / "kafka.log")

    def start(self) -> None:
        self.postgres.start()
        self.kafka.start()
        asyncio.run(ensure_topics(self.kafka.bootstrap_servers, topics.ALL_TOPICS))

    def database(self, name: str, service: str) -> str:
        """A fresh database `name` migrated to `service`'s schema; its URL."""
        asyncio.run(create_database_if_missing(self.postgres.url(), name))
        url = self.postgres.url(name)
        upgrade_to_head(service, url)
        return url

    def stop(self) -> None:
        self.kafka.stop()
        self.postgres.stop()
