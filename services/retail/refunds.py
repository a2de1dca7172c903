"""What giving back units of an order line pays back."""

from __future__ import annotations

from collections.abc import Sequence


class RefundError(ValueError):
    """More units than are left, or none at all; the message says how many are left."""


def refund_of_units(unit_net_prices: Sequence[int], already_returned: int, quantity: int) -> int:
    """What returning (or cancelling) `quantity` more units pays back: the next units' net prices,
    most expensive first, so all refunds of a line together repay exactly what the line cost (a
    free unit of a "3 for 2" refunds what it really cost)."""
    if quantity < 1:
        raise RefundError(f"a refund needs at least 1 unit, got {quantity}")
    sold = len(unit_net_prices)
    if already_returned < 0 or already_returned + quantity > sold:
        left = sold - already_returned
        raise RefundError(
            f"only {left} of {sold} units are left to give back ({already_returned} already "
            f"returned or cancelled), not {quantity}"
        )
    return sum(unit_net_prices[already_returned : already_returned + quantity])
