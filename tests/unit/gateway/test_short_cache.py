"""The gateway's short cache of shop availability: one call for concurrent asks, answers kept
for a moment and no longer, failures never kept."""

from __future__ import annotations

import asyncio
import contextlib

from services.gateway.downstream import Reply, ShortCache

OK = Reply(200, b'{"items": []}', "application/json")
DOWN = Reply(503, b"{}", "application/problem+json")


class Inventory:
    def __init__(self, *replies: Reply, delay: float = 0.0) -> None:
        self.replies = list(replies)
        self.calls = 0
        self.delay = delay

    async def __call__(self) -> Reply:
        self.calls += 1
        await asyncio.sleep(self.delay)
        return self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]


async def test_concurrent_asks_for_the_same_read_make_one_call() -> None:
    cache, inventory = ShortCache("t", 1.0), Inventory(OK, delay=0.05)
    replies = await asyncio.gather(*(cache.get("k", inventory) for _ in range(20)))
    assert replies == [OK] * 20
    assert inventory.calls == 1


async def test_an_answer_is_kept_for_its_seconds_and_no_longer() -> None:
    cache = ShortCache("t", 0.1)
    fresher = Reply(200, b'{"items": [1]}', "application/json")
    inventory = Inventory(OK, fresher)
    assert await cache.get("k", inventory) == OK
    assert await cache.get("k", inventory) == OK
    assert await cache.get("other", inventory) == fresher  # another read is asked for
    await asyncio.sleep(0.15)
    assert await cache.get("k", inventory) == fresher
    assert inventory.calls == 3


async def test_a_failure_is_never_kept() -> None:
    cache, inventory = ShortCache("t", 10.0), Inventory(DOWN, OK)
    assert await cache.get("k", inventory) == DOWN
    assert await cache.get("k", inventory) == OK
    assert inventory.calls == 2


async def test_a_client_that_goes_away_does_not_cancel_the_call_others_wait_for() -> None:
    cache, inventory = ShortCache("t", 1.0), Inventory(OK, delay=0.05)
    leaving = asyncio.create_task(cache.get("k", inventory))
    staying = asyncio.create_task(cache.get("k", inventory))
    await asyncio.sleep(0.01)
    leaving.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await leaving
    assert await staying == OK
    assert inventory.calls == 1


async def test_zero_seconds_asks_every_time() -> None:
    cache, inventory = ShortCache("t", 0), Inventory(OK)
    for _ in range(3):
        await cache.get("k", inventory)
    assert inventory.calls == 3


async def test_it_keeps_no_more_than_its_bound() -> None:
    cache, inventory = ShortCache("t", 10.0, max_entries=2), Inventory(OK)
    for key in ("a", "b", "c"):
        await cache.get(key, inventory)
    await cache.get("c", inventory)  # not kept: the bound was reached by answers still fresh
    assert inventory.calls == 4


async def test_a_read_asked_for_in_the_last_fifth_of_its_time_is_refreshed_behind_it() -> None:
    cache = ShortCache("t", 1.0)
    fresher = Reply(200, b'{"items": [1]}', "application/json")
    inventory = Inventory(OK, fresher, delay=0.02)
    assert await cache.get("k", inventory) == OK
    await asyncio.sleep(0.5)
    assert await cache.get("k", inventory) == OK  # before the last fifth: kept, nothing asked
    assert inventory.calls == 1
    await asyncio.sleep(0.35)
    assert await cache.get("k", inventory) == OK  # last fifth: kept answer, refresh started
    await asyncio.sleep(0)
    assert inventory.calls == 2
    assert await cache.get("k", inventory) == OK  # one refresh at a time
    assert inventory.calls == 2
    await asyncio.sleep(0.1)
    assert await cache.get("k", inventory) == fresher  # the refresh, without waiting for it
    assert inventory.calls == 2


async def test_a_failed_refresh_leaves_the_kept_answer_until_it_expires() -> None:
    cache = ShortCache("t", 1.0)
    inventory = Inventory(OK, DOWN)
    assert await cache.get("k", inventory) == OK
    await asyncio.sleep(0.85)
    assert await cache.get("k", inventory) == OK  # refresh started, and fails
    await asyncio.sleep(0.01)
    assert inventory.calls == 2
    assert await cache.get("k", inventory) == OK
    await asyncio.sleep(0.2)
    assert await cache.get("k", inventory) == DOWN  # expired: asked again, failure seen
