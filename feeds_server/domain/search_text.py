"""Words for full-text search: accent-insensitive, stemmed in English and in French.

The same rules serve both databases. PostgreSQL indexes `unaccent(text)` with its `english` and
`french` configurations (migration 0012); SQLite indexes what `stems` returns, computed by a
function the server registers on every connection (store/search.py). Both drop the stop words
of PostgreSQL's lists (`english.stop`, `french.stop`), so a query means the same on each.

Mention tokens (`@[user:12]`) are not words: they are left out of the index and of excerpts'
matches. Excerpts (`excerpt`) mark the words of a text that a query matched, as plain text parts.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import snowballstemmer

LANGUAGES = ("en", "fr")
MENTION = re.compile(r"@\[(?:user|role|group):[0-9]{1,19}\]")
_WORD = re.compile(r"[^\W_]+")
# Letters NFKD does not decompose, as PostgreSQL's unaccent writes them.
_LETTERS = str.maketrans({"œ": "oe", "Œ": "OE", "æ": "ae", "Æ": "AE", "ß": "ss", "ø": "o", "Ø": "O", "đ": "d", "Đ": "D", "ł": "l", "Ł": "L", "ı": "i"})

_ENGLISH_STOP = """
i me my myself we our ours ourselves you your yours yourself yourselves he him his himself she her
hers herself it its itself they them their theirs themselves what which who whom this that these
those am is are was were be been being have has had having do does did doing a an the and but if or
because as until while of at by for with about against between into through during before after
above below to from up down in out on off over under again further then once here there when where
why how all any both each few more most other some such no nor not only own same so than too very s
t can will just don should now
"""
_FRENCH_STOP = """
au aux avec ce ces dans de des du elle en et eux il je la le leur lui ma mais me même mes moi mon ne
nos notre nous on ou par pas pour qu que qui sa se ses son sur ta te tes toi ton tu un une vos votre
vous c d j l à m n s t y été étée étées étés étant étante étants étantes suis es est sommes êtes sont
serai seras sera serons serez seront serais serait serions seriez seraient étais était étions étiez
étaient fus fut fûmes fûtes furent sois soit soyons soyez soient fusse fusses fût fussions fussiez
fussent ayant ayante ayantes ayants eu eue eues eus ai as avons avez ont aurai auras aura aurons
aurez auront aurais aurait aurions auriez auraient avais avait avions aviez avaient eut eûmes eûtes
eurent aie aies ait ayons ayez aient eusse eusses eût eussions eussiez eussent
"""
# PostgreSQL compares its stop words with the text after unaccent, so "été" (accented in the list)
# is not a stop word there: these sets are used the same way, against unaccented words.
STOP_WORDS = {"en": frozenset(_ENGLISH_STOP.split()), "fr": frozenset(_FRENCH_STOP.split())}
_STEMMERS = {"en": "english", "fr": "french"}


def unaccent(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.translate(_LETTERS))
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def normalize(word: str) -> str:
    """A word as the index holds it before stemming: no accents, lower case."""
    return unaccent(word).lower()


@dataclass(frozen=True, slots=True)
class Token:
    start: int
    end: int
    word: str  # normalized


def tokens(text: str) -> Iterator[Token]:
    """The words of `text` with their places, mention tokens left out."""
    cleaned = MENTION.sub(lambda m: " " * len(m.group()), text)
    for m in _WORD.finditer(cleaned):
        for word in _WORD.findall(normalize(m.group())):  # a letter may unaccent into two words' worth
            yield Token(m.start(), m.end(), word)


@lru_cache(maxsize=65536)
def stem(word: str, lang: str) -> str | None:
    """The lexeme of a normalized word in `lang`, or None for a stop word."""
    if word in STOP_WORDS[lang]:
        return None
    return _stemmer(lang).stemWord(word)


# A Snowball stemmer keeps state while it stems: one per thread (SQLite calls `stems` from each
# connection's own thread).
_per_thread = threading.local()


def _stemmer(lang: str) -> Any:
    stemmers = getattr(_per_thread, "stemmers", None)
    if stemmers is None:
        stemmers = _per_thread.stemmers = {}
    found = stemmers.get(lang)
    if found is None:
        found = stemmers[lang] = snowballstemmer.stemmer(_STEMMERS[lang])
    return found


def is_stop_word(word: str) -> bool:
    """A stop word in either language: queries leave these out (the index has them in one language only)."""
    return word in STOP_WORDS["en"] or word in STOP_WORDS["fr"]


def stems(text: str | None, lang: str) -> str:
    """The lexemes of a text in `lang`, space-separated, in order (SQLite's index column)."""
    if not text:
        return ""
    out = [s for t in tokens(text) if (s := stem(t.word, lang)) is not None]
    return " ".join(out)


def excerpt(text: str, lexemes: dict[str, frozenset[str]], width: int = 160) -> list[dict[str, object]]:
    """About `width` characters of `text` around its first matched word, as parts `{"text", "hit"}`.

    `lexemes` maps a language to the query's lexemes in it; a word is a hit when its lexeme in either
    language is one of them. The parts are plain text: a client shows `hit` parts marked and escapes
    all of them. A cut start or end carries "…".
    """
    spans = [(t.start, t.end) for t in tokens(text) if any(stem(t.word, lang) in lexemes.get(lang, ()) for lang in LANGUAGES)]
    first = spans[0][0] if spans else 0
    start = max(0, first - width // 3)
    end = min(len(text), start + width)
    start = max(0, min(start, end - width))  # near the end: show the full width before it
    # Cut on spaces, never inside a word.
    if start > 0:
        space = text.find(" ", start, first)
        start = space + 1 if space >= 0 else start
    if end < len(text):
        space = text.rfind(" ", max(start, spans[0][1] if spans else start), end)
        end = space if space > start else end
    parts: list[dict[str, object]] = []
    if start > 0:
        parts.append({"text": "…", "hit": False})
    at = start
    for s, e in spans:
        if s < start or e > end:
            continue
        if s > at:
            parts.append({"text": text[at:s], "hit": False})
        parts.append({"text": text[s:e], "hit": True})
        at = e
    if at < end:
        parts.append({"text": text[at:end], "hit": False})
    if end < len(text):
        parts.append({"text": "…", "hit": False})
    return parts
