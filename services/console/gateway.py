"""The console's only way in: the gateway's `/v1` API, called with the signed-in person's key.
Problem responses become `Refused` with the gateway's own words, shown to the person as they
are (never a stack trace)."""

from __future__ import annotations

import uuid
from typing import Any

import httpx


class Refused(Exception):
    """The gateway said no (or could not be reached): `detail` is for the person."""

    def __init__(self, status: int, title: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.title = title
        self.detail = detail


class SignedOut(Refused):
    """The key is unknown or revoked: the session ends."""


class Gateway:
    def __init__(self, base_url: str, timeout: float) -> None:
        self._client = httpx.AsyncClient(base_url=base_url.rstrip("/"), timeout=timeout)

    async def aclose(self) -> None:
        await self._client.aclose()

    async def get(self, api_key: str, path: str, **params: Any) -> Any:
        query = {k: v for k, v in params.items() if v is not None}
        return await self._call(api_key, "GET", path, params=query)

    async def post(self, api_key: str, path: str, body: Any = None) -> Any:
        # A new Idempotency-Key per submitted form: a double click or a retry of the same
        # submission within this call is one change.
        return await self._call(
            api_key, "POST", path, json=body, headers={"Idempotency-Key": str(uuid.uuid4())}
        )

    async def _call(self, api_key: str, method: str, path: str, **kwargs: Any) -> Any:
        headers = {"Authorization": f"Bearer {api_key}", **kwargs.pop("headers", {})}
        try:
            response = await self._client.request(method, f"/v1{path}", headers=headers, **kwargs)
        except httpx.HTTPError as exc:
            raise Refused(
                503,
                "The gateway does not answer",
                f"try again in a moment ({exc.__class__.__name__})",
            ) from None
        if response.status_code < 400:
            return response.json() if response.content else None
        try:
            problem = response.json()
            title, detail = str(problem.get("title", "")), str(problem.get("detail", ""))
        except ValueError:
            title, detail = f"HTTP {response.status_code}", response.text[:300]
        error = SignedOut if response.status_code == 401 else Refused
        raise error(response.status_code, title or f"HTTP {response.status_code}", detail)
