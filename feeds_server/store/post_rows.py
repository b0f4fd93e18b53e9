"""A batch of new posts, their audience, idempotency keys and events in one statement (PostgreSQL).

The group commit (actions/post_writer.py) used to cost about nine round trips through the ORM per
batch (BEGIN, the row-level security scope, ids, posts, audience, the org's sequence, events,
event channels, COMMIT). Here it is two statements on the driver connection: the post ids, then
one INSERT … WITH … that writes every table and bumps `orgs.event_seq`. The connection is in
AUTOCOMMIT mode, so that one statement is one transaction: all rows commit together or none do.

Events keep the numbering of store/events.py: the `UPDATE orgs … RETURNING event_seq` takes the
org row's lock and holds it until the statement commits, so an org's numbers follow commit order.

The rows of a new post. This statement and the ORM path (actions/posts.py `write_posts`, which
takes posts with mentions or files, and every post on SQLite) write the same rows for the same post;
tests/api/test_post_rows.py writes one batch through each and compares them:
- `posts`: kind, author, body, group, recipient, `created_at` = the request's time; `module` NULL,
  `data` {}, `comment_count` 0 (the view of actions/post_writer.py `_views` assumes the same).
- `post_audience`: one row per channel of the post, in channel order, `module` NULL, `created_at`
  the post's.
- `idempotency_keys`: when the request had a key, its first response, `created_at` the post's.
- `events`: one `post.created` per post, actor the author, payload `{"post": <its view>}`,
  `channels` the post's audience sorted; numbered from `orgs.event_seq` in the batch's order.
- `event_channels`: one row per channel of each event, with its number and time.
Only the ORM path writes `mentions`, `attachments` and the mention notifications.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from feeds_server.store.driver import integrity_error
from feeds_server.store.events import NewEvent, number_events


@dataclass(frozen=True, slots=True)
class PostRow:
    """One new post (no mentions, no files: those go through the ORM path)."""

    id: int
    kind: str
    author_id: int
    body: str
    group_id: int | None
    recipient_id: int | None
    channels: Sequence[str]
    created_at: datetime


@dataclass(frozen=True, slots=True)
class KeyRow:
    """The stored first response of an idempotent request (store/idempotency.py)."""

    user_id: int
    key: str
    fingerprint: str
    status: int
    response: bytes
    created_at: datetime


_NEXT_IDS = "SELECT nextval('posts_id_seq'::regclass) FROM generate_series(1, $1::int)"

# $1 org; posts $2-$8; audience $9-$11; idempotency keys $12-$17; events $18-$22; event channels $23-$25.
_WRITE = """
WITH new_posts AS (
    INSERT INTO posts (id, org_id, kind, author_id, body, group_id, recipient_id, module, data, comment_count, created_at)
    SELECT p.id, $1, p.kind, p.author_id, p.body, p.group_id, p.recipient_id, NULL, '{}'::jsonb, 0, p.created_at
    FROM unnest($2::bigint[], $3::varchar[], $4::bigint[], $5::text[], $6::bigint[], $7::bigint[], $8::timestamptz[])
        AS p(id, kind, author_id, body, group_id, recipient_id, created_at)
), audience AS (
    INSERT INTO post_audience (org_id, post_id, channel, module, created_at)
    SELECT $1, a.post_id, a.channel, NULL, a.created_at
    FROM unnest($9::bigint[], $10::varchar[], $11::timestamptz[]) AS a(post_id, channel, created_at)
), keys AS (
    INSERT INTO idempotency_keys (org_id, user_id, key, fingerprint, status, response, created_at)
    SELECT $1, k.user_id, k.key, k.fingerprint, k.status, k.response, k.created_at
    FROM unnest($12::bigint[], $13::varchar[], $14::varchar[], $15::int[], $16::bytea[], $17::timestamptz[])
        AS k(user_id, key, fingerprint, status, response, created_at)
), seq AS (
    UPDATE orgs SET event_seq = event_seq + cardinality($18::varchar[]) WHERE id = $1 RETURNING event_seq
), new_events AS (
    INSERT INTO events (org_id, seq, type, actor_user_id, payload, channels, created_at)
    SELECT $1, seq.event_seq - cardinality($18::varchar[]) + e.n, e.type, e.actor_user_id, e.payload, e.channels, e.created_at
    FROM seq, unnest($18::varchar[], $19::bigint[], $20::json[], $21::jsonb[], $22::timestamptz[])
        WITH ORDINALITY AS e(type, actor_user_id, payload, channels, created_at, n)
), event_channels_ AS (
    INSERT INTO event_channels (org_id, channel, seq, created_at)
    SELECT $1, c.channel, seq.event_seq - cardinality($18::varchar[]) + c.n, c.created_at
    FROM seq, unnest($23::bigint[], $24::varchar[], $25::timestamptz[]) AS c(n, channel, created_at)
)
SELECT event_seq FROM seq
"""


async def next_post_ids(driver: Any, count: int) -> list[int]:
    """Ids for `count` new posts, increasing (taken outside the write: a sequence is not transactional)."""
    return sorted(row[0] for row in await driver.fetch(_NEXT_IDS, count))


async def write_posts_and_events(driver: Any, org_id: int, posts: Sequence[PostRow], keys: Sequence[KeyRow], events: Sequence[NewEvent]) -> None:
    """Insert the posts with their audience, the idempotency keys and the events (numbered here,
    `seq` set on each) in one statement, which commits on its own. The connection must see the org
    (store/scope.py `driver_sees_org`)."""
    audience = [(p.id, ch, p.created_at) for p in posts for ch in p.channels]
    payloads = []
    for ev in events:  # kept on the event: its publication reuses them (realtime/history.py)
        ev.payload_json = orjson.dumps(ev.payload, option=orjson.OPT_NON_STR_KEYS)
        payloads.append(ev.payload_json.decode())
    channels = [(n, ch, ev.created_at) for n, ev in enumerate(events, 1) for ch in ev.channels]
    args = (
        org_id,
        [p.id for p in posts], [p.kind for p in posts], [p.author_id for p in posts], [p.body for p in posts],
        [p.group_id for p in posts], [p.recipient_id for p in posts], [p.created_at for p in posts],
        [a[0] for a in audience], [a[1] for a in audience], [a[2] for a in audience],
        [k.user_id for k in keys], [k.key for k in keys], [k.fingerprint for k in keys], [k.status for k in keys],
        [k.response for k in keys], [k.created_at for k in keys],
        [ev.type for ev in events], [ev.actor_user_id for ev in events], payloads,
        [_json(ev.channels) for ev in events], [ev.created_at for ev in events],
        [c[0] for c in channels], [c[1] for c in channels], [c[2] for c in channels],
    )
    try:
        last = await driver.fetchval(_WRITE, *args)
    except Exception as exc:
        raise integrity_error(exc, _WRITE) from exc
    assert last is not None, "the posts' foreign key to orgs guarantees the org's row"
    number_events(events, last)


def _json(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()
