"""Message text: the length limit, structured mentions and rendering (F-POST-2, F-POST-3).

A mention is written in the text as a token naming its target by kind and ID: `@[user:12]`,
`@[role:3]`, `@[group:7]`. The server never guesses mentions from names; it checks each target
and renders the token as the target's current name.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from feeds_server import limits
from feeds_server.errors import LimitExceeded, ValidationFailed

MENTION_KINDS = ("user", "role", "group")
_TOKEN = re.compile(r"@\[(user|role|group):([0-9]{1,19})\]")


@dataclass(frozen=True, slots=True)
class MentionRef:
    kind: str
    target_id: int


def check_text(text: str, field: str = "body") -> str:
    """Refuse empty, whitespace-only, too long (code points) or NUL-carrying text."""
    if not text.strip():
        raise ValidationFailed("empty_message", "a message cannot be empty", field=field)
    if len(text) > limits.MAX_POST_CHARS:
        raise LimitExceeded(
            "message_too_long",
            f"a message must be shorter than {limits.MAX_POST_CHARS + 1} characters",
            field=field,
            limit=limits.MAX_POST_CHARS,
            length=len(text),
        )
    if "\x00" in text:
        raise ValidationFailed("invalid_text", "a message cannot contain NUL characters", field=field)
    return text


def parse_mentions(text: str) -> list[MentionRef]:
    """The distinct mention tokens of a text, in order of first appearance."""
    seen: dict[tuple[str, int], None] = {}
    for match in _TOKEN.finditer(text):
        seen.setdefault((match.group(1), int(match.group(2))), None)
    if len(seen) > limits.MAX_MENTIONS_PER_POST:
        raise LimitExceeded(
            "too_many_mentions", f"at most {limits.MAX_MENTIONS_PER_POST} mentions in one message", limit=limits.MAX_MENTIONS_PER_POST
        )
    return [MentionRef(kind, target_id) for kind, target_id in seen]


def render(text: str, names: Mapping[tuple[str, int], str]) -> list[dict[str, Any]]:
    """The text as segments a client shows without parsing: text runs and mentions with names.

    A mention whose target is gone since (a deleted group) renders as plain text of the token.
    """
    segments: list[dict[str, Any]] = []
    pos = 0
    for match in _TOKEN.finditer(text):
        if match.start() > pos:
            segments.append({"type": "text", "text": text[pos : match.start()]})
        kind, target_id = match.group(1), int(match.group(2))
        name = names.get((kind, target_id))
        if name is None:
            segments.append({"type": "text", "text": match.group(0)})
        else:
            segments.append({"type": "mention", "kind": kind, "id": target_id, "name": name})
        pos = match.end()
    if pos < len(text):
        segments.append({"type": "text", "text": text[pos:]})
    return segments


def plain_text(segments: list[dict[str, Any]]) -> str:
    """The rendered message as plain text (`@Name` for mentions), for emails and previews."""
    return "".join(s["text"] if s["type"] == "text" else f"@{s['name']}" for s in segments)


def replace_mentions(text: str, replace: Callable[[str, int], str]) -> str:
    """The text with each mention token replaced by `replace(kind, id)` (ids rewritten on import)."""
    return _TOKEN.sub(lambda match: replace(match.group(1), int(match.group(2))), text)
