"""Presence kept by a real node: a person with a live WebSocket in the org is not pushed; once they
leave, the node's next flush removes their row and pushes reach them again."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import select

from feeds_server import limits
from feeds_server.notify import push_worker
from feeds_server.store.models import Presence, PushJob
from feeds_server.store.scope import account_session
from tests.notify.push_service import push_service  # noqa: F401 - the fixture
from tests.realtime.conftest import node_env
from tests.realtime.helpers import Recorder, centrifuge_client, org_with_reader
from tests.server import ServerProcess


@pytest.fixture
def push_node(settings, services, tmp_path: Path) -> Iterator[ServerProcess]:  # type: ignore[no-untyped-def]
    """A node that accepts push endpoints on the loopback (the test's push service)."""
    server = ServerProcess(node_env(settings, FEEDS_PUSH_ALLOW_NETWORKS="127.0.0.1/32"), log_path=tmp_path / "node.log").start()
    yield server
    server.stop()


async def _present(services, org_id: int, user_id: int) -> bool:  # type: ignore[no-untyped-def]
    async with account_session(services.sessions) as session:
        rows = await session.execute(
            select(Presence.node).where(Presence.org_id == org_id, Presence.user_id == user_id, Presence.live_until > services.clock())
        )
        return rows.first() is not None


async def _until(predicate, timeout: float = 5.0) -> float:  # type: ignore[no-untyped-def]
    start = time.monotonic()
    while not await predicate():
        assert time.monotonic() - start < timeout, "timed out"
        await asyncio.sleep(0.05)
    return time.monotonic() - start


async def test_a_connected_person_is_skipped_and_pushed_again_once_gone(push_node, settings, services, push_service):
    services.settings = replace(services.settings, push_allow_networks=("127.0.0.1/32",), vapid_subject="mailto:ops@example.com")
    alice, bob, slug = await org_with_reader(push_node.url, settings, services, "push")
    org_id = (await bob.get(f"/api/v1/orgs/{slug}")).json()["org"]["id"]
    sub = push_service.new_subscription()
    assert (await bob.post(f"/api/v1/orgs/{slug}/push-subscriptions", json=sub)).status_code == 201

    recorder = Recorder()
    conn = centrifuge_client(push_node.ws_url, bob, slug, recorder)
    await conn.connect()
    await asyncio.wait_for(recorder.connected.wait(), 5)
    took = await _until(lambda: _present(services, org_id, bob.id))
    assert took < 1 + limits.PRESENCE_FLUSH_SECONDS * 2
    assert (await alice.post(f"/api/v1/orgs/{slug}/posts", json={"body": f"hi @[user:{bob.id}]"})).status_code == 201
    assert await push_worker.run(services, burst=True) == 0
    async with account_session(services.sessions) as session:
        [job] = (await session.execute(select(PushJob))).scalars().all()
    # Held until the node's row for him would run out, when it is skipped if the node renewed it.
    assert (job.status, job.last_error) == ("pending", "online")
    assert job.next_attempt_at > services.clock()

    await conn.disconnect()
    await _until(lambda: _absent(services, org_id, bob.id))
    assert (await alice.post(f"/api/v1/orgs/{slug}/posts", json={"body": f"again @[user:{bob.id}]"})).status_code == 201
    assert await push_worker.run(services, burst=True) == 1
    assert [p["body"] for p in push_service.delivered(sub)] and "again" in push_service.delivered(sub)[0]["body"]


async def _absent(services, org_id: int, user_id: int) -> bool:  # type: ignore[no-untyped-def]
    return not await _present(services, org_id, user_id)
