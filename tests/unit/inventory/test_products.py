"""Product search takes what was typed literally: the patterns it hands PostgreSQL leave no
wildcard or operator in the typed text."""

from __future__ import annotations

import pytest

from services.contracts.inventory import ProductIn
from services.inventory.domain import SearchPatterns
from services.launcher import demo_data


def test_a_sku_prefix_escapes_like_wildcards_and_the_escape_character() -> None:
    search = SearchPatterns.of("a%b_c\\d")
    assert search is not None
    assert search.sku_prefix == "a\\%b\\_c\\\\d%"


@pytest.mark.parametrize(
    ("typed", "escaped"),
    [
        ("tee", "tee"),
        ("t-sh", "t\\-sh"),
        ("<script>", "\\<script\\>"),
        (".*", "\\.\\*"),
        ("(a|b)[c]{2}^$+?", "\\(a\\|b\\)\\[c\\]\\{2\\}\\^\\$\\+\\?"),
        ("\\m", "\\\\m"),  # never a backslash before a letter: that would be an escape
        ("café 20 l", "café 20 l"),
    ],
)
def test_a_word_start_is_a_regular_expression_matching_only_the_typed_text(
    typed: str, escaped: str
) -> None:
    search = SearchPatterns.of(typed)
    assert search is not None
    assert search.word_start == "(^|[^[:alnum:]])" + escaped


def test_surrounding_blanks_are_ignored_and_only_blanks_find_nothing() -> None:
    assert SearchPatterns.of("  tee ") == SearchPatterns.of("tee")
    assert SearchPatterns.of(" \t ") is None


def test_every_demo_product_is_a_valid_product_request() -> None:
    for product in demo_data.PRODUCTS:
        assert ProductIn.model_validate(product.body()).name == product.name
