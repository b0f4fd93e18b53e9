"""One search query over both databases' full-text indexes.

PostgreSQL matches `search_items.tsv` (GIN) with a tsquery built by `feeds_search_word` and
`feeds_search_phrase` (migration 0012) and ranks by `ts_rank`; SQLite matches the FTS5 table
`search_fts` with the lexemes of domain/search_text.py and ranks by `search_rank`
(store/sqlite_functions.py). Either score depends on the item and the query alone, never on other
items (FTS5's `bm25` would weigh words by the whole index, other orgs' and hidden items included).
The score is an integer (higher is better) so that a page ends on an exact (score, id) position,
and the next page starts strictly after it: keyset pagination over a ranking. Only a window of
the newest matches is ranked at a time (`find`), so a search costs about the same however many
items match; the cursor goes on to older windows.

Visibility is part of the query, never applied to a page afterwards: an item is found only when
its post has an audience row on one of the reader's channels, and never when its module is one
the admin turned off. A hit, its rank and its excerpt can only come from an item the reader sees.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from feeds_server.domain import search_text
from feeds_server.domain.search_query import SearchCursor, SearchQuery

# ts_rank is a small float: scaled to an integer for the cursor.
_SCALE = 1_000_000
# How the newest matches are taken on PostgreSQL, chosen per query from the planner's estimates
# (its own choice between the two, under a LIMIT, is unreliable: it prices a `tsv @@ query` test
# like a cheap comparison, and may walk most of an index backwards for a two-word query that a GIN
# bitmap answers in a few milliseconds):
# - "scan": walk an (org_id, id) or (org_id, <filter>, id) index newest first, testing each row,
#   until window + 1 matches: about window x rows / matches rows read;
# - "bitmap": all the matches from the GIN index, then the newest window + 1 of them: about
#   `matches` rows read, each also checked against the audience.
# A scanned row costs about an eighth of a bitmap match (measured on the benchmark's 1,000,000
# items, docs/benchmarks.md), so the scan wins when matches^2 > window x rows / 8.
_SCAN_ROW_COST = 1 / 8
# For the search statement only (local to the request's transaction, which the search route opens
# for that reason, and put back at once after the statement; a failed or cancelled request's rollback
# ends them too, so a pooled connection never keeps them): the items are read from memory, so a random page
# costs about a sequential one (the default 4 prices a walk of (org_id, author_id, id) above one of
# (org_id, id) that reads three times the rows), and parallel workers only add start-up time.
# The settings these change, put back after the search statement (the rest of the request plans as usual).
_PG_CHANGED = ("random_page_cost", "max_parallel_workers_per_gather", "enable_bitmapscan", "enable_hashjoin", "enable_mergejoin")
_PG_SETTINGS = (
    "SELECT " + ", ".join(f"was.s{n}" for n in range(len(_PG_CHANGED))) + ", "
    "set_config('random_page_cost', '1.1', true), set_config('max_parallel_workers_per_gather', '0', true) "
    "FROM (SELECT " + ", ".join(f"current_setting('{name}') AS s{n}" for n, name in enumerate(_PG_CHANGED)) + " OFFSET 0) AS was"
)
_PG_RESTORE = "SELECT " + ", ".join(f"set_config('{name}', :s{n}, true)" for n, name in enumerate(_PG_CHANGED))
_PG_CHOICE = (
    "SELECT set_config('enable_bitmapscan', :bitmap, true), set_config('enable_hashjoin', :hash, true), "
    "set_config('enable_mergejoin', :hash, true)"
)


@dataclass(frozen=True, slots=True)
class Hit:
    id: int
    post_id: int
    comment_id: int | None
    kind: str
    score: int


@dataclass(frozen=True)
class Scope:
    """What the reader may see: their channels, and the modules the admin turned off."""

    org_id: int
    channels: Sequence[str]
    hidden_modules: Sequence[str] = ()


def fts5_match(query: SearchQuery) -> str:
    """The FTS5 expression for the words and phrases: each must match in English or in French."""
    parts = []
    for words in [(w,) for w in query.words] + list(query.phrases):
        per_lang = []
        for lang in search_text.LANGUAGES:
            lexemes = [search_text.stem(w, lang) for w in words]
            phrase = " ".join(x for x in lexemes if x)
            if phrase:
                per_lang.append(f'{lang} : "{phrase.replace(chr(34), chr(34) * 2)}"')
        if per_lang:
            parts.append("(" + " OR ".join(per_lang) + ")")
    return " AND ".join(parts)


@dataclass(frozen=True, slots=True)
class Found:
    """A page of hits from one window, and where the window stands."""

    hits: list[Hit]
    top: int | None  # the window's newest candidate (its upper bound for the next pages); None: no candidate
    older_top: int | None  # the newest match older than the window, where the next window starts; None: none


async def find(
    session: AsyncSession,
    scope: Scope,
    query: SearchQuery,
    group_ids: Sequence[int] | None,
    cursor: SearchCursor | None,
    limit: int,
    window: int,
) -> Found:
    """Up to `limit` hits of one window, best first (then newest), after the cursor's (score, id).

    The window: the `window` newest matches the reader may see (by index id, which grows with every
    new item), at most `cursor.top` when given. Only these are scored: the cost of a search is
    bounded by the window, not by how many items match. `group_ids`: the `in:` filter resolved to
    ids (None: no such filter).
    """
    pg = session.bind.dialect.name == "postgresql"
    params: dict[str, Any] = {"org": scope.org_id, "channels": list(scope.channels), "limit": limit, "window": window, "candidates": window + 1}
    expanding = ["channels"]
    where = [
        "s.org_id = :org",
        "EXISTS (SELECT 1 FROM post_audience AS a WHERE a.org_id = s.org_id AND a.post_id = s.post_id AND a.channel IN :channels)",
    ]

    def condition(sql: str, name: str, values: Sequence[Any]) -> None:
        where.append(sql)
        params[name] = list(values)
        expanding.append(name)

    if scope.hidden_modules:
        condition("(s.module IS NULL OR s.module NOT IN :hidden)", "hidden", scope.hidden_modules)
    if query.authors:
        condition("s.author_id IN :authors", "authors", query.authors)
    if group_ids is not None:
        condition("s.group_id IN :groups", "groups", group_ids)
    if query.modules:
        condition("s.module IN :modules", "modules", query.modules)
    if query.types:
        condition("s.kind IN :types", "types", query.types)
    if query.has_file:
        where.append("s.has_file")
    if query.before is not None:
        where.append("s.created_at < :before")
        params["before"] = _when(query.before, pg)
    if query.after is not None:
        where.append("s.created_at >= :after")
        params["after"] = _when(query.after, pg)
    if cursor is not None:
        where.append("s.id <= :top")
        params["top"] = cursor.top

    # The candidates: the window's matches and the next one (it says whether older matches exist),
    # newest first, so that PostgreSQL picks the cheaper of a GIN bitmap and sort (rare words) and a
    # backward scan of (org_id, id) that stops after window + 1 matches (common words).
    if not query.has_text:
        source, keep, score = "search_items AS s", "", "0"
    elif pg:
        pieces = []
        for n, w in enumerate(query.words):
            pieces.append(f"feeds_search_word(:w{n})")
            params[f"w{n}"] = w
        for n, p in enumerate(query.phrases):
            pieces.append(f"feeds_search_phrase(:p{n})")
            params[f"p{n}"] = " ".join(p)
        source = f"search_items AS s CROSS JOIN (SELECT {' && '.join(pieces)} AS q) AS tq"
        where.append("s.tsv @@ tq.q")
        keep, score = ", s.tsv AS tsv, tq.q AS q", f"CAST(ts_rank(c.tsv, c.q) * {_SCALE} AS BIGINT)"
    else:
        source = "search_fts JOIN search_items AS s ON s.id = search_fts.rowid"
        where.insert(0, "search_fts MATCH :match")
        params["match"] = fts5_match(query)
        words = [*query.words, *(w for p in query.phrases for w in p)]
        params["rank_en"], params["rank_fr"] = (" ".join(search_text.stem(w, lang) or "" for w in words) for lang in search_text.LANGUAGES)
        keep, score = ", search_fts.en AS en, search_fts.fr AS fr", "search_rank(c.en, c.fr, :rank_en, :rank_fr)"
    candidates = (
        f"SELECT s.id AS id, s.post_id AS post_id, s.comment_id AS comment_id, s.kind AS kind{keep} "
        f"FROM {source} WHERE {' AND '.join(where)} ORDER BY {{order}} DESC LIMIT :candidates"
    )
    binds = [bindparam(name, expanding=True) for name in expanding]
    order = "s.id"
    if pg:
        was = (await session.execute(text(_PG_SETTINGS))).one()
        scan = True
        if query.has_text:
            try:
                # The audience check is left out of the estimate: it seldom filters much, and costs planning time.
                filters = [w for w in where if "post_audience" not in w]
                matches, rows = await _estimate(session, (
                    f"SELECT 1 FROM {source} WHERE {' AND '.join(filters)} UNION ALL "
                    f"SELECT 2 FROM search_items AS s WHERE {' AND '.join(w for w in filters if 'tq.q' not in w)}"
                ), params, binds)
            except BaseException:
                await _restore(session, was, failed=True)
                raise
            scan = matches * matches > window * rows * _SCAN_ROW_COST
        if not scan:
            order = "s.id + 0"  # no index gives this order: the GIN bitmap, then the newest
        settings = {"bitmap": "off" if scan else "on", "hash": "on" if scan else "off"}
        await session.execute(text(_PG_CHOICE), settings)
    candidates = candidates.format(order=order)
    # Each window row knows the window's size and bounds; the row past the window (the oldest
    # candidate when there are window + 1) comes first, unscored, as the marker of older matches.
    windowed = (
        "SELECT c.id AS id, c.post_id AS post_id, c.comment_id AS comment_id, c.kind AS kind, "
        f"CASE WHEN c.id = min(c.id) OVER () AND count(*) OVER () > :window THEN 1 ELSE 0 END AS older, "
        "max(c.id) OVER () AS top, "
        f"CASE WHEN c.id = min(c.id) OVER () AND count(*) OVER () > :window THEN 0 ELSE {score} END AS score "
        f"FROM ({candidates}) AS c"
    )
    after = ""
    if cursor is not None and cursor.score is not None:
        after = "AND (found.score < :after_score OR (found.score = :after_score AND found.id < :after_id))"
        params["after_score"], params["after_id"] = cursor.score, cursor.item_id
    sql = (
        "SELECT found.id, found.post_id, found.comment_id, found.kind, found.score, found.older, found.top "
        f"FROM ({windowed}) AS found WHERE found.older = 1 OR (1 = 1 {after}) "
        "ORDER BY found.older DESC, found.score DESC, found.id DESC LIMIT :limit + 1"
    )
    stmt = text(sql).bindparams(*binds)
    try:
        rows = (await session.execute(stmt, params)).all()
    except BaseException:
        if pg:
            await _restore(session, was, failed=True)
        raise
    if pg:
        await _restore(session, was)
    older_top = rows[0].id if rows and rows[0].older else None
    hits = [Hit(id=r.id, post_id=r.post_id, comment_id=r.comment_id, kind=r.kind, score=max(0, int(r.score))) for r in rows if not r.older]
    if older_top is None:
        hits = hits[:limit]
    return Found(hits=hits, top=int(rows[0].top) if rows else None, older_top=older_top)


async def _restore(session: AsyncSession, was: Any, failed: bool = False) -> None:
    """Put the connection's planner settings back. After a failed statement inside a transaction this
    cannot run, and need not: the transaction's rollback undoes them; the first error is the one raised."""
    try:
        await session.execute(text(_PG_RESTORE), {f"s{n}": was[n] for n in range(len(_PG_CHANGED))})
    except DBAPIError:
        if not failed:
            raise


async def _estimate(session: AsyncSession, sql: str, params: dict[str, Any], binds: list[Any]) -> list[float]:
    """The planner's estimates of the rows of each part of `sql`, a UNION ALL (PostgreSQL): one planning."""
    used = {k: v for k, v in params.items() if f":{k}" in sql}
    plan = (await session.execute(text(f"EXPLAIN (FORMAT JSON) {sql}").bindparams(*(b for b in binds if b.key in used)), used)).scalar_one()
    if isinstance(plan, str):
        plan = json.loads(plan)
    node = plan[0]["Plan"]
    while node.get("Node Type") != "Append" and len(node.get("Plans", ())) == 1:
        node = node["Plans"][0]
    rows = [float(part["Plan Rows"]) for part in node.get("Plans", ())]
    return rows if len(rows) == 2 else [0.0, 0.0]  # an unexpected plan: the bitmap, bounded by the matches


def _when(at: datetime, pg: bool) -> Any:
    # SQLite stores UTC times as naive text (store/base.py UTCDateTime).
    return at if pg else at.replace(tzinfo=None).isoformat(sep=" ")
