"""Webhooks reach only the outside world (F-FOLLOW-10): no loopback, private, link-local, metadata …

An org admin chooses the webhook URL and the notifier posts notes and authors' emails there, so the
target is checked on every address its name resolves to when the connection is opened, redirects
are not followed, and the admin's view does not tell a refused target, a closed port and an open one
apart. Only the operator widens this (`FEEDS_WEBHOOK_ALLOW_NETWORKS`). The "CRMs" are real HTTP
servers on local ports; the store tests run on SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from dataclasses import replace
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from feeds_server.actions.webhooks import deliver_webhooks
from feeds_server.domain import egress
from feeds_server.notify.webhook_client import webhook_client
from feeds_server.store.models import WebhookDelivery
from feeds_server.store.scope import account_session
from tests.api.records_helpers import crm, ev, items, send  # noqa: F401 - `crm` is a fixture


class LocalHttp:
    """A real HTTP server on a free local port: answers every request with `status` (and `location`)."""

    def __init__(self, host: str = "127.0.0.1", status: int = 200, location: str | None = None) -> None:
        self.host, self.status, self.location = host, status, location
        self.received: list[tuple[str, dict[str, str]]] = []
        self.server: asyncio.Server | None = None
        self.port = 0

    async def __aenter__(self) -> LocalHttp:
        self.server = await asyncio.start_server(self._handle, self.host, 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode()
        request_line, *lines = head.split("\r\n")
        headers = {k.lower(): v for k, v in (line.split(": ", 1) for line in lines if ": " in line)}
        await reader.readexactly(int(headers.get("content-length", "0")))
        self.received.append((request_line, headers))
        location = f"location: {self.location}\r\n" if self.location else ""
        writer.write(f"HTTP/1.1 {self.status} Status\r\n{location}content-length: 0\r\nconnection: close\r\n\r\n".encode())
        await writer.drain()
        writer.close()


def closed_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def allow_networks() -> tuple[str, ...]:
    """The operator's allow-list: empty (the default) unless a test parametrizes it."""
    return ()


@pytest.fixture
def settings(settings: Any, allow_networks: tuple[str, ...]) -> Any:
    return replace(settings, webhook_allow_networks=allow_networks)


async def _integration(crm: dict[str, Any], name: str | None = None) -> int:
    admin = crm["admin"]
    if name:
        return int((await admin.post(f"{crm['b']}/integrations", json={"name": name})).json()["integration"]["id"])
    return int((await admin.get(f"{crm['b']}/integrations")).json()["integrations"][0]["id"])


async def _put(crm: dict[str, Any], integration: int, url: str) -> httpx.Response:
    return await crm["admin"].put(f"{crm['b']}/integrations/{integration}/webhook", json={"url": url})


async def _comment_on_a_record(crm: dict[str, Any]) -> None:
    """A comment on a record item: one delivery per integration with a webhook."""
    await send(crm, ev("w1", name="Globex", owner_email=crm["rep"].email))
    item = (await items(crm["rep"], crm))[0]
    r = await crm["rep"].post(f"{crm['b']}/posts/{item['id']}/comments", json={"body": "Call back on Friday"})
    assert r.status_code == 201, r.text


async def _view(crm: dict[str, Any], integration: int) -> dict[str, Any]:
    r = await crm["admin"].get(f"{crm['b']}/integrations/{integration}/webhook")
    assert r.status_code == 200, r.text
    view: dict[str, Any] = r.json()["webhook"]
    return view


async def _last_errors(services: Any, integration: int) -> list[str | None]:
    async with account_session(services.sessions) as session:
        rows = await session.execute(select(WebhookDelivery.last_error).where(WebhookDelivery.integration_id == integration))
        return list(rows.scalars())


