"""Comments on record items go back to the CRM as notes, through a signed webhook (F-FOLLOW-10).

The CRM is a real HTTP server on a free local port; the delivery loop runs in burst mode.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from feeds_server import limits
from feeds_server.actions.webhooks import deliver_webhooks
from tests import factory
from tests.api.records_helpers import crm, ev, items, send  # noqa: F401 - `crm` is a fixture

DOCS = Path(__file__).resolve().parents[2] / "docs" / "records.md"


@pytest.fixture
def settings(settings: Any) -> Any:
    """The fake CRM listens on 127.0.0.1, which webhooks may reach only when the operator allows it."""
    return replace(settings, webhook_allow_networks=("127.0.0.0/8",))


def docs_verify() -> Any:
    """The signature check exactly as docs/records.md shows it to CRM developers."""
    code = re.search(r"```python\n(.*?)```", DOCS.read_text(), re.S)
    assert code is not None
    namespace: dict[str, Any] = {}
    exec(code.group(1), namespace)  # noqa: S102 - our own documentation
    return namespace["verify"]


class FakeCrm:
    """An HTTP server that answers with the given statuses in turn (then 200) and keeps what it got."""

    def __init__(self, statuses: list[int] | None = None) -> None:
        self.statuses = list(statuses or [])
        self.received: list[tuple[str, dict[str, str], bytes, int]] = []
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self, port: int = 0) -> FakeCrm:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", port)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    def stop(self) -> None:
        assert self.server is not None
        self.server.close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/feeds/notes"

    @property
    def delivered(self) -> list[tuple[dict[str, str], bytes]]:
        return [(h, b) for _, h, b, status in self.received if 200 <= status < 300]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode()
        request_line, *lines = head.split("\r\n")
        headers = {k.lower(): v for k, v in (line.split(": ", 1) for line in lines if ": " in line)}
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        status = self.statuses.pop(0) if self.statuses else 200
        self.received.append((request_line, headers, body, status))
        writer.write(f"HTTP/1.1 {status} Status\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".encode())
        await writer.drain()
        writer.close()


async def _setup(crm: dict[str, Any], url: str) -> tuple[int, str, dict[str, Any]]:
    """A webhook for the org's integration, and a record item the rep sees; returns (integration, secret, item)."""
    admin = crm["admin"]
    integration = (await admin.get(f"{crm['b']}/integrations")).json()["integrations"][0]["id"]
    r = await admin.put(f"{crm['b']}/integrations/{integration}/webhook", json={"url": url})
    assert r.status_code == 200 and r.json()["webhook"]["url"] == url
    await send(crm, ev("w1", name="Globex", owner_email=crm["rep"].email))
    return integration, r.json()["secret"], (await items(crm["rep"], crm))[0]


async def _comment(crm: dict[str, Any], post_id: int, body: str) -> dict[str, Any]:
    r = await crm["rep"].post(f"{crm['b']}/posts/{post_id}/comments", json={"body": body})
    assert r.status_code == 201, r.text
    return r.json()["comment"]


async def _status(crm: dict[str, Any], integration: int) -> dict[str, int]:
    return (await crm["admin"].get(f"{crm['b']}/integrations/{integration}/webhook")).json()["webhook"]["deliveries"]


def _later(services: Any, delta: timedelta) -> None:
    now = services.clock()
    services.clock = lambda: now + delta


