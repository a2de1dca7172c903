"""The README's walkthrough works as written, pasted into a shell against a fresh stack."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.e2e.conftest import Stack

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

README = Path(__file__).resolve().parents[2] / "README.md"


def walkthrough() -> str:
    text = README.read_text()
    found = re.search(
        r"<!-- walkthrough:start.*?-->\s*```bash\n(.*?)```\s*<!-- walkthrough:end -->", text, re.S
    )
    assert found, "README.md has no walkthrough block"
    return found.group(1)


def test_the_readme_walkthrough_runs_from_a_quote_to_a_return_and_a_preorder(stack: Stack) -> None:
    keys = stack.printed_keys
    env = {
        **os.environ,
        "G": stack.gateway_url,
        **{role.upper(): key for role, key in keys.items()},
    }
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", walkthrough()],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert "{'amount': 3998, 'currency': 'EUR'}" in lines
    assert "[1333, 1333, 1332]" in lines
    assert "confirmed" in lines
    assert lines.count("ready_for_pickup") == 1
    assert "picked_up" in lines
    assert "completed" in lines
    assert "{'amount': 1333, 'currency': 'EUR'}" in lines
    # The pre-order and the consolidated parcel.
    assert "backordered" in lines
    assert "2030-01-15T09:00:00Z" in lines
    joined = [line for line in lines if line.startswith("['ord_")]
    assert len(joined) == 1, done.stdout
    assert lines.count("confirmed") >= 3
    assert "shipped" in lines
    assert lines[-1] == "3SREADME1"
    assert joined[0].count("ord_") == 1