# --- the classifier (pure) ------------------------------------------------------------------------
@pytest.mark.parametrize(
    "address",
    [
        "8.8.8.8", "9.255.255.255", "11.0.0.0", "100.63.255.255", "100.128.0.0", "126.255.255.255", "128.0.0.0",
        "169.253.255.255", "169.255.0.0", "172.15.255.255", "172.32.0.0", "192.167.255.255", "192.169.0.0",
        "223.255.255.255", "2606:4700:4700::1111", "2a00:1450:4001::200e", "::ffff:8.8.8.8", "64:ff9b::808:808",
        "2002:808:808::1",
    ],
)
def test_a_public_address_is_accepted(address):
    assert egress.refusal(egress.address(address)) is None


@pytest.mark.parametrize(
    ("address", "why"),
    [
        ("10.0.0.0", "private"), ("10.255.255.255", "private"), ("172.16.0.0", "private"), ("172.31.255.255", "private"),
        ("192.168.0.0", "private"), ("192.168.255.255", "private"),
        ("127.0.0.0", "loopback"), ("127.0.0.1", "loopback"), ("127.255.255.255", "loopback"),
        ("169.254.0.0", "link-local"), ("169.254.255.255", "link-local"),
        ("100.64.0.0", "shared address space (CGNAT)"), ("100.127.255.255", "shared address space (CGNAT)"),
        ("0.0.0.0", "unspecified"), ("224.0.0.0", "multicast"), ("239.255.255.255", "multicast"),
        ("255.255.255.255", "broadcast"), ("240.0.0.0", "reserved"), ("192.0.2.1", "reserved"), ("198.18.0.1", "reserved"),
        ("169.254.169.254", "cloud metadata"), ("168.63.129.16", "cloud metadata"), ("100.100.100.200", "cloud metadata"),
        ("fd00:ec2::254", "cloud metadata"),
        ("::1", "loopback"), ("::", "unspecified"), ("fc00::", "private"), ("fdff:ffff::1", "private"),
        ("fe80::1", "link-local"), ("fe80::1%eth0", "link-local"), ("ff02::1", "multicast"), ("2001:db8::1", "reserved"),
        ("::ffff:127.0.0.1", "loopback (127.0.0.1)"), ("::ffff:10.0.0.1", "private (10.0.0.1)"),
        ("::ffff:169.254.169.254", "cloud metadata"), ("::127.0.0.1", "loopback (127.0.0.1)"), ("::8.8.8.8", "IPv4-compatible"),
        ("64:ff9b::7f00:1", "loopback (127.0.0.1)"), ("64:ff9b::a9fe:a9fe", "cloud metadata"), ("64:ff9b:1::1", "private"),
        ("2002:7f00:1::", "loopback (127.0.0.1)"), ("1fff:ffff::1", "reserved"),
    ],
)
def test_an_internal_address_is_refused(address, why):
    assert egress.refusal(egress.address(address)) == why


def test_the_operator_allows_a_range_but_never_the_cloud_metadata():
    allow = egress.parse_networks(["127.0.0.1/32", "10.0.0.0/8", "169.254.0.0/16"])
    assert egress.refusal(egress.address("127.0.0.1"), allow) is None
    assert egress.refusal(egress.address("::ffff:127.0.0.1"), allow) is None
    assert egress.refusal(egress.address("10.20.30.40"), allow) is None
    assert egress.refusal(egress.address("127.0.0.2"), allow) == "loopback"
    assert egress.refusal(egress.address("169.254.169.254"), allow) == "cloud metadata"
    assert egress.refusal(egress.address("169.254.1.1"), allow) is None


@pytest.mark.parametrize("host", ["127.0.0.1", "127.1", "0x7f.0.0.1", "2130706433", "017700000001", "127.0.0.1."])
def test_every_literal_spelling_of_loopback_is_read_as_an_address(host):
    assert egress.literal_address(host) == egress.address("127.0.0.1")


@pytest.mark.parametrize("host", ["crm.example.com", "1e100.net", "localhost", "deadbeef"])
def test_a_name_is_not_a_literal_address(host):
    assert egress.literal_address(host) is None


