"""The notifier process killed with SIGKILL mid-batch and restarted sends each email once (F-NOTIF-3)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time

from tests import factory


def _notifier(settings, smtp, *args: str) -> subprocess.Popen[bytes]:  # type: ignore[no-untyped-def]
    env = {
        **os.environ,
        "FEEDS_DATABASE_URL": settings.database_url,
        "FEEDS_DATA_DIR": str(settings.data_dir),
        "FEEDS_SMTP_HOST": "127.0.0.1",
        "FEEDS_SMTP_PORT": str(smtp.port),
        "FEEDS_SMTP_TLS": "none",
        "FEEDS_NOTIFIER_LEASE_SECONDS": "1",
        "FEEDS_LOG_LEVEL": "warning",
    }
    return subprocess.Popen([sys.executable, "-m", "feeds_server.cli", "notifier", *args], env=env)


async def test_worker_killed_mid_send_and_restarted_sends_each_email_exactly_once(client, services, settings, smtp):
    owner = await factory.sign_up(client, factory.unique("Owner"))
    org = await factory.create_org(owner)
    people = []
    for name in ("Ann", "Bob", "Cid", "Dee"):
        actor = await factory.sign_up(client, factory.unique(name))
        await factory.invite_and_join(owner, org["slug"], actor, settings.mail_dir)
        await actor.patch(f"/api/v1/orgs/{org['slug']}/notification-settings", json={"batch_window_seconds": 0})
        people.append(actor)
    mentions = " ".join(f"@[user:{p.id}]" for p in people)
    assert (await owner.post(f"/api/v1/orgs/{org['slug']}/posts", json={"body": f"all of you {mentions}"})).status_code == 201

    smtp.recorder.hold = threading.Event()
    worker = _notifier(settings, smtp)
    deadline = time.monotonic() + 20
    while smtp.recorder.in_data == 0 and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    assert smtp.recorder.in_data >= 1, "the worker reached DATA"
    worker.send_signal(signal.SIGKILL)  # killed while the mail server holds DATA: not accepted
    worker.wait(10)
    smtp.recorder.hold.set()
    await asyncio.sleep(1.2)  # the dead worker's lease runs out

    again = _notifier(settings, smtp, "--burst")
    assert again.wait(60) == 0
    received = sorted(m["To"] for m in smtp.recorder.messages)
    assert received == sorted(p.email for p in people)
    ids = [m["Message-ID"] for m in smtp.recorder.messages]
    assert len(ids) == len(set(ids))
