"""One error hierarchy, rendered as RFC 9457 `application/problem+json`."""

from __future__ import annotations

import logging
from typing import Any, ClassVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
PROBLEM_BASE = "https://omniroute.dev/problems/"


class OmnirouteError(Exception):
    """A failure the client can understand and act on."""

    status: int = 500
    slug: str = "internal-error"
    title: str = "Internal error"
    headers: ClassVar[dict[str, str] | None] = None

    def __init__(self, detail: str, **extensions: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extensions = extensions


class InvalidRequest(OmnirouteError):
    status, slug, title = 422, "invalid-request", "The request is not valid"


class NotFound(OmnirouteError):
    status, slug, title = 404, "not-found", "Not found"


class Conflict(OmnirouteError):
    status, slug, title = 409, "conflict", "The request conflicts with the current state"


class Unauthorized(OmnirouteError):
    status, slug, title = 401, "unauthorized", "Authentication required"
    headers: ClassVar[dict[str, str] | None] = {"WWW-Authenticate": 'Bearer realm="omniroute"'}


class Forbidden(OmnirouteError):
    status, slug, title = 403, "forbidden", "Not allowed"


class TooManyRequests(OmnirouteError):
    status, slug, title = 429, "rate-limited", "Too many requests"


class BadGateway(OmnirouteError):
    status, slug, title = 502, "bad-gateway", "A dependency failed"


class ServiceUnavailable(OmnirouteError):
    status, slug, title = 503, "service-unavailable", "A dependency is unavailable"


def problem(
    status: int,
    slug: str,
    title: str,
    detail: str,
    instance: str | None = None,
    headers: dict[str, str] | None = None,
    **extensions: Any,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": PROBLEM_BASE + slug,
        "title": title,
        "status": status,
        "detail": detail,
    }
    if instance:
        body["instance"] = instance
    body.update(extensions)
    headers = dict(headers or {})
    if "retry_after" in extensions:
        headers["Retry-After"] = str(extensions["retry_after"])
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def _validation_detail(errors: list[Any]) -> str:
    parts = []
    for error in errors[:10]:
        loc = [str(p) for p in error.get("loc", ()) if p != "body"]
        where = ".".join(loc) or "body"
        parts.append(f"{where}: {error.get('msg')}")
    return "; ".join(parts)


class Problem(BaseModel):
    """RFC 9457 problem details, as every error of every service is answered."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(examples=[PROBLEM_BASE + "invalid-request"])
    title: str
    status: int
    detail: str = Field(description="What went wrong and what to change.")
    instance: str | None = Field(default=None, description="The path that was called.")


def _with_problem_schema(app: FastAPI) -> None:
    """Put `Problem` into the OpenAPI components, where PROBLEM_RESPONSES refer to it."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = generate()
            schema.setdefault("components", {}).setdefault("schemas", {})["Problem"] = (
                Problem.model_json_schema(ref_template="#/components/schemas/{model}")
            )
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


def _allowed_methods(request: Request) -> list[str]:
    """The methods some route serves at this request's path, for a 405's `Allow` (RFC 9110
    requires it). Starlette's own 405 names only the first route that matched the path, so a
    path with a GET and a POST route would advertise one of them."""
    routes = request.app.router.routes
    return [
        method
        for method in _METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] is Match.FULL for route in routes
        )
    ]


def install_problem_handlers(app: FastAPI) -> None:
    _with_problem_schema(app)

    @app.exception_handler(OmnirouteError)
    async def _omniroute_error(request: Request, exc: OmnirouteError) -> JSONResponse:
        return problem(
            exc.status,
            exc.slug,
            exc.title,
            exc.detail,
            str(request.url.path),
            exc.headers,
            **exc.extensions,
        )

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{k: v for k, v in e.items() if k in ("loc", "msg", "type")} for e in exc.errors()]
        if any(e.get("type") == "json_invalid" for e in errors):
            return problem(
                400,
                "malformed-json",
                "Malformed JSON",
                "The request body is not valid JSON: " + _validation_detail(errors),
                str(request.url.path),
            )
        return problem(
            422,
            "invalid-request",
            "The request is not valid",
            _validation_detail(errors),
            str(request.url.path),
            errors=errors,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        titles = {404: "Not found", 405: "Method not allowed"}
        headers = dict(exc.headers or {})
        detail = str(exc.detail)
        if exc.status_code == 405:
            allowed = _allowed_methods(request)
            headers["Allow"] = ", ".join(allowed)
            detail = f"{request.method} is not allowed here; use {' or '.join(allowed)}"
        return problem(
            exc.status_code,
            {404: "not-found", 405: "method-not-allowed"}.get(exc.status_code, "http-error"),
            titles.get(exc.status_code, "HTTP error"),
            detail,
            str(request.url.path),
            headers,
        )

    @app.exception_handler(ConnectionError)
    @app.exception_handler(PoolTimeout)  # every connection of the pool busy for too long
    @app.exception_handler(OperationalError)
    @app.exception_handler(InterfaceError)
    async def _database_away(request: Request, exc: Exception) -> JSONResponse:
        # The service's own database (or the network to it) is away: nothing the client did,
        # and worth a retry once it is back.
        log.error("database unavailable on %s %s: %s", request.method, request.url.path, exc)
        return problem(
            503,
            "service-unavailable",
            "A dependency is unavailable",
            "the service's database is unavailable; try again shortly",
            str(request.url.path),
            unavailable=["database"],
            retry_after=1,
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem(
            500,
            "internal-error",
            "Internal error",
            "An unexpected error occurred; it has been logged.",
            str(request.url.path),
        )


PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {
        "description": description,
        "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }
    for status, description in (
        (400, "Malformed JSON"),
        (404, "Not found"),
        (409, "Conflicts with the current state"),
        (422, "Invalid request (unknown fields, wrong types, broken rules)"),
    )
}
