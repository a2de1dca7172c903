"""What every route of the gateway shares: authentication, the error responses it documents,
authorisation helpers, passing answers on, and running a change at most once.

Answers of the services behind are passed on unchanged (their problem responses too, with
`instance` set to the gateway's path), so the gateway never re-shapes the services' contract."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import Depends, Header, Path, Query, Request, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from services.contracts import orders
from services.contracts.base import Contract
from services.contracts.gateway import Role
from services.gateway import domain, handlers
from services.gateway.domain import Principal
from services.gateway.downstream import Reply
from services.infrastructure.errors import PROBLEM_JSON, PROBLEM_RESPONSES, Forbidden, Unauthorized

SHOP, STORE, PARTNER, ADMIN = Role.SHOP, Role.STORE, Role.PARTNER, Role.ADMIN


RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before trying again.",
        "schema": {"type": "integer"},
    }
}


def _problem(description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description,
        "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }
    if headers:
        response["headers"] = headers
    return response


RESPONSES: dict[int | str, dict[str, Any]] = {
    **PROBLEM_RESPONSES,
    401: _problem("No API key, or one that is unknown or revoked"),
    403: _problem("The key's role or binding does not allow this"),
    409: _problem(
        "Conflicts with the current state, or the first request with this Idempotency-Key is "
        "still being processed (then with `Retry-After`)",
        RETRY_AFTER,
    ),
    429: _problem("Over the key's rate limit; `Retry-After` says when to try again", RETRY_AFTER),
    502: _problem("A service behind the gateway failed; `service` names it"),
    503: _problem(
        "A service behind the gateway is unavailable; `unavailable` names it", RETRY_AFTER
    ),
}

bearer = HTTPBearer(
    auto_error=False, description="An API key, created by an admin: `Bearer <api key>`."
)


async def gateway_of(request: Request) -> handlers.Gateway:
    found: handlers.Gateway = request.app.state.gateway
    return found


async def authenticated(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    gateway: handlers.Gateway = request.app.state.gateway
    try:
        principal = await gateway.authenticator.authenticate(
            credentials.credentials if credentials else None
        )
    except Unauthorized:
        # Only a key that was tried counts: each costs a database lookup, and slowing them down
        # is what keeps guessing keys slow. A request without one costs nothing: a plain 401.
        if credentials is not None:
            gateway.rate_limiter.charge_failed_authentication(
                request.client.host if request.client else "unknown"
            )
        raise
    gateway.rate_limiter.check(principal)
    return principal


Caller = Annotated[Principal, Depends(authenticated)]
Gateway = Annotated[handlers.Gateway, Depends(gateway_of)]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=200,
        description="Repeat the request safely: the same key and body get the first response "
        "again (kept 24 h); the same key on this operation (method and path) with another body "
        "is a 422. Use a new key, such as a random UUID, for every new request.",
    ),
]
"""No example on purpose: a client that copied one would send every request with the same
key, and every request after the first would be refused as a replay with another body."""
PathId = Annotated[
    str,
    Path(
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._\-:]*$",
        description="An identifier: letters, digits, '.', '_', '-' and ':'.",
    ),
]
"""Ids in paths are checked before they become part of a call to the service behind."""
QueueCursor = Annotated[orders.QueueCursor | None, Query()]
Limit = Annotated[int, Query(ge=1, le=200)]


def allow(principal: Principal, roles: frozenset[Role], action: str) -> None:
    if (reason := domain.role_denial(principal, roles, action)) is not None:
        raise Forbidden(reason)


def role(*roles: Role, to: str) -> Any:
    """A dependency admitting only keys of these roles, checked before the body is: a wrong key
    gets its 403 whatever it sent."""
    allowed = frozenset(roles)

    async def check(principal: Caller) -> Principal:
        allow(principal, allowed, to)
        return principal

    return Depends(check)


def deny_if(reason: str | None) -> None:
    if reason is not None:
        raise Forbidden(reason)


def respond(reply: Reply, request: Request) -> Response:
    body = reply.body
    if reply.content_type.startswith(PROBLEM_JSON):
        problem = reply.json()
        problem["instance"] = request.url.path
        body = json.dumps(problem).encode()
    headers = {"Idempotent-Replayed": "true"} if reply.replayed else None
    return Response(body, reply.status, headers=headers, media_type=reply.content_type)


def payload(body: Contract) -> Any:
    return body.model_dump(mode="json", exclude_unset=True)


async def once(
    request: Request,
    gateway: handlers.Gateway,
    principal: Principal,
    idempotency_key: str | None,
    body: Any,
    action: handlers.Action,
) -> Response:
    """Run a creating or changing request at most once per Idempotency-Key."""
    operation = f"{request.method} {request.url.path}"
    fingerprint = domain.request_fingerprint(request.method, request.url.path, body)
    reply = await gateway.idempotency.run(
        principal, idempotency_key, operation, fingerprint, action
    )
    return respond(reply, request)


def query(**values: Any) -> dict[str, Any]:
    return {name: value for name, value in values.items() if value is not None}


async def own_fulfillment(
    gateway: handlers.Gateway, principal: Principal, fulfillment_id: str, step: str | None = None
) -> Reply:
    reply = await gateway.orders.call("GET", f"/fulfillments/{fulfillment_id}", safe_to_retry=True)
    if reply.ok:
        deny_if(domain.fulfillment_denial(principal, reply.json(), step))
    return reply


async def fulfillment_step(
    request: Request,
    gateway: handlers.Gateway,
    principal: Principal,
    idempotency_key: str | None,
    fulfillment_id: str,
    step: str,
    body: Contract | None = None,
) -> Response:
    found = await own_fulfillment(gateway, principal, fulfillment_id, step)
    if not found.ok:
        return respond(found, request)
    data = payload(body) if body is not None else None

    async def take_step(_: str) -> Reply:
        # Orders answers a step the fulfillment has taken already with the fulfillment as it is,
        # so a retry is harmless.
        return await gateway.orders.call(
            "POST", f"/fulfillments/{fulfillment_id}/{step}", json=data, safe_to_retry=True
        )

    return await once(request, gateway, principal, idempotency_key, data, take_step)
