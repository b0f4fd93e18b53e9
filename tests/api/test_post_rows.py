"""The two ways a new post is written store the same rows (actions/post_writer.py): PostgreSQL's
driver path for posts without mentions or files (store/post_rows.py) and the ORM path
(actions/posts.py `write_posts`) for the others. The same posts go through each; what lands in
`posts`, `post_audience`, `idempotency_keys`, `events` and `event_channels` must match but for ids,
event numbers and the events' times."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from sqlalchemy import select

from feeds_server.actions import post_writer
from feeds_server.actions.posts import PRIVATE, STATUS, NewPost
from feeds_server.domain.audience import ORG, user_channel
from feeds_server.store.base import utcnow
from feeds_server.store.models import Event, EventChannel, IdempotencyKey, Post, PostAudience
from feeds_server.store.scope import org_session
from tests.api.test_post_writer import pair  # noqa: F401 - fixture: an org of two

pytestmark = pytest.mark.parametrize("backend", ["postgres"])  # the driver path runs on PostgreSQL only


def _items(owner: Any, ann: Any) -> list[NewPost]:
    now = utcnow()
    return [
        NewPost(ann.id, STATUS, "a status post to the org", None, None, frozenset({ORG}), (), (), now, ann.name),
        NewPost(ann.id, PRIVATE, "a private word", None, owner.id, frozenset({user_channel(ann.id), user_channel(owner.id)}),
                (), (), now, ann.name),
    ]


def _remember(user_id: int, key: str) -> post_writer.Remember:
    return post_writer.Remember(user_id, key, "same request", render=lambda view: (201, orjson.dumps({"post": view})))


async def _write(commit: Any, org_id: int, items: list[NewPost], key: str) -> list[int]:
    """One batch through one of the writer's two commits, past the choice `PostWriter._parts` makes;
    returns the new posts' ids."""
    loop = asyncio.get_running_loop()
    batch = [post_writer._Pending(i, _remember(i.author_id, f"{key}-{n}"), loop.create_future()) for n, i in enumerate(items)]
    await commit(org_id, batch)
    return [(await p.done)["id"] for p in batch]


def _columns(row: Any, *leave_out: str) -> dict[str, Any]:
    return {c.key: getattr(row, c.key) for c in row.__table__.columns if c.key not in leave_out}


def _without_ids(payload: dict[str, Any], places: dict[int, int]) -> dict[str, Any]:
    """A `{"post": view}` document with the post's id replaced by its place in the batch."""
    return {**payload, "post": {**payload["post"], "id": f"post #{places[payload['post']['id']]}"}}


async def _rows(services: Any, org_id: int, post_ids: list[int], key: str) -> dict[str, Any]:
    """What one write left in the tables, with ids, event numbers and event times left out."""
    places = {pid: n for n, pid in enumerate(post_ids)}
    async with org_session(services.sessions, org_id) as s:
        posts = (await s.execute(select(Post).where(Post.id.in_(post_ids)).order_by(Post.id))).scalars().all()
        audience = (await s.execute(
            select(PostAudience).where(PostAudience.post_id.in_(post_ids)).order_by(PostAudience.post_id, PostAudience.channel)
        )).scalars().all()
        keys = (await s.execute(
            select(IdempotencyKey).where(IdempotencyKey.key.startswith(f"{key}-")).order_by(IdempotencyKey.key)
        )).scalars().all()
        events = [e for e in (await s.execute(select(Event).where(Event.type == "post.created").order_by(Event.seq))).scalars()
                  if e.payload["post"]["id"] in places]
        seqs = [e.seq for e in events]
        channels = (await s.execute(
            select(EventChannel).where(EventChannel.seq.in_(seqs)).order_by(EventChannel.seq, EventChannel.channel)
        )).scalars().all()
    by_seq = {seq: n for n, seq in enumerate(seqs)}
    return {
        "posts": [_columns(p, "id") for p in posts],
        "post_audience": [{**_columns(a, "id", "post_id"), "post": places[a.post_id]} for a in audience],
        "idempotency_keys": [
            {**_columns(k, "id", "key", "response"), "response": _without_ids(orjson.loads(k.response), places)}
            for k in keys
        ],
        "events": [{**_columns(e, "id", "seq", "payload", "created_at"), "payload": _without_ids(e.payload, places)} for e in events],
        "event_channels": [{**_columns(c, "id", "seq", "created_at"), "event": by_seq[c.seq]} for c in channels],
    }


async def test_the_driver_path_and_the_orm_path_write_the_same_rows(pair, services):
    """A status post and a private message, each with an idempotency key, written once by each path."""
    owner, ann, org = pair
    items = _items(owner, ann)
    # A private message notifies its recipient, so the writer sends it by the ORM path; the driver
    # path's statement must still write its rows alike.
    assert post_writer._plain(items[0]) and not post_writer._plain(items[1])
    writer = post_writer.writer_for(services)
    by_driver = await _write(writer._commit_direct, org["id"], items, "driver")
    by_orm = await _write(writer._commit_orm, org["id"], items, "orm")
    assert len(set(by_driver + by_orm)) == 4

    driver_rows = await _rows(services, org["id"], by_driver, "driver")
    orm_rows = await _rows(services, org["id"], by_orm, "orm")
    assert [len(driver_rows[t]) for t in driver_rows] == [2, 3, 2, 2, 3]
    for table in driver_rows:
        assert driver_rows[table] == orm_rows[table], table