async def test_a_comment_reaches_the_crm_as_a_signed_note_after_a_failed_try(crm, services):
    """The delivery is written with the comment; a 500 is retried later with backoff; the signature checks out."""
    fake = await FakeCrm([500]).start()
    integration, secret, item = await _setup(crm, fake.url)
    comment = await _comment(crm, item["id"], "Follow-up on Friday")
    assert await _status(crm, integration) == {"pending": 1, "delivered": 0, "failed": 0}  # in the outbox before any worker ran

    assert await deliver_webhooks(services, burst=True) == 0
    assert [status for *_, status in fake.received] == [500]
    assert await deliver_webhooks(services, burst=True) == 0  # not due yet: backing off
    assert len(fake.received) == 1
    _later(services, timedelta(seconds=limits.WEBHOOK_RETRY_BASE_SECONDS))
    assert await deliver_webhooks(services, burst=True) == 1
    assert await _status(crm, integration) == {"pending": 0, "delivered": 1, "failed": 0}

    (request_line, first_headers, first_body, _), (_, headers, body, _) = fake.received
    assert request_line == "POST /feeds/notes HTTP/1.1" and headers["content-type"] == "application/json"
    assert docs_verify()(secret, headers["x-feeds-timestamp"], body, headers["x-feeds-signature"])
    assert not docs_verify()("another secret", headers["x-feeds-timestamp"], body, headers["x-feeds-signature"])
    assert not docs_verify()(secret, headers["x-feeds-timestamp"], body + b" ", headers["x-feeds-signature"])
    assert not docs_verify()(secret, str(int(headers["x-feeds-timestamp"]) - limits.WEBHOOK_SIGNATURE_MAX_AGE_SECONDS - 1), body, headers["x-feeds-signature"])
    payload = orjson.loads(body)
    assert payload["type"] == "note.created"
    assert payload["record"] == {"module": "Deals", "crm_id": "D-1"}
    assert payload["note"]["text"] == "Follow-up on Friday" and payload["note"]["comment_id"] == comment["id"]
    assert payload["author"] == {"email": crm["rep"].email, "name": crm["rep"].name}
    assert payload["delivery_id"] == orjson.loads(first_body)["delivery_id"] == int(headers["x-feeds-delivery"])
    assert await deliver_webhooks(services, burst=True) == 0 and len(fake.received) == 2  # delivered once
    fake.stop()


async def test_notes_wait_while_the_crm_is_down_and_go_out_when_it_is_back(crm, services):
    """Never lost: a refused connection is retried until the CRM answers."""
    probe = await FakeCrm().start()
    port = probe.port
    probe.stop()
    await probe.server.wait_closed()  # type: ignore[union-attr]
    integration, _, item = await _setup(crm, f"http://127.0.0.1:{port}/feeds/notes")
    await _comment(crm, item["id"], "one")
    await _comment(crm, item["id"], "two")
    for _ in range(3):
        assert await deliver_webhooks(services, burst=True) == 0
        _later(services, timedelta(hours=2))
    assert await _status(crm, integration) == {"pending": 2, "delivered": 0, "failed": 0}
    fake = await FakeCrm().start(port)
    assert await deliver_webhooks(services, burst=True) == 2
    assert sorted(orjson.loads(b)["note"]["text"] for _, b in fake.delivered) == ["one", "two"]
    fake.stop()


async def test_a_refused_note_fails_for_good_and_an_admin_can_send_it_again(crm, services, monkeypatch):
    fake = await FakeCrm([400, 503, 503]).start()
    integration, _, item = await _setup(crm, fake.url)
    await _comment(crm, item["id"], "refused")
    assert await deliver_webhooks(services, burst=True) == 0
    assert await _status(crm, integration) == {"pending": 0, "delivered": 0, "failed": 1}  # a 4xx is not retried
    assert (await crm["rep"].post(f"{crm['b']}/integrations/{integration}/webhook/retry")).status_code == 403
    r = await crm["admin"].post(f"{crm['b']}/integrations/{integration}/webhook/retry")
    assert r.status_code == 200 and r.json() == {"requeued": 1}
    monkeypatch.setattr(limits, "WEBHOOK_MAX_ATTEMPTS", 2)
    assert await deliver_webhooks(services, burst=True) == 0  # 503: retried
    _later(services, timedelta(hours=2))
    assert await deliver_webhooks(services, burst=True) == 0  # 503 again, and that was the last attempt
    assert await _status(crm, integration) == {"pending": 0, "delivered": 0, "failed": 1}
    await crm["admin"].post(f"{crm['b']}/integrations/{integration}/webhook/retry")
    assert await deliver_webhooks(services, burst=True) == 1
    assert [status for *_, status in fake.received] == [400, 503, 503, 200]
    fake.stop()


