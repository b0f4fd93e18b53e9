"""One bad job never stops a worker: it becomes a dead letter with its reason, the rest of its batch
goes out exactly once, and the worker goes on (emails and CRM webhook calls alike).

The emails go to a real SMTP server (aiosmtpd) and the notes to a real local HTTP server. Bad jobs
are made the way they arrive in production: values stored before a rule existed (a name with CR LF,
a payload of another shape, an address or URL that cannot be used), written straight into the
database.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from dataclasses import dataclass, field, replace
from email import message_from_bytes, policy
from typing import Any

import orjson
import pytest
from sqlalchemy import select, text, update

from feeds_server.actions.webhooks import deliver_webhooks
from feeds_server.notify import worker
from feeds_server.notify.mailer_smtp import SmtpMailer
from feeds_server.store.models import EmailJob, IntegrationWebhook, Org, User, WebhookDelivery
from feeds_server.store.scope import account_session
from tests import factory
from tests.api.records_helpers import crm, ev, items, send  # noqa: F401 - `crm` is a fixture
from tests.api.test_records_webhooks import FakeCrm
from tests.notify.smtp import Recorder, SmtpServer
from tests.ops.test_metrics import sample, scrape

INJECTION = "Eve\r\nBcc: victim@evil.test"


@dataclass
class EnvelopeRecorder(Recorder):
    """Also keeps each message's envelope recipients and raw bytes, to see what a header could add."""

    envelopes: list[tuple[list[str], bytes]] = field(default_factory=list)

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        self.envelopes.append((list(envelope.rcpt_tos), envelope.content))
        return await super().handle_DATA(server, session, envelope)


@pytest.fixture
def settings(settings: Any) -> Any:
    """The fake CRM listens on 127.0.0.1, which webhooks may reach only when the operator allows it."""
    return replace(settings, webhook_allow_networks=("127.0.0.0/8",))


@pytest.fixture
async def team(client, settings):  # type: ignore[no-untyped-def]
    """An org with Bob and Cid, whose mentions go out at once, and Eve; built before the SMTP server is switched on."""
    owner = await factory.sign_up(client, factory.unique("Owner"))
    org = await factory.create_org(owner)
    people = []
    for name in ("Bob", "Cid", "Eve"):
        person = await factory.sign_up(client, factory.unique(name))
        await factory.invite_and_join(owner, org["slug"], person, settings.mail_dir)
        await person.patch(f"/api/v1/orgs/{org['slug']}/notification-settings", json={"batch_window_seconds": 0})
        people.append(person)
    return owner, *people, org


@pytest.fixture
def smtp():  # type: ignore[no-untyped-def]
    server = SmtpServer()
    server.recorder = EnvelopeRecorder()
    yield server.start()
    server.stop()


@pytest.fixture
def smtp_services(team, services, smtp):  # type: ignore[no-untyped-def]
    services.settings = replace(services.settings, smtp_host="127.0.0.1", smtp_port=smtp.port, smtp_tls="none")
    services.mailer = SmtpMailer(services.settings)
    return services


async def post(actor: factory.Actor, org: dict[str, Any], body: str) -> dict[str, Any]:
    r = await actor.post(f"/api/v1/orgs/{org['slug']}/posts", json={"body": body})
    assert r.status_code == 201, r.text
    return r.json()["post"]


async def invitation_job(owner: factory.Actor, org: dict[str, Any], services: Any, email: str) -> int:
    assert (await owner.post(f"/api/v1/orgs/{org['slug']}/invitations", json={"email": email})).status_code == 201
    async with account_session(services.sessions) as s:
        return (await s.execute(select(EmailJob.id).where(EmailJob.to_email == email))).scalar_one()


async def set_job(services: Any, job_id: int, **values: Any) -> None:
    async with account_session(services.sessions) as s:
        await s.execute(update(EmailJob).where(EmailJob.id == job_id).values(**values))


async def job(services: Any, job_id: int) -> EmailJob:
    async with account_session(services.sessions) as s:
        return (await s.execute(select(EmailJob).where(EmailJob.id == job_id))).scalar_one()


async def until(condition: Any, seconds: float = 15.0) -> Any:
    """Poll `condition` (a function, or a coroutine function) until it gives something true; return that."""
    for _ in range(int(seconds / 0.05)):
        value = condition()
        value = await value if asyncio.iscoroutine(value) else value
        if value:
            return value
        await asyncio.sleep(0.05)
    raise AssertionError("timed out")


async def dead_letter(services: Any, model: Any, item_id: int) -> str | None:
    """The `last_error` of a failed job, or None while it is not failed."""
    async with account_session(services.sessions) as s:
        status, error = (await s.execute(select(model.status, model.last_error).where(model.id == item_id))).one()
    return error if status == "failed" else None


def to(smtp: SmtpServer, person: factory.Actor) -> list[Any]:
    return smtp.recorder.to(person.email)


