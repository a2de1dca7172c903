"""`omniroute`: the whole system on one machine, from wheels only.

    omniroute run       PostgreSQL + Kafka-protocol broker + every service, demo data; Ctrl-C stops
    omniroute run --replicas 2   the same, with a second process of each Kafka-consuming service
    omniroute migrate   start PostgreSQL, create the databases, migrate them, stop
    omniroute reset --yes   delete the data directory

Settings (environment): OMNIROUTE_DATA_DIR (default ./.omniroute), OMNIROUTE_KAFKA_PORT (9092),
one port variable per service (OMNIROUTE_GATEWAY_PORT, OMNIROUTE_INVENTORY_PORT, ...),
OMNIROUTE_BOOTSTRAP_ADMIN_KEY (an admin API key with exactly this value), and
OMNIROUTE_KAFKA_BOOTSTRAP_SERVERS or KAFKA_BOOTSTRAP_SERVERS (use that Kafka instead of starting
the embedded broker).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import importlib.util
import json
import logging
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import FrameType
from urllib.parse import parse_qs, urlsplit

import httpx

from services.launcher import demo_data
from services.launcher.embedded import EmbeddedKafka, EmbeddedPostgres, free_port, port_is_open
from services.launcher.reaper import REAPER

HOST = "127.0.0.1"
QUOTE_KEYS_ENV = "OMNIROUTE_QUOTE_SIGNING_KEYS"
WEBHOOK_PRIVATE_ENV = "OMNIROUTE_WEBHOOK_ALLOW_PRIVATE_ADDRESSES"
READY_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 10.0
LOG_TAIL_LINES = 30


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    app: str
    """The ASGI app for uvicorn, `module:attribute`."""
    port_env: str
    default_port: int
    database: str | None
    default_workers: int = 1
    """uvicorn worker processes (`OMNIROUTE_<NAME>_WORKERS` overrides)."""

    @classmethod
    def named(cls, name: str, default_port: int, workers: int = 1) -> ServiceSpec:
        """The conventional layout: `services.<name>.app:app`, port from `OMNIROUTE_<NAME>_PORT`,
        database `omniroute_<name>`."""
        return cls(
            name=name,
            app=f"services.{name}.app:app",
            port_env=f"OMNIROUTE_{name.upper()}_PORT",
            default_port=default_port,
            database=f"omniroute_{name}",
            default_workers=workers,
        )

    @property
    def module(self) -> str:
        return self.app.partition(":")[0]

    def is_present(self) -> bool:
        """Whether the service's code exists yet (services are built one at a time)."""
        try:
            return importlib.util.find_spec(self.module) is not None
        except ModuleNotFoundError:  # the service's package itself is missing
            return False

    def port(self) -> int:
        return _port_from_env(self.port_env, self.default_port)

    def url(self) -> str:
        return f"http://{HOST}:{self.port()}"

    def workers(self) -> int:
        name = f"OMNIROUTE_{self.name.upper().replace('-', '_')}_WORKERS"
        raw = os.environ.get(name)
        if not raw:
            return self.default_workers
        if not raw.isdigit() or not 1 <= int(raw) <= 32:
            raise LaunchError(f"{name}={raw!r} is not a number of processes (1-32)")
        return int(raw)


CONSOLE = ServiceSpec(
    name="console",
    app="services.console.app:app",
    port_env="OMNIROUTE_CONSOLE_PORT",
    default_port=8004,
    database=None,  # it keeps nothing: all it shows and does goes through the gateway's /v1 API
)

# Start order: the gateway after the services it fronts; the store console (people's screens)
# after the gateway, which it calls (OMNIROUTE_GATEWAY_URL, set for every service).
SERVICES: tuple[ServiceSpec, ...] = (
    ServiceSpec.named("inventory", 8001),
    ServiceSpec.named("pricing", 8002),
    ServiceSpec.named("orders", 8003),
    ServiceSpec.named("webhooks", 8005),
    ServiceSpec.named("gateway", 8000),
    CONSOLE,
)

