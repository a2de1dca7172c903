"""The price book in memory: each process keeps the prices and promotions it has read, for one
price book version, so a quote whose skus it knows reads nothing from the database.

Whether that version is still the current one is not decided here: the statement that stores a
quote checks it (services/pricing/handlers.py), so a change made by any replica is used by the
very next quote. No I/O in this module.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from services.pricing import engine

NO_VERSION = -1
"""The version of the empty book a process starts with; the database's versions begin at 0."""

MAX_SKUS = 100_000
"""A book that has grown past this many skus starts again empty, so memory stays bounded however
large the catalog is."""


@dataclass(frozen=True)
class PriceBook:
    """What one price book version says about the skus read so far. Never changed but by adding
    skus read at the same version, which can only add what the database holds for that version."""

    version: int
    prices: dict[str, tuple[engine.PriceEntry, ...]] = field(default_factory=dict)
    """Every entry of a sku: all currencies, channels and validity windows (the engine picks)."""
    promotions: dict[str, tuple[engine.Promotion, ...]] = field(default_factory=dict)
    """The active promotions that name a sku."""

    def covers(self, skus: Iterable[str]) -> bool:
        """Whether every one of `skus` has been read (having no price counts as read)."""
        return all(sku in self.prices for sku in skus)

    def price_cart(
        self, lines: Sequence[engine.CartLine], *, currency: str, channel: str, at: datetime
    ) -> engine.PricedCart:
        """`engine.price_cart` with this book's entries for the cart (which it must cover)."""
        skus = [line.sku for line in lines]
        return engine.price_cart(
            lines,
            currency=currency,
            channel=channel,
            prices=self.prices_of(skus),
            promotions=self.promotions_touching(skus),
            at=at,
        )

    def prices_of(self, skus: Iterable[str]) -> list[engine.PriceEntry]:
        return [entry for sku in skus for entry in self.prices[sku]]

    def promotions_touching(self, skus: Iterable[str]) -> list[engine.Promotion]:
        """Each promotion once, though it may name several of `skus`."""
        found: dict[str, engine.Promotion] = {}
        for sku in skus:
            for promotion in self.promotions[sku]:
                found.setdefault(promotion.promotion_id, promotion)
        return list(found.values())


@dataclass(frozen=True)
class BookExcerpt:
    """Prices and active promotions of some skus, read in one snapshot of `version`."""

    version: int
    skus: tuple[str, ...]
    prices: Sequence[engine.PriceEntry]
    promotions: Sequence[engine.Promotion]


class PriceBookCache:
    """The newest price book this process has seen. Versions only grow, so a newer excerpt
    replaces the book, one of the same version fills it in, and an older one (read before a
    change another request has already seen) is used for its own quote and then dropped."""

    def __init__(self) -> None:
        self.book = PriceBook(NO_VERSION)

    def remember(self, excerpt: BookExcerpt) -> PriceBook:
        """The book to price with: the current one with the excerpt added, when it is current."""
        book = self.book
        if excerpt.version < book.version:
            book = PriceBook(excerpt.version)  # for this quote only
        elif excerpt.version > book.version or len(book.prices) >= MAX_SKUS:
            book = self.book = PriceBook(excerpt.version)
        _add(book, excerpt)
        return book


def _add(book: PriceBook, excerpt: BookExcerpt) -> None:
    prices: dict[str, list[engine.PriceEntry]] = {sku: [] for sku in excerpt.skus}
    for entry in excerpt.prices:
        prices.setdefault(entry.sku, []).append(entry)
    promotions: dict[str, list[engine.Promotion]] = {sku: [] for sku in excerpt.skus}
    for promotion in excerpt.promotions:
        for sku in dict.fromkeys(promotion.skus):  # a bundle may name a sku twice
            if sku in promotions:
                promotions[sku].append(promotion)
    for sku, found in promotions.items():
        book.promotions[sku] = tuple(found)
    for sku, entries in prices.items():
        book.prices[sku] = tuple(entries)
