"""A retried email batch split between two workers never goes out twice under one Message-ID (F-NOTIF-3).

After a 451 the batch's jobs are pending again and keep the batch's name, from which the
Message-ID is made. Two workers claiming at once can each take part of them (row locks are
skipped); only the one holding the job the batch is named after may use the name.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from feeds_server.notify import outbox
from feeds_server.store.models import EmailJob
from feeds_server.store.scope import account_session
from tests import factory


# Two workers claiming at once skip each other's row locks on PostgreSQL only (SQLite serializes claims).
@pytest.mark.parametrize("backend", ["postgres"])
async def test_a_retried_batch_split_between_two_workers_keeps_its_name_in_one_email_only(client, services, settings):
    owner = await factory.sign_up(client, factory.unique("Owner"))
    org = await factory.create_org(owner)
    ann = await factory.sign_up(client, factory.unique("Ann"))
    await factory.invite_and_join(owner, org["slug"], ann, settings.mail_dir, services)
    await ann.patch(f"/api/v1/orgs/{org['slug']}/notification-settings", json={"batch_window_seconds": 0})
    for i in range(3):
        r = await owner.post(f"/api/v1/orgs/{org['slug']}/posts", json={"body": f"mention {i} @[user:{ann.id}]"})
        assert r.status_code == 201

    now = services.clock()
    first = [b for b in await outbox.claim(services.sessions, now, 60) if b.to_email == ann.email]
    assert len(first) == 1 and len(first[0].job_ids) == 3
    name = first[0].batch_id
    await outbox.retry_later(services.sessions, first[0], now - timedelta(hours=1), "451 try again later")

    async with account_session(services.sessions) as other_worker:
        await other_worker.execute(select(EmailJob).where(EmailJob.id == name).with_for_update())  # holds the named job
        again = [b for b in await outbox.claim(services.sessions, services.clock(), 60) if b.to_email == ann.email]
        await other_worker.rollback()

    assert len(again) == 1
    assert name not in again[0].job_ids and len(again[0].job_ids) == 2
    assert again[0].batch_id != name, "the name stays with the job held by the other worker"
