"""Durable channel history: recovery in order from the database, and an explicit "cannot" (F-RT-2)."""

from __future__ import annotations

from datetime import timedelta

from feeds_server.realtime.history import prune, recover
from feeds_server.store.scope import org_session
from tests import factory


async def _org_with_posts(client, n: int):  # type: ignore[no-untyped-def]
    alice = await factory.sign_up(client, factory.unique("Alice"))
    org = await factory.create_org(alice, factory.unique("hist"))
    for i in range(n):
        assert (await alice.post(f"/api/v1/orgs/{org['slug']}/posts", json={"body": f"p{i}"})).status_code == 201
    return alice, org


async def test_recovery_returns_every_publication_after_the_offset_in_order(client, services):
    _, org = await _org_with_posts(client, 12)
    async with org_session(services.sessions, org["id"]) as session:
        full = await recover(session, org["id"], "org", 0, [])
        assert full.recovered and len(full.publications) == 12
        offsets = [off for off, _ in full.publications]
        assert offsets == sorted(offsets)
        tail = await recover(session, org["id"], "org", offsets[5], [])
    assert [off for off, _ in tail.publications] == offsets[6:]


async def test_position_older_than_kept_history_is_not_recovered(client, services):
    """Past the history kept (at least N days and N publications), the answer is `recovered: false`."""
    _, org = await _org_with_posts(client, 10)
    later = services.clock() + timedelta(days=8)
    async with org_session(services.sessions, org["id"]) as session:
        removed = await prune(session, later, keep_days=7, keep_publications=4)
    assert removed == 6
    async with org_session(services.sessions, org["id"]) as session:
        full = await recover(session, org["id"], "org", 0, [])
        assert not full.recovered
        kept = await recover(session, org["id"], "org", 10_000, [])
        assert kept.recovered and kept.publications == []


async def test_history_younger_than_the_kept_days_is_never_pruned(client, services):
    _, org = await _org_with_posts(client, 10)
    async with org_session(services.sessions, org["id"]) as session:
        assert await prune(session, services.clock() + timedelta(days=6), keep_days=7, keep_publications=4) == 0
