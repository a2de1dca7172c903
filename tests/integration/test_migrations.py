"""The migration history builds exactly the schema the code declares."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection
from sqlmodel import SQLModel

from services.infrastructure.database import create_engine
from services.inventory.db import TABLES as INVENTORY_TABLES
from services.pricing.db import TABLES as PRICING_TABLES

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    ("service", "tables"), [("inventory", INVENTORY_TABLES), ("pricing", PRICING_TABLES)]
)
async def test_upgrading_an_empty_database_matches_the_models(
    create_service_database: Callable[[str], str], service: str, tables: frozenset[str]
) -> None:
    engine = create_engine(create_service_database(service))

    def differences(connection: Connection) -> list[object]:
        context = MigrationContext.configure(
            connection,
            opts={
                "compare_type": True,
                "include_object": lambda obj, name, type_, reflected, compare_to: (
                    name in tables
                    if type_ == "table"
                    else getattr(obj, "table", obj).name in tables
                ),
            },
        )
        return list(compare_metadata(context, SQLModel.metadata))

    async with engine.connect() as connection:
        found = await connection.run_sync(lambda c: set(c.dialect.get_table_names(c)))
        diff = await connection.run_sync(differences)
    await engine.dispose()
    assert found >= tables
    assert diff == []
