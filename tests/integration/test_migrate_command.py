"""`python -m services.infrastructure.migrations`, the deployment's migration step, run as the
compose `migrate` service and the Kubernetes Job run it: a fresh process configured by
environment variables only."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid

import asyncpg
import pytest
from alembic.script import ScriptDirectory

from services.infrastructure.migrations import alembic_config
from tests.conftest import database_url, in_worker_thread

pytestmark = pytest.mark.integration


def run_migrate(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if "DATABASE_URL" not in k}
    return subprocess.run(
        [sys.executable, "-m", "services.infrastructure.migrations", *args],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def revision_of(url: str) -> str | None:
    async def query() -> str | None:
        dsn = url.replace("postgresql+asyncpg://", "postgresql://")
        conn = await asyncpg.connect(dsn)
        try:
            revision: str | None = await conn.fetchval("SELECT version_num FROM alembic_version")
            return revision
        finally:
            await conn.close()

    return in_worker_thread(asyncio.run, query())


def head_of(service: str) -> str | None:
    return ScriptDirectory.from_config(
        alembic_config(service, "postgresql://x/y")
    ).get_current_head()


def test_creates_a_missing_database_and_upgrades_it_to_head(postgres_server_url: str) -> None:
    url = database_url(postgres_server_url, f"t_migrate_{uuid.uuid4().hex[:8]}")

    first = run_migrate("inventory", env={"DATABASE_URL": url})
    assert first.returncode == 0, first.stdout + first.stderr
    assert "created database" in first.stdout
    assert revision_of(url) == head_of("inventory")

    # Running it again (every deployment does) changes nothing and still succeeds.
    again = run_migrate("inventory", env={"DATABASE_URL": url})
    assert again.returncode == 0, again.stdout + again.stderr
    assert "created database" not in again.stdout
    assert revision_of(url) == head_of("inventory")


def test_several_services_take_their_own_urls(postgres_server_url: str) -> None:
    run = uuid.uuid4().hex[:8]
    urls = {
        service: database_url(postgres_server_url, f"t_migrate_{service}_{run}")
        for service in ("pricing", "orders")
    }
    env = {f"OMNIROUTE_{service.upper()}_DATABASE_URL": url for service, url in urls.items()}

    result = run_migrate("pricing", "orders", env=env)

    assert result.returncode == 0, result.stdout + result.stderr
    for service, url in urls.items():
        assert revision_of(url) == head_of(service)


def test_a_missing_url_is_a_usage_error_naming_the_variable() -> None:
    result = run_migrate("pricing", "orders", env={"DATABASE_URL": "postgresql://x/y"})

    assert result.returncode == 2
    assert "OMNIROUTE_PRICING_DATABASE_URL" in result.stderr
