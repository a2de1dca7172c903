"""Inventory as the authority on stock, asked over its internal HTTP API.

Routing reads orders' own projection of availability: it is local and fast, but it follows
inventory's events and so can be behind (milliseconds when idle, seconds under load or while the
projection's consumer rebalances). Only when the projection cannot place an order does routing ask
inventory for the current levels of that order's skus (handlers/planning.py), so the common path
pays nothing and an order is never rejected because the projection was behind (DESIGN.md §7).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import aiohttp
from pydantic import TypeAdapter

from services.contracts.inventory import Location, StockLevel, Supply
from services.infrastructure.errors import ServiceUnavailable
from services.infrastructure.telemetry import aiohttp_trace_configs

_LEVELS = TypeAdapter(list[StockLevel])
_SUPPLIES = TypeAdapter(list[Supply])


class InventoryClient:
    """Reads current stock levels and locations from inventory; any failure to get an answer is
    `ServiceUnavailable`, which a request answers as 503 and a consumer retries."""

    def __init__(self, base_url: str, *, timeout: float) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        # Made on first use, inside the running loop; most processes never need it.
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                connector=aiohttp.TCPConnector(limit=20, keepalive_timeout=4),
                trace_configs=aiohttp_trace_configs(),
            )
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def levels(self, skus: Sequence[str]) -> list[StockLevel]:
        """Every location's current level of `skus`."""
        body = await self._get("/stock-levels", [("sku", sku) for sku in skus])
        return _LEVELS.validate_python(body)

    async def incoming(self, skus: Sequence[str]) -> list[Supply]:
        """Stock on its way for `skus`, with what of it can still be promised."""
        body = await self._get("/incoming-stock", [("sku", sku) for sku in skus])
        return _SUPPLIES.validate_python(body)

    async def location(self, location_id: str) -> Location | None:
        """One location as inventory has it now, or None when it does not exist."""
        body = await self._get(f"/locations/{location_id}", [], missing_ok=True)
        return None if body is None else Location.model_validate(body)

    async def _get(
        self, path: str, params: list[tuple[str, str]], *, missing_ok: bool = False
    ) -> Any:
        url = self.base_url + path
        try:
            async with self._client().get(url, params=params) as response:
                if missing_ok and response.status == 404:
                    return None
                if 400 <= response.status < 500:
                    # Asking again would be refused again: a failure of its own (retried a few
                    # times, then parked), not inventory being away, which blocks the consumer.
                    raise RuntimeError(f"inventory refused GET {path}: HTTP {response.status}")
                if response.status != 200:
                    raise ServiceUnavailable(
                        f"inventory answered HTTP {response.status} to GET {path}",
                        unavailable=["inventory"],
                        retry_after=1,
                    )
                return await response.json()
        except (aiohttp.ClientError, TimeoutError, ValueError) as error:
            raise ServiceUnavailable(
                f"inventory could not be asked for current stock ({type(error).__name__} on "
                f"GET {path}); try again shortly",
                unavailable=["inventory"],
                retry_after=1,
            ) from error