# --- when the URL is saved ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/hook", "http://127.1/hook", "http://2130706433/hook", "http://0.0.0.0:80/",
        "http://10.0.0.5/hook", "http://192.168.1.1/", "http://100.64.1.1/", "http://169.254.169.254/latest/meta-data/",
        "http://[::1]:8080/hook", "http://[::ffff:127.0.0.1]:8080/hook", "http://[fd12::1]/", "http://[fe80::1]/",
    ],
)
async def test_a_webhook_url_naming_an_internal_address_is_refused(crm, url):
    integration = await _integration(crm)
    r = await _put(crm, integration, url)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] == "webhook_target_not_allowed"
    assert (await _put(crm, integration, "https://crm.example.com/hook")).status_code == 200


@pytest.mark.parametrize("url", ["gopher://crm.example.com/", "file:///etc/passwd", "ftp://crm.example.com/x"])
async def test_a_webhook_url_that_is_not_http_is_refused(crm, url):
    assert (await _put(crm, await _integration(crm), url)).status_code == 422


@pytest.mark.parametrize("allow_networks", [("127.0.0.1/32",)])
async def test_an_allowed_range_lets_a_literal_address_be_saved(crm):
    integration = await _integration(crm)
    assert (await _put(crm, integration, "http://127.0.0.1:8080/hook")).status_code == 200
    assert (await _put(crm, integration, "http://127.0.0.2:8080/hook")).status_code == 422


# --- at delivery ------------------------------------------------------------------------------------------
async def test_a_name_that_resolves_to_loopback_is_refused_and_the_admin_sees_only_failed(crm, services, caplog):
    """`localhost` passes the save-time check (it is a name) and is caught when the connection opens."""
    async with LocalHttp() as target:
        integration = await _integration(crm)
        assert (await _put(crm, integration, f"http://localhost:{target.port}/hook")).status_code == 200
        await _comment_on_a_record(crm)
        with caplog.at_level(logging.WARNING, logger="feeds_server.webhooks"):
            assert await deliver_webhooks(services, burst=True) == 0
    assert target.received == []
    view = await _view(crm, integration)
    assert view["deliveries"] == {"pending": 1, "delivered": 0, "failed": 0}  # retried later, like any failed connection
    assert await _last_errors(services, integration) == ["failed"]
    assert "127.0.0.1" not in str(view) and "loopback" not in str(view)
    assert "localhost resolves to 127.0.0.1: loopback" in caplog.text  # the operator's log says why


async def test_an_open_and_a_closed_internal_port_look_the_same_to_the_admin(crm, services):
    async with LocalHttp() as open_target:
        one, two = await _integration(crm), await _integration(crm, "CRM 2")
        assert (await _put(crm, one, f"http://localhost:{open_target.port}/hook")).status_code == 200
        assert (await _put(crm, two, f"http://localhost:{closed_port()}/hook")).status_code == 200
        await _comment_on_a_record(crm)
        assert await deliver_webhooks(services, burst=True) == 0
    assert open_target.received == []
    views = [await _view(crm, one), await _view(crm, two)]
    assert views[0]["deliveries"] == views[1]["deliveries"] == {"pending": 1, "delivered": 0, "failed": 0}
    assert await _last_errors(services, one) == await _last_errors(services, two) == ["failed"]


@pytest.mark.parametrize("allow_networks", [("127.0.0.1/32",)])
async def test_a_redirect_to_an_internal_address_is_not_followed(crm, services):
    async with LocalHttp() as internal:
        async with LocalHttp(status=302, location=f"http://127.0.0.1:{internal.port}/admin") as redirector:
            integration = await _integration(crm)
            assert (await _put(crm, integration, f"http://127.0.0.1:{redirector.port}/hook")).status_code == 200
            await _comment_on_a_record(crm)
            assert await deliver_webhooks(services, burst=True) == 0
    assert len(redirector.received) == 1 and internal.received == []
    assert (await _view(crm, integration))["deliveries"] == {"pending": 1, "delivered": 0, "failed": 0}
    assert await _last_errors(services, integration) == ["HTTP 302"]  # the CRM answered: its status may be shown


