"""What counts as one reaction emoji: a single Unicode emoji sequence, in one canonical spelling.

The `emoji` package follows the Unicode emoji data (sequences, ZWJ families, flags, skin tones)
far better than a hand-made pattern could. An emoji may be sent with or without its variation
selector (U+FE0F: "❤" and "❤️" are the same heart); both are stored as the fully-qualified form, so
one heart is one chip and one count. Text, several emojis, a lone skin-tone modifier and control
characters are refused.
"""

from __future__ import annotations

import unicodedata
from functools import cache

import emoji as emoji_data

from feeds_server import limits
from feeds_server.errors import ValidationFailed

_VS16 = "\ufe0f"


@cache
def _fully_qualified() -> dict[str, str]:
    """Each fully-qualified emoji by its spelling without variation selectors."""
    return {
        e.replace(_VS16, ""): e for e, facts in emoji_data.EMOJI_DATA.items() if facts.get("status") == emoji_data.STATUS["fully_qualified"]
    }


def canonical_emoji(value: str) -> str:
    """`value` as stored (NFC, fully qualified), or 422 `invalid_emoji`."""
    if not isinstance(value, str) or not value:
        raise ValidationFailed("invalid_emoji", "a reaction is one emoji", field="emoji")
    text = unicodedata.normalize("NFC", value)
    if len(text) > limits.MAX_REACTION_EMOJI_CHARS or any(unicodedata.category(c) == "Cc" for c in text):
        raise ValidationFailed("invalid_emoji", "a reaction is one emoji", field="emoji")
    text = _fully_qualified().get(text.replace(_VS16, ""), text)
    facts = emoji_data.EMOJI_DATA.get(text)
    if not emoji_data.is_emoji(text) or facts is None or facts.get("status") == emoji_data.STATUS["component"]:
        raise ValidationFailed("invalid_emoji", "a reaction is one emoji", field="emoji")
    return text
