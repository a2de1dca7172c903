"""Alembic, one migration history per service (`services/<service>/migrations`).

    python -m services.infrastructure.migrations inventory pricing orders gateway

creates each database if missing and upgrades it to head (see `main`)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import asyncpg
from alembic import command, context
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import MetaData, pool
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import create_async_engine

from services.infrastructure.database import async_database_url

SERVICES_DIR = Path(__file__).resolve().parent.parent


def alembic_config(service: str, database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(SERVICES_DIR / service / "migrations"))
    # Alembic's ini interpolation treats % specially.
    config.set_main_option("sqlalchemy.url", async_database_url(database_url).replace("%", "%%"))
    return config


def upgrade_to_head(service: str, database_url: str) -> None:
    """Bring the service's database to the newest schema (safe to run repeatedly)."""
    command.upgrade(alembic_config(service, database_url), "head")


def run_migrations(metadata: MetaData) -> None:
    """The body of every service's `env.py`: online and async."""

    def do_run(connection: Connection) -> None:
        context.configure(connection=connection, target_metadata=metadata, compare_type=True)
        with context.begin_transaction():
            context.run_migrations()

    async def run_async() -> None:
        url = context.config.get_main_option("sqlalchemy.url")
        assert url is not None
        engine = create_async_engine(url, poolclass=pool.NullPool)
        async with engine.connect() as connection:
            await connection.run_sync(do_run)
        await engine.dispose()

    asyncio.run(run_async())


async def create_database_if_missing(server_url: str, name: str) -> bool:
    """Create database `name` on the server `server_url` points at; True if it was created."""
    dsn = async_database_url(server_url).replace("postgresql+asyncpg://", "postgresql://")
    conn = await asyncpg.connect(dsn)
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if exists:
            return False
        quoted = await conn.fetchval("SELECT quote_ident($1)", name)
        try:
            await conn.execute(f"CREATE DATABASE {quoted}")
        except asyncpg.DuplicateDatabaseError:
            return False  # another process created it between our check and our create
        return True
    finally:
        await conn.close()


def _server_url(database_url: str) -> tuple[str, str]:
    """The database named in `database_url`, and the URL of the server's `postgres` maintenance
    database, where that database can be created."""
    url = make_url(async_database_url(database_url))
    if not url.database:
        raise ValueError("the database URL names no database")
    server = url.set(database="postgres").render_as_string(hide_password=False)
    return url.database, server


def migrate_service(service: str, database_url: str) -> None:
    """Create the service's database if it is missing, then upgrade it to head."""
    config = alembic_config(service, database_url)
    head = ScriptDirectory.from_config(config).get_current_head()
    name, server = _server_url(database_url)
    print(f"… {service}: database {name}", flush=True)
    try:
        if asyncio.run(create_database_if_missing(server, name)):
            print(f"  created database {name}", flush=True)
    except (asyncpg.InsufficientPrivilegeError, asyncpg.InvalidCatalogNameError) as error:
        # Managed PostgreSQL may not let the role into `postgres`; then the database must
        # exist already, and the upgrade below says so if it does not.
        print(f"  cannot check for database {name} ({error}); assuming it exists", flush=True)
    command.upgrade(config, "head")
    print(f"✓ {service}: database {name} at revision {head or 'base'} (head)", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m services.infrastructure.migrations <service>...`: the migration step of a
    deployment (compose's `migrate` service, the Kubernetes Job), run before new images roll out.

    Each service's URL comes from `OMNIROUTE_<SERVICE>_DATABASE_URL`; when a single service is
    named, `OMNIROUTE_DATABASE_URL` or `DATABASE_URL` also do.
    """
    parser = argparse.ArgumentParser(
        prog="python -m services.infrastructure.migrations",
        description="Create each service's database if missing and upgrade it to head.",
    )
    parser.add_argument("services", nargs="+", metavar="service", help="e.g. inventory orders")
    services = parser.parse_args(argv).services
    urls: dict[str, str] = {}
    for service in services:
        if not (SERVICES_DIR / service / "migrations").is_dir():
            parser.error(f"{service!r} has no migrations (services/{service}/migrations)")
        names = [f"OMNIROUTE_{service.upper()}_DATABASE_URL"]
        if len(services) == 1:
            names += ["OMNIROUTE_DATABASE_URL", "DATABASE_URL"]
        url = next((os.environ[name] for name in names if os.environ.get(name)), None)
        if url is None:
            parser.error(f"set {' or '.join(names)} for {service}")
        urls[service] = url
    # Alembic logs each revision it applies ("Running upgrade 0001 -> 0002"): that is progress.
    progress = logging.StreamHandler(sys.stdout)
    progress.setFormatter(logging.Formatter("  %(message)s"))
    progress.addFilter(lambda record: record.getMessage().startswith("Running "))
    alembic_log = logging.getLogger("alembic.runtime.migration")
    alembic_log.setLevel(logging.INFO)
    alembic_log.addHandler(progress)
    for service, url in urls.items():
        try:
            migrate_service(service, url)
        except Exception as error:
            print(f"✗ {service}: {type(error).__name__}: {error}", file=sys.stderr, flush=True)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
