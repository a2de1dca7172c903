"""Where stock is: the locations of the network, for store staff finding stock nearest their
store and moving a collection to another store, and for admins."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Request, Response

from services.contracts.inventory import Location, LocationType
from services.gateway import examples
from services.gateway.api.common import ADMIN, STORE, Gateway, PathId, query, respond, role
from services.gateway.domain import Principal

router = APIRouter(tags=["locations"])

Reader = Annotated[Principal, role(STORE, ADMIN, to="read locations")]


@router.get(
    "/locations",
    response_model=list[Location],
    responses={200: examples.response([examples.LOCATION])},
)
async def list_locations(
    request: Request, principal: Reader, gateway: Gateway, type: LocationType | None = None
) -> Response:
    """Every location of the network (optionally of one `type`), with its coordinates."""
    reply = await gateway.inventory.call(
        "GET", "/locations", params=query(type=type), safe_to_retry=True
    )
    return respond(reply, request)


@router.get(
    "/locations/{location_id}",
    response_model=Location,
    responses={200: examples.response(examples.LOCATION)},
)
async def get_location(
    request: Request, principal: Reader, gateway: Gateway, location_id: PathId
) -> Response:
    """One location: its name, type, coordinates and capabilities."""
    reply = await gateway.inventory.call("GET", f"/locations/{location_id}", safe_to_retry=True)
    return respond(reply, request)