KAFKA_PORT_ENV = "OMNIROUTE_KAFKA_PORT"
DATA_DIR_ENV = "OMNIROUTE_DATA_DIR"
BOOTSTRAP_ADMIN_KEY_ENV = "OMNIROUTE_BOOTSTRAP_ADMIN_KEY"
EXTERNAL_KAFKA_ENVS = ("OMNIROUTE_KAFKA_BOOTSTRAP_SERVERS", "KAFKA_BOOTSTRAP_SERVERS")

# What `reset` may delete: only a directory made of these is recognisably ours.
_DATA_DIR_ENTRIES = frozenset(
    {"postgres", "logs", "admin-key", "quote-signing-keys", "demo-keys.json"}
)


class LaunchError(Exception):
    """A start-up or runtime failure with a message meant for the user (no traceback)."""


class Stop(BaseException):
    """A stop signal arrived. A BaseException, like KeyboardInterrupt, so that no `except
    Exception` on the way swallows it."""

    def __init__(self, signal_name: str) -> None:
        super().__init__(signal_name)
        self.signal_name = signal_name


class _Signals:
    """SIGINT, SIGTERM and SIGHUP raise `Stop` once; while stopping, they are only acknowledged,
    so a second Ctrl-C cannot interrupt the clean-up half way and leave processes behind."""

    def __init__(self) -> None:
        self.stopping = False

    def install(self) -> None:
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, self._handle)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.stopping:
            _say("  still stopping, please wait …")
            return
        self.stopping = True
        raise Stop(signal.Signals(signum).name)


def _say(message: str = "") -> None:
    print(message, flush=True)


def _done(message: str, started: float) -> None:
    _say(f"✓ {message}  ({time.monotonic() - started:.1f} s)")


def _port_from_env(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if not raw:
        return default
    try:
        port = int(raw)
    except ValueError:
        raise LaunchError(f"{name}={raw!r} is not a port number") from None
    if not 1 <= port <= 65535:
        raise LaunchError(f"{name}={port} is not a port number (1-65535)")
    return port


def data_dir() -> Path:
    return Path(os.environ.get(DATA_DIR_ENV) or ".omniroute").resolve()


def present_services() -> list[ServiceSpec]:
    return [spec for spec in SERVICES if spec.is_present()]


def _tail(path: Path, offset: int = 0, lines: int = LOG_TAIL_LINES) -> str:
    """The last lines of a log written since `offset` (the logs are appended across runs)."""
    try:
        with path.open("rb") as file:
            file.seek(offset)
            text = file.read().decode(errors="replace")
    except FileNotFoundError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:]) or "(empty log)"


def _print_tail(name: str, path: Path, offset: int = 0) -> None:
    _say(f"--- last {LOG_TAIL_LINES} lines of {path} ({name}) ---")
    _say(_tail(path, offset))
    _say("---")


# PostgreSQL and Kafka


def _socket_dir(database_url: str) -> str:
    return parse_qs(urlsplit(database_url).query).get("host", ["?"])[0]


def start_postgres(directory: Path) -> EmbeddedPostgres:
    started = time.monotonic()
    _say("… starting PostgreSQL")
    postgres = EmbeddedPostgres(directory / "postgres")
    try:
        postgres.start()
    except Exception as error:
        raise LaunchError(
            f"PostgreSQL did not start: {error} (its log: {directory / 'postgres' / 'log'})"
        ) from error
    version_file = directory / "postgres" / "PG_VERSION"
    name = (
        f"PostgreSQL {version_file.read_text().strip()}" if version_file.exists() else "PostgreSQL"
    )
    _done(f"{name} ready (unix socket in {_socket_dir(postgres.url())})", started)
    return postgres


