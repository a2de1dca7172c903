"""The migration history builds exactly the schema the code declares."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, MetaData

from services.gateway.db import METADATA as GATEWAY
from services.infrastructure.database import create_engine
from services.inventory.db import METADATA as INVENTORY
from services.orders.db import METADATA as ORDERS
from services.pricing.db import METADATA as PRICING

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    ("service", "metadata"),
    [("inventory", INVENTORY), ("pricing", PRICING), ("orders", ORDERS), ("gateway", GATEWAY)],
)
async def test_upgrading_an_empty_database_matches_the_models(
    create_service_database: Callable[[str], str], service: str, metadata: MetaData
) -> None:
    engine = create_engine(create_service_database(service))

    def differences(connection: Connection) -> list[object]:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, metadata))

    async with engine.connect() as connection:
        found = await connection.run_sync(lambda c: set(c.dialect.get_table_names(c)))
        diff = await connection.run_sync(differences)
    await engine.dispose()
    assert found >= set(metadata.tables)
    assert diff == []
