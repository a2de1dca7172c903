"""The README's few lines a partner uses to check a delivery work as written."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from services.webhooks import domain

README = Path(__file__).resolve().parents[3] / "README.md"


def partner_snippet(secret: str) -> Any:
    section = README.read_text().split("### Webhooks (port 8005)", 1)[1]
    found = re.search(r"```python\n(.*?)```", section, re.S)
    assert found, "the README's webhooks section shows no Python"
    code = found.group(1).replace('"whsec_..."', repr(secret))
    namespace: dict[str, Any] = {}
    exec(compile(code, "README.md", "exec"), namespace)
    return namespace["receive"]


def test_the_readme_snippet_accepts_a_signed_delivery_and_refuses_a_forged_one() -> None:
    secret = domain.new_secret()
    receive = partner_snippet(secret)
    body = '{"id":"e1","type":"fulfillment.assigned","created_at":"2026-11-28T12:00:00+00:00","data":{"order_id":"ord_1"}}'
    headers = domain.signed_headers(secret, "msg_1", datetime.now(UTC), body)
    assert receive(body.encode(), headers)["data"] == {"order_id": "ord_1"}
    assert receive(body.replace("ord_1", "ord_2").encode(), headers) is None
    forged = domain.signed_headers(domain.new_secret(), "msg_1", datetime.now(UTC), body)
    assert receive(body.encode(), forged) is None
    stale = domain.signed_headers(secret, "msg_1", datetime.now(UTC) - timedelta(hours=1), body)
    assert receive(body.encode(), stale) is None