def migrate(postgres: EmbeddedPostgres, services: Sequence[ServiceSpec]) -> None:
    # Imported here: Alembic and the database drivers are only needed once PostgreSQL runs.
    from services.infrastructure.migrations import create_database_if_missing, upgrade_to_head

    for spec in services:
        if spec.database is None:
            continue
        started = time.monotonic()
        try:
            created = asyncio.run(
                create_database_if_missing(postgres.url("postgres"), spec.database)
            )
            upgrade_to_head(spec.name, postgres.url(spec.database))
        except Exception as error:
            raise LaunchError(
                f"migrating {spec.name} ({spec.database}) failed: {type(error).__name__}: {error}"
            ) from error
        state = "created and migrated" if created else "migrated"
        _done(f"database {spec.database} {state}", started)


def start_kafka(port: int, log_path: Path) -> EmbeddedKafka:
    started = time.monotonic()
    _say("… starting the Kafka-protocol broker (tansu)")
    kafka = EmbeddedKafka(host=HOST, port=port, log_path=log_path)
    try:
        kafka.start()
    except RuntimeError as error:
        raise LaunchError(f"Kafka did not start: {error} (its log: {log_path})") from error
    _done(f"Kafka ready at {kafka.bootstrap_servers} (in memory; log {log_path})", started)
    return kafka


def external_kafka() -> str | None:
    """Bootstrap servers of a Kafka to use instead of starting the embedded broker (an Apache
    Kafka of your own, or the one the test harness starts)."""
    return next((os.environ[name] for name in EXTERNAL_KAFKA_ENVS if os.environ.get(name)), None)


def create_topics(bootstrap_servers: str) -> None:
    from services.contracts.topics import ALL_TOPICS
    from services.infrastructure.broker import ensure_topics

    started = time.monotonic()
    created = asyncio.run(ensure_topics(bootstrap_servers, ALL_TOPICS))
    _done(f"Kafka topics: {len(ALL_TOPICS)} ({len(created)} created)", started)


# Service processes


@dataclass
class ServiceProcess:
    spec: ServiceSpec
    process: subprocess.Popen[bytes]
    log_path: Path
    log_offset: int

    def print_log_tail(self) -> None:
        _print_tail(self.spec.name, self.log_path, self.log_offset)


# Services with Kafka consumers: another process of one joins the same consumer groups, and the
# partitions are shared between them.
CONSUMING_SERVICES = ("inventory", "orders", "webhooks")


def _replicas_of(spec: ServiceSpec, replicas: int) -> list[ServiceSpec]:
    """Processes 2..N of a service: the same app, database and consumer groups, each on a free
    port (or OMNIROUTE_<NAME>_<K>_PORT)."""
    return [
        dataclasses.replace(
            spec,
            name=f"{spec.name}-{k}",
            port_env=f"OMNIROUTE_{spec.name.upper()}_{k}_PORT",
            default_port=free_port(HOST),
        )
        for k in range(2, replicas + 1)
    ]


def _check_ports_free(services: Sequence[ServiceSpec], kafka_port: int | None) -> None:
    """Fail before starting anything, rather than after PostgreSQL is already up."""
    wanted = [("Kafka", kafka_port, KAFKA_PORT_ENV)] if kafka_port is not None else []
    wanted += [(spec.name, spec.port(), spec.port_env) for spec in services]
    seen: dict[int, str] = {}
    for name, port, env in wanted:
        if port in seen:
            raise LaunchError(f"{name} and {seen[port]} are both set to port {port}; change {env}")
        seen[port] = name
        if port_is_open(HOST, port):
            raise LaunchError(
                f"port {port} ({name}) is already in use on {HOST}: stop what listens there, "
                f"or choose another port with {env}=<port>"
            )


