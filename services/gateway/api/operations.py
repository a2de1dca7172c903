"""The command center's figures (DESIGN.md §8.3), for admin keys: the console shows them, and
integrators may call them too. Each service answers for its own data; the gateway puts the
answers together, and a service that does not answer is named instead of failing the whole."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from services.contracts.operations import OperationsExceptions, OperationsSummary, StoresOperations
from services.gateway import examples, handlers
from services.gateway.api.common import ADMIN, Gateway, role
from services.gateway.domain import Principal

router = APIRouter(prefix="/admin/operations", tags=["operations"])
Operator = Annotated[Principal, role(ADMIN, to="watch operations")]
Minutes = Annotated[
    int, Query(ge=5, le=1440, description="The window: the last N minutes (5 to 1440).")
]


@router.get(
    "/summary",
    response_model=OperationsSummary,
    responses={200: examples.response(examples.OPERATIONS_SUMMARY)},
)
async def operations_summary(
    principal: Operator, gateway: Gateway, minutes: Minutes = 60
) -> OperationsSummary:
    """Orders per minute by channel and status, and quote->order conversion per channel."""
    return await handlers.operations_summary(gateway, minutes)


@router.get(
    "/exceptions",
    response_model=OperationsExceptions,
    responses={200: examples.response(examples.OPERATIONS_EXCEPTIONS)},
)
async def operations_exceptions(
    principal: Operator,
    gateway: Gateway,
    pending_seconds: Annotated[
        int,
        Query(ge=1, le=86_400, description="An order pending longer than this is listed."),
    ] = 30,
) -> OperationsExceptions:
    """What needs attention now, most urgent first: at most 200 items."""
    return await handlers.operations_exceptions(gateway, pending_seconds)


@router.get(
    "/stores",
    response_model=StoresOperations,
    responses={200: examples.response(examples.STORES_OPERATIONS)},
)
async def operations_stores(
    principal: Operator, gateway: Gateway, minutes: Minutes = 60
) -> StoresOperations:
    """Every store location's fulfillments, rejects and median time to ready in the window."""
    return await handlers.operations_stores(gateway, minutes)
