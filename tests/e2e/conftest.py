"""The whole system as a user runs it: `omniroute run` (what `make run` calls) in a private data
directory on free ports, driven through the gateway only, with the keys the launcher printed.

Each test builds its own little retail network (locations, skus, prices, keys) through the admin
API, with ids of its own, so tests never see each other's stock.

Screens are tested in a real browser with the fixtures of tests/support/browser.py (`browser`,
`page`, `new_page`, `viewport`), imported here: the store console is at `stack.console_url`.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.launcher.cli import SERVICES
from services.launcher.embedded import free_port
from services.launcher.reaper import REAPER
from tests.support.browser import browser, new_page, page, viewport
from tests.support.kafka import eventually

__all__ = ["browser", "new_page", "page", "viewport"]  # fixtures for the tests of this package

START_TIMEOUT_SECONDS = 240.0
STOP_TIMEOUT_SECONDS = 60.0
PROBLEM_JSON = "application/problem+json"


@dataclass
class Stack:
    gateway_url: str
    console_url: str
    """The store console and command center."""
    admin_key: str
    printed_keys: dict[str, str]
    output: list[str]
    data_dir: Path


def _launch_environment(data_dir: Path, ports: dict[str, int], admin_key: str) -> dict[str, str]:
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in ("KAFKA_BOOTSTRAP_SERVERS", "OMNIROUTE_KAFKA_BOOTSTRAP_SERVERS")
    }
    env.update(
        OMNIROUTE_DATA_DIR=str(data_dir),
        OMNIROUTE_BOOTSTRAP_ADMIN_KEY=admin_key,
        OMNIROUTE_KAFKA_PORT=str(ports["kafka"]),
        # Short group timeouts (the local broker ignores LeaveGroup) and a quick expiry sweep,
        # so a click & reserve hold lapses within a test's patience.
        OMNIROUTE_KAFKA_SESSION_TIMEOUT_MS="6000",
        OMNIROUTE_KAFKA_HEARTBEAT_INTERVAL_MS="500",
        OMNIROUTE_RESERVATION_SWEEP_INTERVAL_SECONDS="0.5",
        PYTHONUNBUFFERED="1",
    )
    for spec in SERVICES:
        env[spec.port_env] = str(ports[spec.name])
    if os.environ.get("OMNIROUTE_TEST_KAFKA"):  # e.g. Apache Kafka, from `make test-kafka`
        env["OMNIROUTE_KAFKA_BOOTSTRAP_SERVERS"] = os.environ["OMNIROUTE_TEST_KAFKA"]
    return env


def _printed_keys(lines: list[str]) -> dict[str, str]:
    keys = {}
    for line in lines:
        found = re.match(r"^\s+(admin|shop|store|partner)\s+(\S+)", line)
        if found:
            keys[found.group(1)] = found.group(2)
    return keys


@pytest.fixture(scope="package")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    # Not under pytest's basetemp, which each pytest session starting makes private again: as
    # root, PostgreSQL runs as another user, which must reach its data directory throughout.
    data_dir = Path(tempfile.mkdtemp(prefix="omniroute-e2e-"))
    REAPER.delete_after(data_dir)
    ports = {name: free_port() for name in (*(spec.name for spec in SERVICES), "kafka")}
    admin_key = f"omr_e2e_{secrets.token_urlsafe(24)}"
    process = subprocess.Popen(
        [sys.executable, "-m", "services.launcher.cli", "run"],
        env=_launch_environment(data_dir, ports, admin_key),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    # Should pytest die without its teardown, SIGTERM the launcher, which stops what it started.
    REAPER.watch(process.pid, grace=STOP_TIMEOUT_SECONDS)
    output: list[str] = []
    running = threading.Event()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            output.append(line.rstrip("\n"))
            if line.startswith("Press Ctrl-C to stop."):
                running.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    try:
        while not running.wait(0.5):
            if process.poll() is not None or time.monotonic() > deadline:
                _stop(process, reader)
                logs = "\n".join(
                    f"--- {path.name}\n" + "\n".join(path.read_text().splitlines()[-20:])
                    for path in sorted((data_dir / "logs").glob("*.log"))
                )
                pytest.fail("omniroute run did not start:\n" + "\n".join(output) + "\n" + logs)
        yield Stack(
            gateway_url=f"http://127.0.0.1:{ports['gateway']}",
            console_url=f"http://127.0.0.1:{ports['console']}",
            admin_key=admin_key,
            printed_keys=_printed_keys(output),
            output=output,
            data_dir=data_dir,
        )
    finally:
        _stop(process, reader)
        # Keep the logs with pytest's temporary files; the databases go.
        with contextlib.suppress(OSError):
            shutil.copytree(
                data_dir / "logs", tmp_path_factory.mktemp("omniroute-logs"), dirs_exist_ok=True
            )
        shutil.rmtree(data_dir, ignore_errors=True)
        REAPER.keep(data_dir)


def _stop(process: subprocess.Popen[str], reader: threading.Thread) -> None:
    """What Ctrl-C does: a clean, ordered stop of everything the launcher started. SIGKILL if it
    hangs: its own reaper then stops its processes."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    REAPER.forget(process.pid)
    reader.join(timeout=5)
    if process.stdout is not None:
        process.stdout.close()