def _service_env(
    spec: ServiceSpec,
    services: Sequence[ServiceSpec],
    postgres: EmbeddedPostgres,
    kafka_bootstrap_servers: str,
    admin_key: str | None,
) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        OMNIROUTE_SERVICE_NAME=spec.name,
        OMNIROUTE_HOST=HOST,
        OMNIROUTE_PORT=str(spec.port()),
        OMNIROUTE_KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap_servers,
        OMNIROUTE_LOG_FORMAT="json",
        PYTHONUNBUFFERED="1",  # so a crash's last lines are in the log
    )
    if spec.database is not None:
        env["OMNIROUTE_DATABASE_URL"] = postgres.url(spec.database)
    for other in services:
        env[f"OMNIROUTE_{other.name.upper()}_URL"] = other.url()
    env[QUOTE_KEYS_ENV] = quote_signing_keys(data_dir())
    if spec.name == "gateway" and admin_key is not None:
        env[BOOTSTRAP_ADMIN_KEY_ENV] = admin_key
    # On one machine, the endpoints people try first are local ones (a receiver on
    # 127.0.0.1); a deployment leaves this off, so webhooks reach public addresses only.
    env.setdefault(WEBHOOK_PRIVATE_ENV, "true")
    return env


def start_service(
    spec: ServiceSpec, env: dict[str, str], logs: Path, running: list[ServiceProcess]
) -> ServiceProcess:
    log_path = logs / f"{spec.name}.log"
    with log_path.open("ab") as log_file:
        log_file.write(
            f"\n--- omniroute run, {datetime.now().isoformat(timespec='seconds')} ---\n".encode()
        )
        offset = log_file.tell()
        command = [
            sys.executable, "-m", "uvicorn", spec.app,
            "--host", HOST, "--port", str(spec.port()), "--no-access-log",
        ]  # fmt: skip
        if spec.workers() > 1:
            command += ["--workers", str(spec.workers())]
        process = subprocess.Popen(
            command,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C reaches only the launcher, which stops things in order
        )
    service = ServiceProcess(spec, process, log_path, offset)
    running.append(service)
    # If the launcher is killed outright (SIGKILL, a crash), its reaper stops the service.
    REAPER.watch(process.pid, grace=STOP_TIMEOUT_SECONDS)
    return service


def wait_ready(service: ServiceProcess) -> None:
    started = time.monotonic()
    deadline = started + READY_TIMEOUT_SECONDS
    url = f"{service.spec.url()}/readyz"
    last_problem = "no answer yet"
    with httpx.Client(timeout=2.0) as client:
        while time.monotonic() < deadline:
            code = service.process.poll()
            if code is not None:
                service.print_log_tail()
                raise LaunchError(f"{service.spec.name} exited with code {code} while starting")
            try:
                response = client.get(url)
            except httpx.TransportError as error:
                last_problem = f"{type(error).__name__}"
            else:
                if response.status_code == 200:
                    _done(f"{service.spec.name} ready at {service.spec.url()}", started)
                    return
                last_problem = f"HTTP {response.status_code}: {response.text[:200]}"
            time.sleep(0.25)
    service.print_log_tail()
    raise LaunchError(
        f"{service.spec.name} was not ready within {READY_TIMEOUT_SECONDS:.0f} s "
        f"(GET {url}: {last_problem}); its log: {service.log_path}"
    )


def stop_services(running: list[ServiceProcess]) -> None:
    """SIGTERM to all at once (uvicorn drains and runs the lifespan shutdown), then SIGKILL to
    whatever is still there after the grace period."""
    for service in reversed(running):
        if service.process.poll() is None:
            service.process.terminate()
    deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
    for service in reversed(running):
        with contextlib.suppress(subprocess.TimeoutExpired):
            service.process.wait(max(0.0, deadline - time.monotonic()))
        if service.process.poll() is None:
            _say(f"  {service.spec.name} did not stop in {STOP_TIMEOUT_SECONDS:.0f} s; killing it")
            service.process.kill()
            service.process.wait()
    for service in running:
        REAPER.forget(service.process.pid)
    running.clear()


# Demo data


def _check(response: httpx.Response, what: str) -> httpx.Response:
    if response.is_success:
        return response
    raise LaunchError(f"{what}: HTTP {response.status_code} {response.text[:500]}")


