"""The catalog: naming products."""

from __future__ import annotations

from services.contracts.inventory import Product, ProductIn
from services.infrastructure.database import UnitOfWork
from services.inventory import db


async def upsert_product(body: ProductIn, uow: UnitOfWork) -> Product:
    """Name a product, or rename it."""
    row = await db.upsert_product(uow.connection, body.sku, body.name)
    await uow.commit()
    return Product(sku=row.sku, name=row.name, updated_at=row.updated_at)