def client(stack: Stack, key: str | None) -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.AsyncClient(base_url=stack.gateway_url, headers=headers, timeout=30.0)


@pytest.fixture
async def anonymous(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with client(stack, None) as anonymous:
        yield anonymous


@dataclass
class Retail:
    """A retail network of a test's own, set up and driven through the gateway."""

    stack: Stack
    admin: httpx.AsyncClient
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    clients: list[httpx.AsyncClient] = field(default_factory=list)

    def id(self, name: str) -> str:
        return f"{name}-{self.tag}"

    def sku(self, name: str) -> str:
        return f"{name}-{self.tag}".upper()

    async def aclose(self) -> None:
        for opened in self.clients:
            await opened.aclose()

    # Set-up, as an admin

    async def location(
        self,
        name: str,
        type: str,
        at: tuple[float, float],
        *,
        capabilities: tuple[str, ...] = ("ship", "pickup", "returns"),
        priority: int = 50,
        partner_id: str | None = None,
    ) -> str:
        body: dict[str, Any] = {
            "location_id": self.id(name),
            "name": f"{name} ({self.tag})",
            "type": type,
            "lat": at[0],
            "lon": at[1],
            "capabilities": list(capabilities),
            "priority": priority,
            "ship_capacity": 100,
        }
        if partner_id is not None:
            body["partner_id"] = partner_id
        ok(await self.admin.post("/v1/admin/locations", json=body))
        return str(body["location_id"])

    async def stock(self, location_id: str, sku: str, on_hand: int) -> None:
        body = {"location_id": location_id, "sku": sku, "on_hand": on_hand}
        ok(await self.admin.post("/v1/admin/stock", json=body))

    async def price(self, sku: str, amount: int) -> None:
        ok(await self.admin.post("/v1/admin/prices", json={"sku": sku, "currency": "EUR", "amount": amount}))  # fmt: skip

    async def key(self, role: str, **binding: Any) -> httpx.AsyncClient:
        """A client holding a new API key of this role and binding."""
        response = await self.admin.post(
            "/v1/admin/api-keys", json={"role": role, "name": f"{role} {self.tag}", **binding}
        )
        assert response.status_code == 201, response.text
        opened = client(self.stack, response.json()["api_key"])
        self.clients.append(opened)
        return opened

    async def routing_sees(self, sku: str, location_id: str, available: int) -> None:
        """Wait until orders' view (it follows inventory's events) shows this availability."""

        async def check() -> bool:
            response = await self.admin.get("/v1/admin/routing/sites", params={"sku": sku})
            sites = {site["location_id"]: site for site in ok(response)}
            site = sites.get(location_id)
            return site is not None and site["available"][sku] == available

        await eventually(check, timeout=30)

    # Shopping

    async def quote(self, shop: httpx.AsyncClient, lines: dict[str, int]) -> dict[str, Any]:
        response = await shop.post(
            "/v1/quotes",
            json={
                "currency": "EUR",
                "lines": [{"sku": s, "quantity": q} for s, q in lines.items()],
            },
        )
        assert response.status_code == 201, response.text
        return response.json()  # type: ignore[no-any-return]

    @staticmethod
    def order_body(quote: dict[str, Any], fulfillment: dict[str, Any]) -> dict[str, Any]:
        return {
            "quote_token": quote["quote_token"],
            "customer": {"id": "cust-e2e", "email": "ada@example.com"},
            "fulfillment": fulfillment,
            "lines": [
                {"sku": line["sku"], "quantity": line["quantity"]} for line in quote["lines"]
            ],
        }

    async def place(
        self, shop: httpx.AsyncClient, lines: dict[str, int], fulfillment: dict[str, Any]
    ) -> str:
        body = self.order_body(await self.quote(shop, lines), fulfillment)
        response = await shop.post("/v1/orders", json=body)
        assert response.status_code == 202, response.text
        assert response.json()["status"] == "pending"
        return response.json()["order_id"]  # type: ignore[no-any-return]

    async def until(
        self, reader: httpx.AsyncClient, order_id: str, *statuses: str, timeout: float = 30
    ) -> dict[str, Any]:
        """The order once it reaches one of `statuses`."""

        seen: dict[str, Any] = {}

        async def check() -> dict[str, Any] | None:
            nonlocal seen
            seen = ok(await reader.get(f"/v1/orders/{order_id}"))
            return seen if seen["status"] in statuses else None

        try:
            return await eventually(check, timeout=timeout, interval=0.2)  # type: ignore[no-any-return]
        except AssertionError:
            raise AssertionError(
                f"order {order_id} is {seen.get('status')} ({seen.get('status_reason')}), "
                f"not {statuses}, after {timeout} s; its fulfillments: "
                f"{[(f['location_id'], f['status'], f['status_reason']) for f in seen.get('fulfillments', [])]}"
            ) from None

    async def available(self, sku: str, location_id: str) -> dict[str, Any]:
        """The stock of `sku` at `location_id`, as availability reports it."""
        response = await self.admin.get("/v1/availability", params={"sku": sku})
        (item,) = ok(response)["items"]
        found = {entry["location_id"]: entry for entry in item["locations"]}
        return found.get(location_id, {"available": 0, "on_hand": 0, "reserved": 0})


def ok(response: httpx.Response) -> Any:
    assert response.status_code < 300, f"{response.status_code}: {response.text}"
    return response.json()


def is_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    """The problem+json body of an error response, after checking its status and shape."""
    assert response.status_code == status, f"{response.status_code}: {response.text}"
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    problem: dict[str, Any] = response.json()
    assert problem["status"] == status
    assert problem["title"]
    assert problem["detail"]
    assert problem["type"].startswith("https://")
    return problem


@pytest.fixture
async def retail(stack: Stack) -> AsyncIterator[Retail]:
    async with client(stack, stack.admin_key) as admin:
        world = Retail(stack, admin)
        try:
            yield world
        finally:
            await world.aclose()


# Somewhere no demo location is (they are in the Netherlands): Lisbon and around.
LISBON = (38.72, -9.14)


def near(base: tuple[float, float], north_km: float = 0.0, east_km: float = 0.0) -> tuple[float, float]:  # fmt: skip
    return (base[0] + north_km / 111.0, base[1] + east_km / 87.0)


def address(at: tuple[float, float]) -> dict[str, Any]:
    return {
        "line1": "Rua Augusta 1",
        "postal_code": "1100-048",
        "city": "Lisboa",
        "country": "PT",
        "lat": at[0],
        "lon": at[1],
    }
