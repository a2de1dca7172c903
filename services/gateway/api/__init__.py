"""The `/v1` REST contract (DESIGN.md §4): each route authenticates, authorises, and hands the
validated request to the service that owns it."""

from __future__ import annotations

from fastapi import APIRouter

from services.gateway.api import (
    admin,
    locations,
    operations,
    partners,
    shopping,
    stores,
    webhooks,
)
from services.gateway.api.common import RESPONSES

ROUTERS = (
    shopping.router,
    stores.router,
    locations.router,
    partners.router,
    webhooks.router,
    admin.router,
    operations.router,  # the command center (DESIGN.md §8.3)
)

router = APIRouter(prefix="/v1", responses=RESPONSES)
for part in ROUTERS:
    router.include_router(part)