def seed_inventory(inventory: ServiceSpec) -> None:
    """Idempotent on every start: locations are upserts, and a stock level is only set when it does
    not exist yet, so stock that moved since the last run is left as it is."""
    started = time.monotonic()
    levels = demo_data.stock_levels()
    try:
        created = _seed_inventory(inventory.url(), levels)
    except httpx.HTTPError as error:
        raise LaunchError(f"seeding demo data failed: {type(error).__name__}: {error}") from error
    kept = len(levels) - created
    detail = f"{created} set" + (f", {kept} already there and kept" if kept else "")
    _done(
        f"demo data: {len(demo_data.LOCATIONS)} locations, {len(demo_data.PRODUCTS)} skus, "
        f"{len(levels)} stock levels ({detail})",
        started,
    )


def _seed_inventory(base_url: str, levels: Sequence[demo_data.DemoStockLevel]) -> int:
    created = 0
    with httpx.Client(base_url=base_url, timeout=10.0) as client:
        for location in demo_data.LOCATIONS:
            _check(
                client.post("/locations", json=location.body()),
                f"seeding location {location.location_id}",
            )
        for product in demo_data.PRODUCTS:
            # Upserts like the locations: the demo's names are put back on every start.
            _check(
                client.post("/products", json=product.body()),
                f"seeding the name of {product.sku}",
            )
        for level in levels:
            query = {"location_id": level.location_id, "sku": level.sku}
            existing = _check(
                client.get("/stock-levels", params=query),
                f"looking up stock level {level.sku}@{level.location_id}",
            ).json()
            if existing:
                continue
            _check(
                client.post("/stock-levels", json=level.body()),
                f"seeding stock level {level.sku}@{level.location_id}",
            )
            created += 1
        for supply in demo_data.supplies():
            # Only when missing: a restart keeps what was received or promised since.
            if client.get(f"/incoming-stock/{supply['supply_id']}").status_code == 404:
                _check(
                    client.post("/incoming-stock", json=supply),
                    f"seeding incoming stock {supply['supply_id']}",
                )
    return created


def seed_pricing(pricing: ServiceSpec) -> None:
    """Prices and promotions are only created when missing, so changes made since are kept."""
    started = time.monotonic()
    try:
        with httpx.Client(base_url=pricing.url(), timeout=10.0) as client:
            priced = {
                (p["sku"], p["currency"], p["channel"])
                for p in _check(client.get("/prices"), "listing prices").json()
            }
            new_prices = [
                body
                for body in demo_data.prices()
                if (body["sku"], body["currency"], body.get("channel")) not in priced
            ]
            for body in new_prices:
                _check(client.post("/prices", json=body), f"seeding the price of {body['sku']}")
            known = {
                p["promotion_id"]
                for p in _check(client.get("/promotions"), "listing promotions").json()
            }
            new_promotions = [p for p in demo_data.PROMOTIONS if p["promotion_id"] not in known]
            for body in new_promotions:
                _check(client.post("/promotions", json=body), f"seeding {body['promotion_id']}")
    except httpx.HTTPError as error:
        raise LaunchError(f"seeding prices failed: {type(error).__name__}: {error}") from error
    _done(
        f"demo prices: {len(demo_data.prices())} prices, {len(demo_data.PROMOTIONS)} promotions "
        f"({len(new_prices) + len(new_promotions)} created)",
        started,
    )


def quote_signing_keys(directory: Path) -> str:
    """OMNIROUTE_QUOTE_SIGNING_KEYS if set; otherwise a key generated once and kept in the data
    directory, so quotes stay valid across restarts and every service verifies the same way."""
    configured = os.environ.get(QUOTE_KEYS_ENV)
    if configured:
        return configured
    path = directory / "quote-signing-keys"
    if not path.exists():
        path.write_text(f"local-{secrets.token_hex(4)}:{secrets.token_urlsafe(48)}\n")
        path.chmod(0o600)
    return path.read_text().strip()


