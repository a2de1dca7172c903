import httpx
import pytest

pytestmark = pytest.mark.integration


async def test_health_and_ready(inventory: httpx.AsyncClient) -> None:
    assert (await inventory.get("/healthz")).json() == {"status": "ok"}
    ready = await inventory.get("/readyz")
    assert ready.status_code == 200, ready.text
