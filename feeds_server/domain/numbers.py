"""Numbers written by clients: ids in tokens, cursors, query filters and headers."""

from __future__ import annotations


def is_digits(text: str) -> bool:
    """Only the ASCII digits 0–9, at least one. `str.isdigit` also takes characters such as "²",
    which `int` then refuses with a ValueError: a 500 where a 4xx was meant."""
    return text.isascii() and text.isdigit()