# Demo API keys


def admin_key_for(directory: Path) -> str:
    """OMNIROUTE_BOOTSTRAP_ADMIN_KEY if set (so scripts can drive a fresh stack); otherwise a key
    generated once and kept in the data directory, so it stays valid across restarts."""
    configured = os.environ.get(BOOTSTRAP_ADMIN_KEY_ENV)
    if configured:
        return configured
    path = directory / "admin-key"
    if path.exists():
        return path.read_text().strip()
    key = f"omr_admin_{secrets.token_urlsafe(24)}"
    path.touch(mode=0o600)
    path.write_text(key + "\n")
    return key


DEMO_KEY_ROLES: tuple[dict[str, str], ...] = (
    {"role": "shop", "name": "demo web shop", "channel": "web"},
    {"role": "store", "name": "demo store Amsterdam", "store_id": "store-ams-centraal"},
    {"role": "partner", "name": "demo partner Northwind", "partner_id": "partner-northwind"},
)


def demo_keys(gateway: ServiceSpec, admin_key: str, directory: Path) -> dict[str, str]:
    """One API key per role (role -> key), created once through the gateway's admin API and
    kept in the data directory, so a restart shows the same keys: they live on in the
    gateway's database."""
    path = directory / "demo-keys.json"
    if path.exists():
        kept: dict[str, str] = json.loads(path.read_text())
        return {**kept, "admin": admin_key}  # OMNIROUTE_BOOTSTRAP_ADMIN_KEY may have changed
    keys = {"admin": admin_key}
    headers = {"Authorization": f"Bearer {admin_key}"}
    with httpx.Client(base_url=gateway.url(), headers=headers, timeout=10.0) as client:
        for body in DEMO_KEY_ROLES:
            response = _check(client.post("/v1/admin/api-keys", json=body), "creating demo keys")
            keys[body["role"]] = response.json()["api_key"]
    path.touch(mode=0o600)
    path.write_text(json.dumps(keys, indent=2) + "\n")
    return keys


def print_banner(
    services: Sequence[ServiceSpec],
    postgres: EmbeddedPostgres,
    kafka_bootstrap_servers: str,
    directory: Path,
    keys: dict[str, str],
) -> None:
    _say()
    _say("Omniroute is running.")
    _say()
    width = max(len(spec.name) for spec in services)
    for spec in services:
        base = spec.url()
        if spec == CONSOLE:
            _say(f"  {spec.name:<{width}}  {base}   store console and command center")
            continue
        _say(f"  {spec.name:<{width}}  {base}   docs {base}/docs   {base}/openapi.json")
    _say(f"  {'kafka':<{width}}  {kafka_bootstrap_servers}   (bootstrap servers)")
    for spec in services:
        if spec.database is not None:
            _say(f"  {'postgres':<{width}}  {postgres.url(spec.database)}")
    _say(f"  {'data':<{width}}  {directory}")
    _say(f"  {'logs':<{width}}  {directory / 'logs'}   (one file per process)")
    _say()
    gateway = next((spec for spec in services if spec.name == "gateway"), None)
    if gateway is None or not keys:
        _print_console(services)
        _say("Press Ctrl-C to stop.")
        return
    _say("API keys (Authorization: Bearer <key>), kept in " + str(directory / "demo-keys.json"))
    bindings = {body["role"]: next(v for k, v in body.items() if k not in ("role", "name"))
                for body in DEMO_KEY_ROLES}  # fmt: skip
    for role, key in keys.items():
        binding = f"   ({bindings[role]})" if role in bindings else ""
        _say(f"  {role:<8} {key}{binding}")
    _say("For the README's walkthrough, paste:")
    exports = " ".join(f"{role.upper()}={key}" for role, key in keys.items())
    _say(f"  export G={gateway.url()} {exports}")
    _say()
    base = gateway.url()
    shop = f"-H 'Authorization: Bearer {keys.get('shop', '<shop key>')}'"
    _say("What to try first (the README's 'Try it' goes on to a collected order and a return):")
    _say("  # where is a white tee, size M, within 100 km of Amsterdam?")
    _say(f"  curl {shop} '{base}/v1/availability?sku=TEE-WHT-M&near=52.37,4.90&radius_km=100'")
    _say("  # three tees (3 for 2) and a cap, priced for the web shop")
    _say(
        f"  curl -X POST '{base}/v1/quotes' {shop} -H 'content-type: application/json' "
        """-d '{"currency": "EUR", "lines": """
        """[{"sku": "TEE-WHT-M", "quantity": 3}, {"sku": "CAP-NAVY", "quantity": 1}]}'"""
    )
    _say()
    _print_console(services)
    _say("Press Ctrl-C to stop.")