def cli(settings: Any, *args: str) -> str:
    env = {**os.environ, "FEEDS_DATABASE_URL": settings.database_url, "FEEDS_DATA_DIR": str(settings.data_dir), "FEEDS_LOG_LEVEL": "warning"}
    done = subprocess.run([sys.executable, "-m", "feeds_server.cli", "notifier", *args], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


# --- emails ---------------------------------------------------------------------------------------


async def test_a_name_stored_with_crlf_makes_an_email_with_no_injected_header(team, smtp, smtp_services):
    """Legacy data: names written before they refused control characters are sent on one line."""
    owner, bob, cid, eve, org = team
    async with account_session(smtp_services.sessions) as s:
        await s.execute(update(User).where(User.id.in_([eve.id, owner.id])).values(name=INJECTION))
        await s.execute(update(Org).where(Org.id == org["id"]).values(name="Acme\r\nX-Evil: 1"))
    await post(eve, org, f"hello @[user:{bob.id}]")
    await invitation_job(owner, org, smtp_services, "newcomer@example.com")

    assert await worker.run(smtp_services, burst=True) == 2
    assert sorted(rcpts for rcpts, _ in smtp.recorder.envelopes) == [[bob.email], ["newcomer@example.com"]]
    for _, raw in smtp.recorder.envelopes:
        head = raw.split(b"\r\n\r\n", 1)[0]
        lines = head.split(b"\r\n")
        assert not any(line.lower().startswith((b"bcc:", b"x-evil:")) for line in lines), head
        assert message_from_bytes(raw, policy=policy.default)["Bcc"] is None
    [mention] = to(smtp, bob)
    assert mention["Subject"] == "Eve Bcc: victim@evil.test mentioned you in Acme X-Evil: 1"
    assert "Eve Bcc: victim@evil.test mentioned you in a post" in mention.get_body(preferencelist=("plain",)).get_content()
    [invitation] = smtp.recorder.to("newcomer@example.com")
    assert invitation["Subject"] == "Eve Bcc: victim@evil.test invited you to Acme X-Evil: 1"


async def test_a_job_that_cannot_be_composed_is_a_dead_letter_and_its_batch_goes_out_once(team, smtp, smtp_services, client):
    """A payload of another shape and an address with CR LF: each is set aside with its reason, while
    the mentions claimed with them are delivered once each, and the running worker sends later jobs."""
    owner, bob, cid, eve, org = team
    smtp.recorder.messages.clear()
    await post(owner, org, f"first @[user:{bob.id}] @[user:{cid.id}]")
    bad_payload = await invitation_job(owner, org, smtp_services, "payload@example.com")
    await set_job(smtp_services, bad_payload, payload=["not", "an", "invitation"])
    bad_address = await invitation_job(owner, org, smtp_services, "address@example.com")
    await set_job(smtp_services, bad_address, to_email="address@example.com\r\nBcc: victim@evil.test")

    stop = asyncio.Event()
    running = asyncio.create_task(worker.run(smtp_services, stop=stop))
    try:
        await until(lambda: len(to(smtp, bob)) == 1 and len(to(smtp, cid)) == 1)
        for job_id, reason in ((bad_payload, "error: compose: TypeError"), (bad_address, "error: compose: ValueError")):
            error = await until(lambda: dead_letter(smtp_services, EmailJob, job_id))
            assert error.startswith(reason), error
        assert not running.done(), "the worker goes on"
        await post(owner, org, f"second @[user:{bob.id}]")
        await until(lambda: len(to(smtp, bob)) == 2)
    finally:
        stop.set()
        await asyncio.wait_for(running, 10)
    assert len(to(smtp, cid)) == 1 and smtp.recorder.to("victim@evil.test") == []
    ids = [m["Message-ID"] for m in smtp.recorder.messages]
    assert len(ids) == len(set(ids)) == 3

    metrics = await scrape(client)
    assert sample(metrics, "feeds_outbox_dead_letters", outbox="email", reason="error") == 2
    listed = cli(smtp_services.settings, "--failed")
    assert "2 dead letter(s)" in listed
    assert f"email:{bad_payload} " in listed and f"email:{bad_address} " in listed and org["slug"] in listed
    assert "error: compose: TypeError" in listed and "invitation" in listed
    assert cli(smtp_services.settings, "--retry", f"email:{bad_address}") == "1 dead letter(s) put back in their outbox\n"
    assert (await job(smtp_services, bad_address)).status == "pending"
    assert (await job(smtp_services, bad_payload)).status == "failed"


async def test_a_send_that_raises_unexpectedly_is_a_dead_letter_and_the_others_go_out_once(team, smtp, smtp_services):
    """The mailer raising something nobody planned for (not a refusal, not a network error)."""
    owner, bob, cid, eve, org = team
    smtp.recorder.messages.clear()
    real = smtp_services.mailer

    class BreaksForCid:
        async def send(self, message: Any) -> None:
            if message["To"] == cid.email:
                raise RuntimeError("the mailer broke")
            await real.send(message)

    smtp_services.mailer = BreaksForCid()
    await post(owner, org, f"@[user:{bob.id}] @[user:{cid.id}]")
    assert await worker.run(smtp_services, burst=True) == 1
    async with account_session(smtp_services.sessions) as s:
        [cid_job] = (await s.execute(select(EmailJob).where(EmailJob.user_id == cid.id, EmailJob.kind == "mention"))).scalars()
    assert cid_job.status == "failed" and cid_job.last_error == "error: send: RuntimeError('the mailer broke')"
    assert len(to(smtp, bob)) == 1 and to(smtp, cid) == []
    assert await worker.run(smtp_services, burst=True) == 0  # a dead letter is not sent again by itself
    smtp_services.mailer = real
    assert cli(smtp_services.settings, "--retry", "all") == "1 dead letter(s) put back in their outbox\n"
    assert await worker.run(smtp_services, burst=True) == 1
    assert len(to(smtp, bob)) == 1 and len(to(smtp, cid)) == 1


@pytest.mark.parametrize("backend", ["sqlite"])  # PostgreSQL's jsonb refuses what is not JSON when it is written
async def test_a_payload_that_is_not_json_stops_only_its_own_batch(team, smtp, smtp_services, backend):
    """SQLite stores JSON as text, so a row can hold bytes that do not load (PostgreSQL's jsonb cannot)."""
    owner, bob, cid, eve, org = team
    smtp.recorder.messages.clear()
    await post(owner, org, f"@[user:{bob.id}] @[user:{cid.id}]")
    bad = await invitation_job(owner, org, smtp_services, "broken@example.com")
    async with account_session(smtp_services.sessions) as s:
        await s.execute(text("UPDATE email_jobs SET payload = '{not json' WHERE id = :id"), {"id": bad})
    assert await worker.run(smtp_services, burst=True) == 2
    assert len(to(smtp, bob)) == 1 and len(to(smtp, cid)) == 1
    async with account_session(smtp_services.sessions) as s:
        status, error = (await s.execute(select(EmailJob.status, EmailJob.last_error).where(EmailJob.id == bad))).one()
    assert status == "failed" and error.startswith("error: compose:")


# --- webhook deliveries -----------------------------------------------------------------------------


async def _comment(crm: dict[str, Any], post_id: int, body: str) -> int:
    r = await crm["rep"].post(f"{crm['b']}/posts/{post_id}/comments", json={"body": body})
    assert r.status_code == 201, r.text
    return r.json()["comment"]["id"]


async def test_a_webhook_delivery_that_raises_is_a_dead_letter_and_the_loop_goes_on(crm, services, client):
    fake = await FakeCrm().start()
    admin = crm["admin"]
    integration = (await admin.get(f"{crm['b']}/integrations")).json()["integrations"][0]["id"]
    assert (await admin.put(f"{crm['b']}/integrations/{integration}/webhook", json={"url": fake.url})).status_code == 200
    await send(crm, ev("p1", name="Globex", owner_email=crm["rep"].email))
    item = (await items(crm["rep"], crm))[0]
    await _comment(crm, item["id"], "one")
    await _comment(crm, item["id"], "two")
    await _comment(crm, item["id"], "three")
    async with account_session(services.sessions) as s:
        ids = sorted((await s.execute(select(WebhookDelivery.id))).scalars())
        # A payload of another shape: building the call raises TypeError.
        await s.execute(update(WebhookDelivery).where(WebhookDelivery.id == ids[1]).values(payload=["not", "a", "note"]))

    stop = asyncio.Event()
    running = asyncio.create_task(deliver_webhooks(services, stop=stop))
    try:
        await until(lambda: len(fake.delivered) == 2)
        error = await until(lambda: dead_letter(services, WebhookDelivery, ids[1]))
        assert error.startswith("error: send: TypeError"), error
        assert not running.done(), "the loop goes on"
        # A URL stored before URLs were checked, that httpx cannot even parse: InvalidURL is no network error.
        async with account_session(services.sessions) as s:
            await s.execute(update(IntegrationWebhook).where(IntegrationWebhook.integration_id == integration).values(url="http://[::1/notes"))
        await _comment(crm, item["id"], "four")
        bad_url = max(ids) + 1
        error = await until(lambda: dead_letter(services, WebhookDelivery, bad_url))
        assert error.startswith("error: send: InvalidURL"), error
        assert not running.done(), "the loop goes on"
        async with account_session(services.sessions) as s:
            await s.execute(update(IntegrationWebhook).where(IntegrationWebhook.integration_id == integration).values(url=fake.url))
        await _comment(crm, item["id"], "five")
        await until(lambda: len(fake.delivered) == 3)
    finally:
        stop.set()
        await asyncio.wait_for(running, 10)
    assert sorted(orjson.loads(b)["note"]["text"] for _, b in fake.delivered) == ["five", "one", "three"]
    assert sample(await scrape(client), "feeds_outbox_dead_letters", outbox="webhook", reason="error") == 2
    listed = cli(services.settings, "--failed")
    assert f"webhook:{ids[1]} " in listed and f"webhook:{bad_url} " in listed and "InvalidURL" in listed
    fake.stop()
