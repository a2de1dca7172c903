"""The catalog: product names by sku, and finding products by what someone typed."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

_UPSERT = text(
    "INSERT INTO products AS p (sku, name) VALUES (:sku, :name)"
    " ON CONFLICT (sku) DO UPDATE SET name = excluded.name, updated_at = now()"
    " RETURNING p.sku, p.name, p.updated_at"
)

# Both patterns are bound values that take the typed text literally (domain.SearchPatterns).
# Neither can use an index, so a search that finds little reads the whole catalog: measured,
# 12 ms over 20,000 products when nothing matches (0.2 ms when the first page fills at once).
# Fine for a person typing at a counter; a trigram index (pg_trgm) is the step beyond that.
_SEARCH = text(
    "SELECT sku, name, updated_at FROM products"
    " WHERE sku ILIKE :sku_prefix ESCAPE '\\' OR name ~* :word_start"
    " ORDER BY sku LIMIT :limit"
)


async def upsert_product(conn: AsyncConnection, sku: str, name: str) -> Any:
    return (await conn.execute(_UPSERT, {"sku": sku, "name": name})).one()


async def search_products(
    conn: AsyncConnection, sku_prefix: str, word_start: str, limit: int
) -> Sequence[Any]:
    params = {"sku_prefix": sku_prefix, "word_start": word_start, "limit": limit}
    return (await conn.execute(_SEARCH, params)).all()
