"""The test harness: one real PostgreSQL and one real Kafka-protocol broker per test session,
on free ports and a private data directory, so tests never touch a running `make run`.

Point the suite at external ones instead with `OMNIROUTE_TEST_DATABASE_URL` (a server URL; the
suite creates its own databases there) and `OMNIROUTE_TEST_KAFKA` (bootstrap servers).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol, TypeVar

import pytest

from services.contracts.topics import ALL_TOPICS
from services.infrastructure.broker import ensure_topics
from services.infrastructure.migrations import create_database_if_missing, upgrade_to_head
from services.launcher.embedded import EmbeddedKafka, EmbeddedPostgres, free_port
from tests.support import apache_kafka

# Services record spans only when they export them (services/infrastructure/telemetry.py); the
# trace tests collect them in memory instead, so recording is on for the whole suite.
os.environ.setdefault("OTEL_TRACES_SAMPLER", "parentbased_always_on")

# Short group timeouts: the local broker ignores LeaveGroup, so a restarted consumer waits a
# full session timeout before it gets partitions back.
T = TypeVar("T")

TEST_KAFKA_SETTINGS = {
    "kafka_session_timeout_ms": 6000,
    "kafka_heartbeat_interval_ms": 500,
}


@pytest.fixture(scope="session")
def postgres_server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    external = os.environ.get("OMNIROUTE_TEST_DATABASE_URL")
    if external:
        yield external
        return
    server = EmbeddedPostgres(tmp_path_factory.mktemp("pg") / "data", delete_on_stop=True)
    server.start()
    server.tune_for_tests()
    try:
        yield server.url("postgres")
    finally:
        server.stop()


@pytest.fixture(scope="session")
def create_service_database(postgres_server_url: str) -> Callable[[str], str]:
    """Make a fresh, migrated database for `service`; returns its URL."""

    def create_and_migrate(service: str) -> str:
        name = f"t_{service}_{uuid.uuid4().hex[:8]}"
        asyncio.run(create_database_if_missing(postgres_server_url, name))
        url = database_url(postgres_server_url, name)
        upgrade_to_head(service, url)
        return url

    def make(service: str) -> str:
        return in_worker_thread(create_and_migrate, service)

    return make


def database_url(server_url: str, name: str) -> str:
    """The URL of database `name` on the server of `server_url`."""
    from sqlalchemy.engine import make_url

    from services.infrastructure.database import async_database_url

    url = make_url(async_database_url(server_url)).set(database=name)
    return url.render_as_string(hide_password=False)


def in_worker_thread(function: Callable[..., T], *args: object) -> T:
    """Run blocking set-up that owns its own event loop (Alembic, asyncio.run) from anywhere,
    including from inside the session's running loop."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(function, *args).result()


class Broker(Protocol):
    @property
    def bootstrap_servers(self) -> str: ...

    def stop(self) -> None: ...


def start_kafka(log_dir: Path) -> Broker:
    """A broker of its own (for the session, or for a test that must not share one), of the kind
    the run is about: Apache Kafka under `make test-kafka` (tests/support/apache_kafka.py names its
    jars in the environment), else the local broker.

    It blocks for seconds (a JVM starting): from async code, call it in a thread
    (`await asyncio.to_thread(start_kafka, path)`), or the session's consumers, which share the
    event loop, miss their heartbeats."""
    apache_kafka_libs = os.environ.get(apache_kafka.LIBS_ENV)
    kafka: EmbeddedKafka | apache_kafka.ApacheKafka
    if apache_kafka_libs:
        kafka = apache_kafka.ApacheKafka(Path(apache_kafka_libs), log_dir / "apache-kafka")
    else:
        kafka = EmbeddedKafka(port=free_port(), log_path=log_dir / "kafka.log")
    kafka.start()
    return kafka


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    external = os.environ.get("OMNIROUTE_TEST_KAFKA")
    if external:
        in_worker_thread(asyncio.run, ensure_topics(external, ALL_TOPICS))
        yield external
        return
    kafka = start_kafka(tmp_path_factory.mktemp("kafka"))
    try:
        in_worker_thread(asyncio.run, ensure_topics(kafka.bootstrap_servers, ALL_TOPICS))
        yield kafka.bootstrap_servers
    finally:
        kafka.stop()


@pytest.fixture
def unique() -> Callable[[str], str]:
    """Ids no other test uses, so tests can share one database and broker."""
    run = uuid.uuid4().hex[:8]
    return lambda prefix: f"{prefix}-{run}"
