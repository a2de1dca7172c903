"""Every error is a problem+json: a database that is away is a 503 the client may retry."""

from __future__ import annotations

import httpx
from fastapi import FastAPI
from sqlalchemy.exc import OperationalError

from services.infrastructure.errors import install_problem_handlers


def app_raising(error: Exception) -> FastAPI:
    app = FastAPI()
    install_problem_handlers(app)

    @app.get("/work")
    async def work() -> None:
        raise error

    return app


async def answer(app: FastAPI) -> httpx.Response:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://service") as client:
        return await client.get("/work")


async def test_a_database_that_is_away_is_a_503_to_retry() -> None:
    for error in (
        ConnectionRefusedError(111, "Connect call failed"),
        OperationalError("SELECT 1", {}, Exception("server closed the connection")),
    ):
        response = await answer(app_raising(error))
        assert response.status_code == 503
        assert response.headers["content-type"] == "application/problem+json"
        assert response.headers["retry-after"] == "1"
        assert response.json()["unavailable"] == ["database"]


async def test_anything_else_unexpected_is_a_500_without_internals() -> None:
    response = await answer(app_raising(KeyError("secret internals")))
    assert response.status_code == 500
    assert "secret" not in response.text
