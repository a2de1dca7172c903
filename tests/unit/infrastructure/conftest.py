"""The dispatcher's unit tests share an in-memory store (`make_dispatcher` dispatches over it)."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture
def store() -> dict[str, Any]:
    """What `FakeUnitOfWork` keeps across instances, as a database would."""
    return {"claimed": set(), "dead": [], "emitted": []}