@pytest.mark.parametrize("allow_networks", [("127.0.0.1/32",)])
async def test_a_range_the_operator_allows_is_delivered_to(crm, services):
    async with LocalHttp() as target:
        integration = await _integration(crm)
        assert (await _put(crm, integration, f"http://localhost:{target.port}/hook")).status_code == 200
        await _comment_on_a_record(crm)
        assert await deliver_webhooks(services, burst=True) == 1
    assert [line for line, _ in target.received] == ["POST /hook HTTP/1.1"]
    assert (await _view(crm, integration))["deliveries"] == {"pending": 0, "delivered": 1, "failed": 0}


# --- the client itself ---------------------------------------------------------------------------------
async def test_ipv6_loopback_is_refused_at_connect_time():
    async with LocalHttp(host="::1") as target, webhook_client() as client:
        with pytest.raises(httpx.ConnectError, match="loopback"):
            await client.post(f"http://[::1]:{target.port}/hook", content=b"{}")
    assert target.received == []


async def test_an_ipv4_mapped_ipv6_loopback_is_refused_at_connect_time():
    async with LocalHttp() as target, webhook_client() as client:
        with pytest.raises(httpx.ConnectError, match="loopback"):
            await client.post(f"http://[::ffff:127.0.0.1]:{target.port}/hook", content=b"{}")
    assert target.received == []


async def test_a_name_is_refused_when_any_of_its_addresses_is_internal():
    """A resolver answer that mixes a public and an internal address is refused whole."""

    async def resolver(host: str, port: int) -> list[str]:
        return ["93.184.215.14", "127.0.0.1"]

    async with LocalHttp() as target, webhook_client(resolver=resolver) as client:
        with pytest.raises(httpx.ConnectError, match="127.0.0.1: loopback"):
            await client.post(f"http://crm.test:{target.port}/hook", content=b"{}")
    assert target.received == []


async def test_the_connection_goes_to_the_checked_address_with_the_name_as_host():
    """The name is resolved once, by the guard; the request still names the host it was sent to."""
    asked: list[str] = []

    async def resolver(host: str, port: int) -> list[str]:
        asked.append(host)
        return ["127.0.0.1"]

    allow = egress.parse_networks(["127.0.0.1/32"])
    async with LocalHttp() as target, webhook_client(allow, resolver=resolver) as client:
        r = await client.post(f"http://crm.test:{target.port}/hook", content=b"{}")
    assert r.status_code == 200 and asked == ["crm.test"]
    assert target.received[0][1]["host"] == f"crm.test:{target.port}"


async def test_a_name_that_does_not_resolve_is_a_connect_error():
    async with webhook_client() as client:
        with pytest.raises(httpx.ConnectError):
            await client.post("http://no-such-host.invalid/hook", content=b"{}")


async def test_the_next_checked_address_is_tried_when_one_does_not_answer():
    async def resolver(host: str, port: int) -> list[str]:
        return ["127.0.0.2", "127.0.0.1"]  # nothing listens on 127.0.0.2

    allow = egress.parse_networks(["127.0.0.0/8"])
    async with LocalHttp() as target, webhook_client(allow, resolver=resolver) as client:
        assert (await client.post(f"http://crm.test:{target.port}/hook", content=b"{}")).status_code == 200
    assert len(target.received) == 1


async def test_a_lookup_that_does_not_answer_is_a_connect_timeout():
    async def resolver(host: str, port: int) -> list[str]:
        await asyncio.sleep(5)
        return ["93.184.215.14"]

    started = asyncio.get_running_loop().time()
    async with webhook_client(timeout=0.2, resolver=resolver) as client:
        with pytest.raises(httpx.ConnectTimeout):
            await client.post("http://crm.test/hook", content=b"{}")
    assert asyncio.get_running_loop().time() - started < 2
