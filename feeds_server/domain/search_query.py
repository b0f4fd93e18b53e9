"""The search box's language: words, "exact phrases" and filters, parsed without I/O.

    budget "quarterly review" from:me in:Sales type:comment has:file after:2026-03-01

- words: every word must match, stemmed and accent-insensitive in English and in French
  (domain/search_text.py); stop words ("the", "le") are left out;
- "…": the words in this order, next to each other;
- `from:` an author: `me`, a user id, or a mention token `@[user:12]`;
- `in:` a group: its id or its name (quote a name with spaces: `in:"Sales team"`);
- `module:` a CRM module (`Deals`); `type:` `status`, `comment`, `message` or `record`;
- `has:file` posts with attachments; `before:` / `after:` a day (`YYYY-MM-DD`, UTC): before it
  begins, after it ends.

The same filter given twice means either (`type:status type:comment`); different filters all
apply. A `word:` that is not a filter is searched as words.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone

from feeds_server import limits
from feeds_server.domain import search_text
from feeds_server.errors import ValidationFailed
from feeds_server.domain.numbers import is_digits

TYPES = ("status", "comment", "message", "record")
FILTERS = ("from", "in", "module", "type", "has", "before", "after")
_PIECE = re.compile(r'(?P<key>[A-Za-z]+):(?:"(?P<qvalue>[^"]*)"?|(?P<value>\S+))|"(?P<phrase>[^"]*)"?|(?P<word>\S+)')
_USER_TOKEN = re.compile(r"@\[user:([0-9]{1,19})\]")
_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_MAX_ID = 2**63 - 1


@dataclass(frozen=True)
class SearchQuery:
    words: tuple[str, ...] = ()  # normalized, stop words left out
    phrases: tuple[tuple[str, ...], ...] = ()  # each of at least two normalized words
    authors: tuple[int, ...] = ()
    groups: tuple[str, ...] = ()  # ids (digits) or names, as typed
    modules: tuple[str, ...] = ()
    types: tuple[str, ...] = ()
    has_file: bool = False
    before: datetime | None = None  # created strictly before
    after: datetime | None = None  # created at or after
    ignored: tuple[str, ...] = field(default=())  # stop words the query had

    @property
    def has_text(self) -> bool:
        return bool(self.words or self.phrases)

    @property
    def is_empty(self) -> bool:
        return not (self.has_text or self.authors or self.groups or self.modules or self.types or self.has_file or self.before or self.after)

    def lexemes(self) -> dict[str, frozenset[str]]:
        """Per language, the lexemes of every word and phrase word (to mark them in excerpts)."""
        words = [*self.words, *(w for p in self.phrases for w in p)]
        return {lang: frozenset(s for w in words if (s := search_text.stem(w, lang)) is not None) for lang in search_text.LANGUAGES}


def _invalid(message: str) -> ValidationFailed:
    return ValidationFailed("invalid_search_query", message, field="q")


def _author(value: str, me: int) -> int:
    if value.lower() == "me":
        return me
    token = _USER_TOKEN.fullmatch(value)
    digits = token.group(1) if token else value
    if not is_digits(digits) or not 0 < int(digits) <= _MAX_ID:
        raise _invalid(f"from: takes me, a user id or @[user:ID], not {value!r}")
    return int(digits)


def _day(key: str, value: str) -> date:
    if not _DAY.fullmatch(value):
        raise _invalid(f"{key}: takes a day as YYYY-MM-DD, not {value!r}")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise _invalid(f"{key}: {value!r} is not a day") from None


def _words(text: str) -> list[str]:
    return [t.word for t in search_text.tokens(text)]


def parse(q: str, me: int) -> SearchQuery:
    """Parse a query typed by the member `me` (whose id `from:me` names)."""
    if len(q) > limits.MAX_SEARCH_QUERY_CHARS:
        raise _invalid(f"a search must be shorter than {limits.MAX_SEARCH_QUERY_CHARS + 1} characters")
    words: list[str] = []
    phrases: list[tuple[str, ...]] = []
    ignored: list[str] = []
    authors: list[int] = []
    groups: list[str] = []
    modules: list[str] = []
    types: list[str] = []
    has_file = False
    before: date | None = None
    after: date | None = None

    def add_words(found: list[str]) -> None:
        for w in found:
            (ignored if search_text.is_stop_word(w) else words).append(w)

    for m in _PIECE.finditer(q):
        key = (m.group("key") or "").lower()
        if m.group("key") is not None and key in FILTERS:
            value = m.group("qvalue") if m.group("qvalue") is not None else m.group("value")
            value = value.strip()
            if not value:
                raise _invalid(f"{key}: needs a value")
            if key == "from":
                authors.append(_author(value, me))
            elif key == "in":
                groups.append(value)
            elif key == "module":
                modules.append(value)
            elif key == "type":
                if value.lower() not in TYPES:
                    raise _invalid(f"type: takes {', '.join(TYPES)}, not {value!r}")
                types.append(value.lower())
            elif key == "has":
                if value.lower() != "file":
                    raise _invalid(f"has: takes file, not {value!r}")
                has_file = True
            elif key == "before":
                day = _day(key, value)
                before = day if before is None else min(before, day)
            else:
                day = _day(key, value)
                after = day if after is None else max(after, day)
        elif m.group("phrase") is not None:
            found = [w for w in _words(m.group("phrase")) if not search_text.is_stop_word(w)]
            if len(found) > 1:
                phrases.append(tuple(found))
            else:
                add_words(found)
        else:
            add_words(_words(m.group(0)))
    if len(words) + sum(len(p) for p in phrases) > limits.MAX_SEARCH_WORDS:
        raise _invalid(f"a search may have at most {limits.MAX_SEARCH_WORDS} words")
    return SearchQuery(
        words=tuple(dict.fromkeys(words)),
        phrases=tuple(dict.fromkeys(phrases)),
        authors=tuple(dict.fromkeys(authors)),
        groups=tuple(dict.fromkeys(groups)),
        modules=tuple(dict.fromkeys(modules)),
        types=tuple(dict.fromkeys(types)),
        has_file=has_file,
        before=_midnight(before) if before else None,
        after=_midnight(after + timedelta(days=1)) if after else None,
        ignored=tuple(ignored),
    )


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=timezone.utc)


@dataclass(frozen=True)
class SearchCursor:
    """Where the next page starts: in the window of matches whose index id is at most `top`, strictly
    after the hit (`score`, `item_id`); at the start of that window when both are None."""

    top: int
    score: int | None = None
    item_id: int | None = None


def encode_cursor(cursor: SearchCursor) -> str:
    raw = f"w{cursor.top}" if cursor.score is None else f"w{cursor.top}.{cursor.score}.{cursor.item_id}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> SearchCursor:
    """Refuses anything this server did not give out (422 `invalid_cursor`)."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
        if not raw.startswith("w"):
            raise ValueError(raw)
        parts = [int(x) for x in raw[1:].split(".")]
        if len(parts) not in (1, 3) or not 0 < parts[0] <= _MAX_ID:
            raise ValueError(raw)
        if len(parts) == 1:
            return SearchCursor(top=parts[0])
        top, score, item_id = parts
        if not (0 <= score <= _MAX_ID and 0 < item_id <= top):
            raise ValueError(raw)
        return SearchCursor(top=top, score=score, item_id=item_id)
    except (ValueError, UnicodeDecodeError):
        raise ValidationFailed("invalid_cursor", "the cursor is not one this server gave out", field="cursor") from None