async def test_the_note_the_crm_reports_back_is_not_shown_twice(crm, services):
    """The CRM reports the note it made from our comment with `note.comment_id`: it is linked, not repeated."""
    fake = await FakeCrm().start()
    _, _, item = await _setup(crm, fake.url)
    comment = await _comment(crm, item["id"], "From the feed")
    assert await deliver_webhooks(services, burst=True) == 1
    r = await send(crm, ev("w2", "note_added", note={"id": "CRM-N-7", "text": "From the feed", "comment_id": comment["id"]}))
    assert r.json()["results"][0]["status"] == "applied"
    listed = (await crm["rep"].get(f"{crm['b']}/posts/{item['id']}/comments")).json()["comments"]
    assert [(c["body"], c["data"].get("crm_note_id")) for c in listed] == [("From the feed", "CRM-N-7")]
    # A CRM note about another record that names this comment is a note of its own.
    await send(crm, ev("w3", crm_id="D-2", name="Other", owner_email=crm["rep"].email))
    await send(crm, ev("w4", "note_added", crm_id="D-2", note={"text": "Unrelated", "comment_id": comment["id"]}))
    assert (await items(crm["rep"], crm))[0]["latest_comments"][0]["body"] == "Unrelated"
    fake.stop()


async def test_only_comments_on_record_items_go_to_the_crm(crm, services):
    fake = await FakeCrm().start()
    integration, _, item = await _setup(crm, fake.url)
    status = (await crm["rep"].post(f"{crm['b']}/posts", json={"body": "Hello"})).json()["post"]
    await _comment(crm, status["id"], "on a status post")
    assert await _status(crm, integration) == {"pending": 0, "delivered": 0, "failed": 0}
    assert (await crm["admin"].delete(f"{crm['b']}/integrations/{integration}/webhook")).status_code == 204
    await _comment(crm, item["id"], "no webhook any more")
    assert await deliver_webhooks(services, burst=True) == 0 and fake.received == []
    assert (await crm["admin"].get(f"{crm['b']}/integrations/{integration}/webhook")).status_code == 404
    fake.stop()


async def test_a_revoked_integration_gets_no_more_notes(crm, services):
    fake = await FakeCrm().start()
    integration, _, item = await _setup(crm, fake.url)
    await _comment(crm, item["id"], "queued before the revocation")
    assert (await crm["admin"].delete(f"{crm['b']}/integrations/{integration}")).status_code == 204
    assert await deliver_webhooks(services, burst=True) == 0 and fake.received == []
    assert await _status(crm, integration) == {"pending": 0, "delivered": 0, "failed": 1}
    fake.stop()


@pytest.mark.parametrize("url", ["ftp://crm.example.com/x", "not a url", "http://"])
async def test_webhook_settings_are_for_admins_with_a_web_url(crm, client, url):
    admin, rep = crm["admin"], crm["rep"]
    integration = (await admin.get(f"{crm['b']}/integrations")).json()["integrations"][0]["id"]
    path = f"{crm['b']}/integrations/{integration}/webhook"
    assert (await admin.put(path, json={"url": url})).status_code == 422
    assert (await rep.put(path, json={"url": "https://crm.example.com/hook"})).status_code == 403
    assert (await rep.get(path)).status_code == 403
    other_admin = await factory.sign_up(client, factory.unique("Other"))
    other = await factory.create_org(other_admin)
    r = await other_admin.put(f"/api/v1/orgs/{other['slug']}/integrations/{integration}/webhook", json={"url": "https://crm.example.com/hook"})
    assert r.status_code == 404
