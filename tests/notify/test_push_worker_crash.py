"""The notifier killed with SIGKILL while pushes are in flight, then restarted, pushes each once."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import replace

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from feeds_server.notify import push_worker
from tests import factory
from tests.notify.push_service import b64, push_service  # noqa: F401 - the fixture

KEY = ec.generate_private_key(ec.SECP256R1())
RAW_KEY = b64(KEY.private_numbers().private_value.to_bytes(32, "big"))
SERVER_KEY = b64(KEY.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint))


def _notifier(settings, *args: str) -> subprocess.Popen[bytes]:  # type: ignore[no-untyped-def]
    env = {
        **os.environ,
        "FEEDS_DATABASE_URL": settings.database_url,
        "FEEDS_DATA_DIR": str(settings.data_dir),
        "FEEDS_NOTIFIER_LEASE_SECONDS": str(int(push_worker.MIN_LEASE_SECONDS)),  # the shortest the push loop takes
        "FEEDS_PUSH_ALLOW_NETWORKS": "127.0.0.1/32",
        "FEEDS_VAPID_SUBJECT": "mailto:ops@example.com",
        "FEEDS_VAPID_PRIVATE_KEY": RAW_KEY,
        "FEEDS_LOG_LEVEL": "warning",
    }
    return subprocess.Popen([sys.executable, "-m", "feeds_server.cli", "notifier", *args], env=env)


async def test_worker_killed_mid_push_and_restarted_pushes_each_once(client, services, settings, push_service):
    owner = await factory.sign_up(client, factory.unique("Owner"))
    org = await factory.create_org(owner)
    services.settings = replace(services.settings, push_allow_networks=("127.0.0.1/32",), vapid_subject="mailto:ops@example.com")
    subs = {}
    for name in ("Ann", "Bob", "Cid", "Dee"):
        actor = await factory.sign_up(client, factory.unique(name))
        await factory.invite_and_join(owner, org["slug"], actor, settings.mail_dir)
        sub = push_service.new_subscription(SERVER_KEY)  # the browser subscribed with the notifier's key
        assert (await actor.post(f"/api/v1/orgs/{org['slug']}/push-subscriptions", json=sub)).status_code == 201
        subs[actor.id] = sub
    mentions = " ".join(f"@[user:{uid}]" for uid in subs)
    assert (await owner.post(f"/api/v1/orgs/{org['slug']}/posts", json={"body": f"all of you {mentions}"})).status_code == 201

    push_service.hold = threading.Event()
    worker = _notifier(settings)
    deadline = time.monotonic() + 30
    while push_service.waiting < len(subs) and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    assert push_service.waiting == len(subs), "every push reached the push service"
    worker.send_signal(signal.SIGKILL)  # killed while the service holds the pushes: none accepted
    worker.wait(10)
    push_service.hold.set()
    await asyncio.sleep(push_worker.MIN_LEASE_SECONDS + 0.5)  # the dead worker's lease runs out

    again = _notifier(settings, "--burst")
    assert again.wait(60) == 0
    for sub in subs.values():
        assert len(push_service.delivered(sub)) == 1

