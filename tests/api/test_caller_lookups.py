"""Posting's fast paths (store/callers.py, store/post_rows.py): callers of one org arriving together
are read in one statement, and posts without mentions or files are written with their events in
one statement. Each request must still be answered as its own caller, and every post keeps its
event, numbered in commit order."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select, text

from feeds_server.store.models import Event, Post
from feeds_server.store.scope import org_session
from tests import factory


async def _org_of_three(client, settings):  # type: ignore[no-untyped-def]
    owner = await factory.sign_up(client, factory.unique("Owner"))
    org = await factory.create_org(owner)
    ann = await factory.sign_up(client, factory.unique("Ann"))
    bob = await factory.sign_up(client, factory.unique("Bob"))
    for member in (ann, bob):
        await factory.invite_and_join(owner, org["slug"], member, settings.mail_dir)
    return owner, ann, bob, org


async def test_callers_read_together_are_each_answered_as_themselves(client, settings):
    owner, ann, bob, org = await _org_of_three(client, settings)
    stranger = await factory.sign_up(client, factory.unique("Stranger"))
    signed_out = await factory.sign_in(client, ann.email)
    assert (await signed_out.post("/api/v1/auth/signout")).status_code == 204
    base = f"/api/v1/orgs/{org['slug']}"
    actors = [owner, ann, bob, stranger, signed_out] * 6
    replies = await asyncio.gather(*(a.post(f"{base}/posts", json={"body": f"post {i}"}) for i, a in enumerate(actors)))
    for i, (actor, reply) in enumerate(zip(actors, replies)):
        if actor is stranger:
            assert reply.status_code == 404  # not a member answers as no such org
        elif actor is signed_out:
            assert reply.status_code == 401
        else:
            assert reply.status_code == 201, reply.text
            post = reply.json()["post"]
            assert (post["author"]["id"], post["body"]) == (actor.id, f"post {i}")
    feeds = await asyncio.gather(*(a.get(f"{base}/feed") for a in (ann, bob, stranger, signed_out)))
    assert [r.status_code for r in feeds] == [200, 200, 404, 401]


async def test_posts_written_together_keep_their_events_in_commit_order(client, settings, services):
    owner, ann, bob, org = await _org_of_three(client, settings)
    base = f"/api/v1/orgs/{org['slug']}"
    writers = [owner, ann, bob] * 10
    replies = await asyncio.gather(*(w.post(f"{base}/posts", json={"body": f"p{i}"}) for i, w in enumerate(writers)))
    assert {r.status_code for r in replies} == {201}
    views = {r.json()["post"]["id"]: r.json()["post"] for r in replies}
    async with org_session(services.sessions, org["id"]) as s:
        events = list((await s.execute(select(Event).where(Event.type == "post.created").order_by(Event.seq))).scalars())
        stored = {p.id: p for p in (await s.execute(select(Post))).scalars()}
    assert set(stored) == set(views)
    seqs = [e.seq for e in events]
    assert seqs == list(range(seqs[0], seqs[0] + len(views)))  # no gap, no repeat
    for e in events:
        post = e.payload["post"]
        assert post["id"] in views and post["author"]["id"] == e.actor_user_id
        assert post["body"] == views[post["id"]]["body"] == stored[post["id"]].body
        assert e.channels == ["org"]
    # Posts of one batch are numbered in the order of their ids, and batches in commit order.
    assert [e.payload["post"]["id"] for e in events] == sorted(views)


@pytest.mark.parametrize("backend", ["postgres"])  # the driver paths are PostgreSQL's
async def test_posting_goes_on_after_the_database_closed_the_idle_connections(client, settings, services, backend):
    """A PostgreSQL restart closes every connection; the driver paths (caller lookup, batch write)
    open new ones instead of failing the next requests on the closed ones."""
    owner, ann, bob, org = await _org_of_three(client, settings)
    base = f"/api/v1/orgs/{org['slug']}"
    for author in (owner, ann, bob):
        assert (await author.post(f"{base}/posts", json={"body": "before"})).status_code == 201
    async with services.engine.connect() as conn:
        me = (await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        killed = (await conn.execute(
            text("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = current_database() AND usename = current_user AND pid <> :me"),
            {"me": me},
        )).scalar_one()
    assert killed >= 1
    await asyncio.sleep(0.2)  # the closes reach the idle connections
    replies = [await a.post(f"{base}/posts", json={"body": "after"}) for a in (owner, ann, bob, owner)]
    assert [r.status_code for r in replies] == [201] * 4, [r.text for r in replies]
    # The pool's own idle connections were killed too (sign-ups and sign-ins now run a second short
    # transaction, so the pool holds more than one): let them go before the fixture empties the tables.
    await services.engine.dispose()
