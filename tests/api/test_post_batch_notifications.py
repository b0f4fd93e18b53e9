"""The notifications of a batch of new posts cost the batch, not each post: mentions notify in one
call for the whole batch, and group posts stay on PostgreSQL's driver path (actions/post_writer.py)
until someone in the org chose group posts. On SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from sqlalchemy import event, select, text

from feeds_server.actions import post_writer
from feeds_server.actions.notifications import GROUP_POSTS_CHOSEN_SQL
from feeds_server.actions.posts import Reader, prepare_post, write_posts
from feeds_server.store.models import Notification
from feeds_server.store.scope import account_session, org_session
from tests import factory

base = factory.org_path


@pytest.fixture
async def team(client, settings):  # type: ignore[no-untyped-def]
    return await factory.team(client, settings.mail_dir)


@pytest.fixture
def direct(monkeypatch):  # type: ignore[no-untyped-def]
    """The bodies of the posts written on PostgreSQL's driver path."""
    bodies: list[str] = []
    write = post_writer.write_new_posts

    async def recording(driver, org_id, rows, keys, events):  # type: ignore[no-untyped-def]
        bodies.extend(r.body for r in rows)
        return await write(driver, org_id, rows, keys, events)

    monkeypatch.setattr(post_writer, "write_new_posts", recording)
    return bodies


async def _notes(actor, org) -> list[dict]:  # type: ignore[no-untyped-def]
    return (await actor.get(f"{base(org)}/notifications")).json()["notifications"]


async def test_group_posts_take_the_fast_path_until_someone_chooses_them(team, services, direct):
    owner, ann, bob, org = team
    r = await owner.post(f"{base(org)}/groups", json={"name": "Crew", "sources": [{"type": "user", "id": u.id} for u in (ann, bob)]})
    group = r.json()["group"]
    fast = not services.settings.is_sqlite

    assert (await ann.post(f"{base(org)}/posts", json={"body": "before", "group_id": group["id"]})).status_code == 201
    assert ("before" in direct) is fast
    assert await _notes(bob, org) == []

    r = await bob.patch(f"{base(org)}/notification-settings", json={"channels": {"group_post": {"in_app": True}}})
    assert r.status_code == 200, r.text
    assert (await ann.post(f"{base(org)}/posts", json={"body": "after", "group_id": group["id"]})).status_code == 201
    assert "after" not in direct, "someone chose group posts: the ORM path notifies them"
    [note] = await _notes(bob, org)
    assert note["kind"] == "group_post" and note["data"]["excerpt"] == "after"
    assert (await ann.post(f"{base(org)}/posts", json={"body": "a status"})).status_code == 201
    assert ("a status" in direct) is fast, "status posts keep the fast path whatever anyone chose"


async def test_the_group_post_check_is_answered_by_its_index(services, team):
    if services.settings.is_sqlite:
        pytest.skip("the driver path and its check are PostgreSQL's")
    owner, ann, bob, org = team
    async with account_session(services.sessions) as s:
        await s.execute(text("SET LOCAL enable_seqscan = off"))
        plan = "\n".join((await s.execute(text("EXPLAIN " + GROUP_POSTS_CHOSEN_SQL.replace("$1", str(org["id"]))))).scalars())
    assert "ix_notification_settings_group_post" in plan, plan


async def test_the_mentions_of_a_batch_cost_no_more_reads_than_those_of_one_post(team, services):
    owner, ann, bob, org = team
    author = Reader(ann.id, None, False)
    body = f"hi @[user:{bob.id}] and @[user:{owner.id}]"

    async def statements(n: int) -> int:
        seen: list[str] = []

        def count(conn, cursor, statement, *args):  # type: ignore[no-untyped-def]
            if statement.lstrip().upper().startswith("SELECT"):  # SQLite inserts row by row where RETURNING is needed
                seen.append(statement)

        async with org_session(services.sessions, org["id"]) as s:
            now = datetime.now(timezone.utc)
            items = [await prepare_post(s, author, f"{body} {i}", now) for i in range(n)]
            event.listen(services.engine.sync_engine, "before_cursor_execute", count)
            try:
                await write_posts(s, items)
            finally:
                event.remove(services.engine.sync_engine, "before_cursor_execute", count)
        return len(seen)

    one, eight = await statements(1), await statements(8)
    assert eight == one, (one, eight)
    async with org_session(services.sessions, org["id"]) as s:
        told = list((await s.execute(select(Notification.user_id).where(Notification.kind == "mention"))).scalars())
    assert sorted(told) == sorted([bob.id, owner.id] * 9)
