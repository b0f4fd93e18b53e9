"""SQL functions the schema's SQLite triggers call, registered on every SQLite connection.

`search_stems(text, lang)` (lang `en` or `fr`) returns the lexemes the search index holds for a
text (domain/search_text.py): the triggers of migration 0012 fill the FTS5 table with it, in the
transaction that writes the post or comment. `search_rank` scores a hit (store/search.py). Both are
deterministic, so SQLite may use them anywhere.

The listener is on the Engine class, so any engine of the process (the server's, the migrations',
a test's own) has the function: a connection without it could not write a post.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine

from feeds_server.domain import search_text


def search_stems(text: str | None, lang: str | None) -> str:
    return search_text.stems(text, lang if lang in search_text.LANGUAGES else "en")


def search_rank(en: str | None, fr: str | None, query_en: str | None, query_fr: str | None) -> int:
    """How well an item's lexemes (`en`, `fr`: its two index columns) match the query's, as an integer.

    `query_en` and `query_fr` hold the lexemes of each query word in the same order. A word counts
    by how often it occurs (in whichever language finds it more), with diminishing returns. The
    score depends on this item and the query only, never on the other items of the index (as
    PostgreSQL's `ts_rank`, and unlike FTS5's `bm25`): it tells nothing of items a reader cannot see.
    """
    doc_en, doc_fr = Counter((en or "").split()), Counter((fr or "").split())
    words = list(zip((query_en or "").split(), (query_fr or "").split(), strict=False))
    if not words:
        return 0
    total = sum(math.log2(1 + max(doc_en[e], doc_fr[f])) for e, f in words)
    return int(total / len(words) * 1_000_000)


def register(dbapi_conn: Any) -> None:
    dbapi_conn.create_function("search_stems", 2, search_stems, deterministic=True)
    dbapi_conn.create_function("search_rank", 4, search_rank, deterministic=True)


@event.listens_for(Engine, "connect")
def _on_connect(dbapi_conn: Any, _record: Any) -> None:
    if "sqlite" in type(dbapi_conn).__module__ or "sqlite" in type(dbapi_conn).__name__.lower():
        register(dbapi_conn)
