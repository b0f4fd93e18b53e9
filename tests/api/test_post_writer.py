"""Group commit of new posts (actions/post_writer.py): concurrent posts of an org share transactions,
each post still commits with its event, and one failing post fails alone."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest
from sqlalchemy import func, select

from feeds_server.actions import post_writer
from feeds_server.store.models import Event, Post
from feeds_server.store.scope import org_session
from tests import factory


@pytest.fixture
async def pair(client, settings):  # type: ignore[no-untyped-def]
    owner = await factory.sign_up(client, factory.unique("Owner"))
    org = await factory.create_org(owner)
    ann = await factory.sign_up(client, factory.unique("Ann"))
    await factory.invite_and_join(owner, org["slug"], ann, settings.mail_dir)
    return owner, ann, org


@pytest.fixture
def batches(monkeypatch):  # type: ignore[no-untyped-def]
    """The sizes of the batches the writer commits, by either path (the ORM's, or PostgreSQL's driver
    path for posts without mentions or files). A post whose body is "breaks its batch" is turned into
    one the database refuses (its group vanished after it was checked)."""
    sizes: list[int] = []
    orm, direct = post_writer.write_posts, post_writer.write_new_posts

    async def recording(session, items):  # type: ignore[no-untyped-def]
        sizes.append(len(items))
        await asyncio.sleep(0.02)  # a slow disk: what arrives meanwhile queues for the next batch
        items = [replace(i, group_id=2**40) if i.body == "breaks its batch" else i for i in items]
        return await orm(session, items)

    async def recording_direct(driver, org_id, rows, keys, events):  # type: ignore[no-untyped-def]
        sizes.append(len(rows))
        await asyncio.sleep(0.02)
        rows = [replace(r, group_id=2**40) if r.body == "breaks its batch" else r for r in rows]
        return await direct(driver, org_id, rows, keys, events)

    monkeypatch.setattr(post_writer, "write_posts", recording)
    monkeypatch.setattr(post_writer, "write_new_posts", recording_direct)
    return sizes


async def test_concurrent_posts_share_transactions_and_each_has_its_event(pair, services, batches):
    owner, ann, org = pair
    base = f"/api/v1/orgs/{org['slug']}"
    replies = await asyncio.gather(*(
        (owner if i % 2 else ann).post(f"{base}/posts", json={"body": f"post {i} @[user:{ann.id}]" if i % 5 == 0 else f"post {i}"})
        for i in range(40)
    ))
    assert [r.status_code for r in replies] == [201] * 40
    ids = [r.json()["post"]["id"] for r in replies]
    assert len(set(ids)) == 40
    assert sum(batches) == 40 and len(batches) < 40, "concurrent posts were not grouped"
    async with org_session(services.sessions, org["id"]) as s:
        seqs = list((await s.execute(select(Event.seq).where(Event.type == "post.created").order_by(Event.seq))).scalars())
        posted = {e["post"]["id"] for e in (await s.execute(select(Event.payload).where(Event.type == "post.created"))).scalars()}
        told = [e["notifications"] for e in (await s.execute(select(Event.payload).where(Event.type == "notifications.created"))).scalars()]
    assert posted == set(ids)
    assert len(seqs) == 40 and len(set(seqs)) == 40
    # Ann mentioned by the owner in posts 5, 15, 25, 35 (her own mentions notify nobody): one live
    # event per recipient and transaction, listing that batch's notifications.
    assert sorted(n["post_id"] for notes in told for n in notes) == sorted(ids[i] for i in (5, 15, 25, 35))
    assert 1 <= len(told) <= 4


async def test_a_post_that_breaks_its_batch_fails_alone(pair, services, batches):
    owner, ann, org = pair
    base = f"/api/v1/orgs/{org['slug']}"
    bodies = [f"fine {i}" for i in range(12)]
    bodies.insert(5, "breaks its batch")
    replies = await asyncio.gather(*(ann.post(f"{base}/posts", json={"body": b}) for b in bodies))
    by_body = dict(zip(bodies, (r.status_code for r in replies)))
    assert by_body.pop("breaks its batch") == 409
    assert set(by_body.values()) == {201}
    assert max(batches) > 1
    async with org_session(services.sessions, org["id"]) as s:
        stored = set((await s.execute(select(Post.body))).scalars())
    assert stored == {b for b in bodies if b != "breaks its batch"}


async def test_concurrent_retries_with_one_idempotency_key_create_one_post(pair, services):
    owner, ann, org = pair
    base = f"/api/v1/orgs/{org['slug']}"
    headers = {"Idempotency-Key": "same-key-1"}
    replies = await asyncio.gather(*(ann.post(f"{base}/posts", json={"body": "only once"}, headers=headers) for _ in range(6)))
    assert {r.status_code for r in replies} == {201}
    assert len({r.json()["post"]["id"] for r in replies}) == 1
    async with org_session(services.sessions, org["id"]) as s:
        assert (await s.execute(select(func.count()).select_from(Post))).scalar_one() == 1