def _print_console(services: Sequence[ServiceSpec]) -> None:
    if CONSOLE in services:
        _say(
            f"Store console and command center: {CONSOLE.url()} — sign in with a store key "
            "or the admin key"
        )
        _say()


# Commands

Stops = list[Callable[[], None]]
"""What a command started, as the functions that stop it; `main` calls them in reverse order."""


def _stop_all(stops: Stops) -> None:
    for stop in reversed(stops):
        try:
            stop()
        except Exception as error:  # keep stopping the rest
            _say(f"  while stopping: {type(error).__name__}: {error}")
    stops.clear()


def _watch(running: list[ServiceProcess]) -> None:
    """Block until a stop signal (raised as `Stop`) or a service exits on its own."""
    while True:
        for service in running:
            code = service.process.poll()
            if code is not None:
                service.print_log_tail()
                raise LaunchError(f"{service.spec.name} exited unexpectedly with code {code}")
        time.sleep(0.5)


def command_run(stops: Stops, replicas: int = 1) -> int:
    directory = data_dir()
    services = present_services()
    if not services:
        raise LaunchError("no service is built yet (none of the SERVICES modules exists)")
    external = external_kafka()
    kafka_port = None if external else _port_from_env(KAFKA_PORT_ENV, 9092)
    extra = [
        (spec, replica)
        for spec in services
        if spec.name in CONSUMING_SERVICES
        for replica in _replicas_of(spec, replicas)
    ]
    _check_ports_free([*services, *(replica for _, replica in extra)], kafka_port)
    logs = directory / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    _say(f"Omniroute: {', '.join(spec.name for spec in services)}; data in {directory}")
    _say(f"  logs of every process: {logs}/<name>.log")
    has_gateway = any(spec.name == "gateway" for spec in services)
    admin_key = admin_key_for(directory) if has_gateway else None

    postgres = start_postgres(directory)
    stops.append(postgres.stop)
    migrate(postgres, services)
    if kafka_port is None:
        assert external is not None
        bootstrap_servers = external
        _say(f"✓ Kafka: using {bootstrap_servers} (from the environment)")
    else:
        kafka = start_kafka(kafka_port, logs / "kafka.log")
        stops.append(kafka.stop)
        bootstrap_servers = kafka.bootstrap_servers
    create_topics(bootstrap_servers)

    running: list[ServiceProcess] = []
    stops.append(lambda: stop_services(running))
    for spec in services:
        env = _service_env(spec, services, postgres, bootstrap_servers, admin_key)
        wait_ready(start_service(spec, env, logs, running))
    for spec, replica in extra:
        env = _service_env(spec, services, postgres, bootstrap_servers, admin_key)
        env["OMNIROUTE_PORT"] = str(replica.port())
        wait_ready(start_service(replica, env, logs, running))
    inventory = next((spec for spec in services if spec.name == "inventory"), None)
    if inventory is not None:
        seed_inventory(inventory)
    pricing = next((spec for spec in services if spec.name == "pricing"), None)
    if pricing is not None:
        seed_pricing(pricing)
    gateway = next((spec for spec in services if spec.name == "gateway"), None)
    keys = demo_keys(gateway, admin_key, directory) if gateway and admin_key else {}
    print_banner(services, postgres, bootstrap_servers, directory, keys)
    for _, replica in extra:
        _say(f"  replica {replica.name}  {replica.url()}   (shares its service's Kafka partitions)")
    if extra:
        _say()
    _watch(running)
    return 0  # not reached: _watch ends by raising


