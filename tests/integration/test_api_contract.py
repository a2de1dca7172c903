"""Every API keeps the promises of its OpenAPI document: Schemathesis runs all its phases
(examples, coverage, fuzzing, stateful) with every check against the gateway, as an admin, and
against inventory, pricing, orders and webhooks, each over real HTTP, and finds nothing.

The `st` command line runs in a process of its own (the apps answer in this test session's
event loop, which a blocking call would stall). The rules a JSON Schema cannot state (a new
Idempotency-Key per request, one line per sku, a signed quote token, ...) are taught to it by
tests/integration/api_contract_hooks.py. A fixed seed keeps a run repeatable;
API_CONTRACT_SEED and API_CONTRACT_MAX_EXAMPLES explore further (100 examples: ~3 minutes).
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text

from services.contracts.gateway import RateLimit
from services.gateway.app import create_app as create_gateway
from services.gateway.settings import GatewaySettings
from tests.integration.api_contract_hooks import (
    OWN_KEY_VARIABLE,
    PRICE,
    PRICED_SKUS,
    SIGNING_KEYS_VARIABLE,
    UNREACHABLE,
)
from tests.integration.conftest import GATEWAY_ADMIN_KEY, SIGNING_KEYS
from tests.support.http import listening

pytestmark = pytest.mark.integration

REPOSITORY = Path(__file__).parents[2]
SEED = os.environ.get("API_CONTRACT_SEED", "20261121")
MAX_EXAMPLES = os.environ.get("API_CONTRACT_MAX_EXAMPLES", "50")
RUN_TIMEOUT_SECONDS = 170  # within pytest's 180 s per test
GENEROUS = {"requests_per_second": 10_000, "burst": 10_000}


async def schemathesis(
    url: str, workdir: Path, *options: str, env: Mapping[str, str] | None = None
) -> None:
    """`st run` against `url`; fails the test with Schemathesis's report unless it is clean."""
    command = [
        sys.executable, "-m", "schemathesis.cli", "run", f"{url}/openapi.json",
        "--phases", "examples,coverage,fuzzing,stateful",
        "--checks", "all",
        "--max-examples", MAX_EXAMPLES,
        "--seed", SEED,
        "--generation-database", "none",
        "--no-color",
        *options,
    ]  # fmt: skip
    process = await asyncio.create_subprocess_exec(
        *command,
        cwd=workdir,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={
            **os.environ,
            "COLUMNS": "120",
            "PYTHONPATH": str(REPOSITORY),
            "SCHEMATHESIS_HOOKS": "tests.integration.api_contract_hooks",
            SIGNING_KEYS_VARIABLE: SIGNING_KEYS,
            **(env or {}),
        },
    )
    try:
        output, _ = await asyncio.wait_for(process.communicate(), RUN_TIMEOUT_SECONDS)
    except TimeoutError:
        process.kill()
        output, _ = await process.communicate()
        pytest.fail(f"st run took over {RUN_TIMEOUT_SECONDS}s:\n{output.decode(errors='replace')}")
    report = output.decode(errors="replace")
    print(report)  # for `pytest -rP`: what was run, and how much
    assert process.returncode == 0, report


@pytest.fixture(autouse=True)
async def _forget_generated_webhooks(webhooks_app: FastAPI) -> AsyncIterator[None]:
    """The webhooks Schemathesis creates (at the hooks' unreachable endpoint) would otherwise be
    retried, with every event they hear of, for the rest of the test session."""
    yield
    async with webhooks_app.state.unit_of_work() as uow:
        await uow.connection.execute(
            text("DELETE FROM webhooks WHERE url LIKE :endpoint"), {"endpoint": f"%{UNREACHABLE}%"}
        )
        await uow.commit()


@dataclass(frozen=True)
class Gateway:
    url: str
    key_id: str
    api_key: str


@pytest.fixture(scope="module")
async def gateway(
    create_service_database: Callable[[str], str],
    inventory_app: FastAPI,
    pricing_app: FastAPI,
    orders_app: FastAPI,
    webhooks_app: FastAPI,
) -> AsyncIterator[Gateway]:
    """A gateway of this module's own (its own database) in front of the session's services,
    and an admin key for Schemathesis. The session's gateway (`gateway_app`) would not do:
    Schemathesis revokes the API keys it sees listed, and it sends hundreds of requests without
    a key from one address on purpose, which the per-address limit would answer with 429
    instead of 401 (that limit has its own tests in tests/integration/gateway)."""
    async with (
        listening(inventory_app) as inventory_url,
        listening(pricing_app) as pricing_url,
        listening(orders_app) as orders_url,
        listening(webhooks_app) as webhooks_url,
    ):
        app = create_gateway(
            GatewaySettings(
                database_url=create_service_database("gateway"),
                inventory_url=inventory_url,
                pricing_url=pricing_url,
                orders_url=orders_url,
                webhooks_url=webhooks_url,
                bootstrap_admin_key=GATEWAY_ADMIN_KEY,
                failed_authentication_limit=RateLimit.model_validate(GENEROUS),
                log_format="console",
            )
        )
        async with (
            app.router.lifespan_context(app),
            listening(app) as url,
            httpx.AsyncClient(base_url=url) as client,
        ):
            created = await client.post(
                "/v1/admin/api-keys",
                json={"role": "admin", "name": "schemathesis", "rate_limit": GENEROUS},
                headers={"Authorization": f"Bearer {GATEWAY_ADMIN_KEY}"},
            )
            assert created.status_code == 201, created.text
            key = created.json()
            yield Gateway(url, key["key_id"], key["api_key"])


async def test_the_gateway_keeps_its_contract(gateway: Gateway, tmp_path: Path) -> None:
    await schemathesis(
        gateway.url,
        tmp_path,
        "-H",
        f"Authorization: Bearer {gateway.api_key}",
        env={OWN_KEY_VARIABLE: gateway.key_id},
    )


async def test_inventory_keeps_its_contract(inventory_app: FastAPI, tmp_path: Path) -> None:
    async with listening(inventory_app) as url:
        await schemathesis(url, tmp_path)


async def test_pricing_keeps_its_contract(
    pricing_app: FastAPI, pricing: httpx.AsyncClient, tmp_path: Path
) -> None:
    for sku in PRICED_SKUS:  # what the hooks put in generated carts
        price = await pricing.post("/prices", json={"sku": sku, "currency": "EUR", "amount": PRICE})
        assert price.status_code == 200, price.text
    async with listening(pricing_app) as url:
        await schemathesis(url, tmp_path)


async def test_orders_keeps_its_contract(orders_app: FastAPI, tmp_path: Path) -> None:
    async with listening(orders_app) as url:
        await schemathesis(url, tmp_path)


async def test_webhooks_keeps_its_contract(webhooks_app: FastAPI, tmp_path: Path) -> None:
    async with listening(webhooks_app) as url:
        await schemathesis(url, tmp_path)
