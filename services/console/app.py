"""Composition of the console: `uvicorn services.console.app:app`.

The store console and the command center, server-rendered (Jinja2), updated in place by htmx
and live by server-sent events. It is the gateway's first client: every number and every step
goes through `/v1` with the signed-in person's key, so the console can do nothing that key
could not do with curl.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from services.console import auth, counter, operations, stock, store
from services.console.gateway import Gateway, Refused, SignedOut
from services.console.sessions import COOKIE, Sessions
from services.console.settings import ConsoleSettings
from services.console.web import NotAllowed, SignInNeeded, render, see_other, sessions_of
from services.infrastructure.logs import configure_logging

log = logging.getLogger(__name__)
HERE = Path(__file__).resolve().parent


def create_app(settings: ConsoleSettings | None = None) -> FastAPI:
    settings = settings or ConsoleSettings()
    configure_logging(settings.service_name, settings.log_level, settings.log_format)
    gateway = Gateway(settings.gateway_url, settings.gateway_timeout_seconds)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await gateway.aclose()

    app = FastAPI(
        title="Omniroute console",
        description="The store console and the command center.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.settings = settings
    app.state.gateway = gateway
    app.state.sessions = Sessions(settings.console_session_minutes)
    app.state.templates = Jinja2Templates(directory=HERE / "templates")
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    app.include_router(auth.router)
    app.include_router(store.router)
    app.include_router(stock.router)
    app.include_router(counter.router)
    app.include_router(operations.router)
    _install_error_pages(app)

    @app.middleware("http")
    async def security_headers(request: Request, call_next: Any) -> Response:
        response: Response = await call_next(request)
        # Scripts only from the console itself (htmx and the chart are vendored files); htmx
        # adds an inline style for its request indicator.
        response.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
            "img-src 'self' data:; frame-ancestors 'none'; form-action 'self'",
        )
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        return response

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> Response:
        try:
            async with httpx.AsyncClient(timeout=2) as client:
                answer = await client.get(f"{settings.gateway_url.rstrip('/')}/healthz")
            ready = answer.status_code == 200
        except httpx.HTTPError:
            ready = False
        if ready:
            return JSONResponse({"status": "ready", "gateway": "ok"})
        return JSONResponse({"status": "not ready", "gateway": "not reachable"}, status_code=503)

    return app


def _install_error_pages(app: FastAPI) -> None:
    """Every failure is a readable page, never a stack trace."""

    @app.exception_handler(RequestValidationError)
    async def invalid_form(request: Request, exc: RequestValidationError) -> Response:
        session = sessions_of(request).find(request.cookies.get(COOKIE))
        fields = ", ".join(str(error["loc"][-1]) for error in exc.errors() if error.get("loc"))
        return render(
            request,
            "error.html",
            session,
            422,
            title="Please check the form",
            detail=f"These fields were missing or not valid: {fields}."
            if fields
            else "The form was not valid.",
        )

    @app.exception_handler(SignInNeeded)
    async def sign_in_needed(request: Request, _: SignInNeeded) -> Response:
        return see_other("/sign-in")

    @app.exception_handler(SignedOut)
    async def signed_out(request: Request, _: SignedOut) -> Response:
        # The key was revoked (or is unknown now): this session is over.
        sessions_of(request).end(request.cookies.get(COOKIE))
        response = see_other("/sign-in?ended=true")
        response.delete_cookie(COOKIE)
        return response

    @app.exception_handler(NotAllowed)
    async def not_allowed(request: Request, exc: NotAllowed) -> Response:
        session = sessions_of(request).find(request.cookies.get(COOKIE))
        return render(
            request, "error.html", session, 403, title="Not for this key", detail=str(exc)
        )

    @app.exception_handler(Refused)
    async def refused(request: Request, exc: Refused) -> Response:
        session = sessions_of(request).find(request.cookies.get(COOKIE))
        return render(
            request, "error.html", session, exc.status, title=exc.title, detail=exc.detail
        )

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> HTMLResponse:
        log.exception("console page failed: %s %s", request.method, request.url.path)
        session = sessions_of(request).find(request.cookies.get(COOKIE))
        return render(
            request,
            "error.html",
            session,
            500,
            title="Something went wrong",
            detail="The page could not be shown. Try again; if it keeps happening, tell "
            "operations the time it happened.",
        )


def __getattr__(name: str) -> FastAPI:
    # Built on first access (by uvicorn), so importing this module starts nothing.
    if name == "app":
        return create_app()
    raise AttributeError(name)