def command_migrate(stops: Stops) -> int:
    directory = data_dir()
    services = present_services()
    directory.mkdir(parents=True, exist_ok=True)
    postgres = start_postgres(directory)
    stops.append(postgres.stop)
    migrate(postgres, services)
    _say(f"migrated: {', '.join(spec.name for spec in services) or 'nothing (no service yet)'}")
    return 0


def _postgres_running(directory: Path) -> bool:
    pid_file = directory / "postgres" / "postmaster.pid"
    try:
        pid = int(pid_file.read_text().split()[0])
    except (FileNotFoundError, IndexError, ValueError):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by the embedded_postgres system user
        return True
    return True


def command_reset(confirmed: bool) -> int:
    directory = data_dir()
    if not directory.exists():
        _say(f"nothing to reset: {directory} does not exist")
        return 0
    if not confirmed:
        _say(f"this deletes {directory} (databases and logs); run `omniroute reset --yes` to do so")
        return 2
    unknown = sorted(
        entry.name for entry in directory.iterdir() if entry.name not in _DATA_DIR_ENTRIES
    )
    if unknown:
        raise LaunchError(
            f"{directory} holds files omniroute did not create ({', '.join(unknown[:5])}); "
            "not deleting it — check OMNIROUTE_DATA_DIR"
        )
    if _postgres_running(directory):
        raise LaunchError(
            f"PostgreSQL still runs on {directory / 'postgres'}; stop omniroute first"
        )
    shutil.rmtree(directory)
    _say(f"deleted {directory}")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="omniroute",
        description="Run Omniroute locally: PostgreSQL, Kafka, the services and demo data.",
    )
    commands = parser.add_subparsers(dest="command", metavar="{run,migrate,reset}")
    run = commands.add_parser("run", help="start everything and wait for Ctrl-C (the default)")
    run.add_argument(
        "--replicas",
        type=int,
        default=1,
        choices=range(1, 9),
        metavar="N",
        help="run N processes of each service that consumes Kafka (they share its partitions; "
        "the gateway calls the first); 1 to 8, default 1",
    )
    commands.add_parser("migrate", help="create and migrate the databases, then stop")
    reset = commands.add_parser("reset", help="delete the data directory")
    reset.add_argument("--yes", action="store_true", help="really delete it")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # The embedded PostgreSQL asks for a runtime dir and falls back to /tmp, which is fine here.
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
    logging.basicConfig(level=logging.WARNING, format="  %(levelname)s %(name)s: %(message)s")
    signals = _Signals()
    signals.install()
    stops: Stops = []
    code = 1
    try:
        if args.command == "migrate":
            code = command_migrate(stops)
        elif args.command == "reset":
            code = command_reset(args.yes)
        else:
            code = command_run(stops, replicas=getattr(args, "replicas", 1))
    except Stop as stop:
        _say(f"\n{stop.signal_name}: stopping …")
        code = 0
    except LaunchError as error:
        signals.stopping = True
        _say(f"✗ {error}")
        if stops:
            _say("stopping …")
        code = 1
    finally:
        # Also after an unexpected error: never leave PostgreSQL, Kafka or a service behind.
        signals.stopping = True
        if stops:
            _stop_all(stops)
            _say("stopped")
        # Python restores the default handlers while it exits, so a late Ctrl-C would end the
        # process with "interrupted" although everything is already stopped.
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, signal.SIG_IGN)
    return code


if __name__ == "__main__":
    sys.exit(main())
