"""Click & reserve holds: how far ahead one may run (DESIGN.md §4)."""

from __future__ import annotations

from datetime import datetime, timedelta

MAX_HOLD = timedelta(days=7)


def hold_problem(hold_until: datetime, now: datetime) -> str | None:
    """Why a hold until then cannot be taken, or None when it can."""
    if hold_until.tzinfo is None:
        return "hold_until must carry a time zone"
    if hold_until <= now:
        return f"hold_until {hold_until.isoformat()} is not in the future"
    if hold_until - now > MAX_HOLD:
        return f"hold_until may be at most {MAX_HOLD.days} days ahead"
    return None
