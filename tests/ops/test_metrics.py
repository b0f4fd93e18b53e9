"""Prometheus metrics at /metrics (issue 8): who may scrape, and that each metric moves."""

from __future__ import annotations

import asyncio
import re
from dataclasses import replace

import httpx
import orjson
import pytest
import websockets

from feeds_server.api.app import create_app
from feeds_server.runtime.services import Services
from tests import factory
from tests.realtime.helpers import connection_token, org_with_reader

pytestmark = pytest.mark.parametrize("backend", ["sqlite"])


def sample(text: str, name: str, **labels: str) -> float:
    """The sum of the samples of `name` that carry `labels` in the exposition text (0 when absent)."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        metric, _, value = line.rpartition(" ")
        base, _, label_text = metric.partition("{")
        found = dict(re.findall(r'(\w+)="([^"]*)"', label_text))
        if base == name and all(found.get(k) == v for k, v in labels.items()):
            total += float(value)
    return total


async def scrape(client: httpx.AsyncClient, **headers: str) -> str:
    r = await client.get("/metrics", headers=headers)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    return r.text


async def test_requests_errors_refusals_and_outboxes_are_counted(client, settings):
    before = await scrape(client)
    alice = await factory.sign_up(client, factory.unique("Alice"))
    org = await factory.create_org(alice)
    route = "/api/v1/orgs/{slug}/posts"
    assert (await alice.post(f"/api/v1/orgs/{org['slug']}/posts", json={"body": "hi"})).status_code == 201
    assert (await alice.get(f"/api/v1/orgs/{org['slug']}/posts/999999")).status_code == 404
    assert (await alice.post(f"/api/v1/orgs/{org['slug']}/invitations", json={"email": "new.person@example.com"})).status_code == 201
    after = await scrape(client)

    assert sample(after, "feeds_http_request_duration_seconds_count", method="POST", route=route) == (
        sample(before, "feeds_http_request_duration_seconds_count", method="POST", route=route) + 1
    )
    assert org["slug"] not in after  # route templates, never raw paths
    assert sample(after, "feeds_http_request_duration_seconds_count", method="GET", route="/api/v1/orgs/{slug}/posts/{post_id}") >= 1
    assert sample(after, "feeds_http_errors_total", status="404") >= sample(before, "feeds_http_errors_total", status="404") + 1
    assert sample(after, "feeds_outbox_depth", outbox="email") >= 1  # the invitation, not sent yet
    assert sample(after, "feeds_outbox_oldest_due_seconds", outbox="email") >= 0
    assert "feeds_outbox_depth{outbox=\"webhook\"} 0.0" in after
    assert 'feeds_connections{node="' in after


async def test_rate_limit_refusals_are_counted(services):
    app = create_app(services=Services.build(replace(services.settings, rate_signins_per_ip=(1, 60))))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as client:
        before = sample(await scrape(client), "feeds_rate_limited_total", limit="signins_per_ip")
        for _ in range(2):
            await client.post("/api/v1/auth/signin", json={"email": "nobody@example.com", "password": "whatever1"})
        assert sample(await scrape(client), "feeds_rate_limited_total", limit="signins_per_ip") == before + 1
    await app.state.services.close()


@pytest.mark.parametrize(
    ("overrides", "headers", "status"),
    [
        ({}, {}, 200),  # loopback: allowed by default
        ({"trusted_proxies": ("127.0.0.1/32",)}, {"X-Forwarded-For": "203.0.113.9"}, 403),  # through the balancer
        ({"metrics_allow": ("10.0.0.0/8",)}, {}, 403),
        ({"metrics_allow": ()}, {"X-Forwarded-For": "203.0.113.9"}, 200),  # empty: public
        ({"metrics_enabled": False}, {}, 404),
    ],
)
async def test_who_may_scrape(services, overrides, headers, status):
    app = create_app(services=Services.build(replace(services.settings, **overrides)))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as client:
        r = await client.get("/metrics", headers=headers)
    await app.state.services.close()
    assert r.status_code == status
    if status != 200:
        assert r.json()["error"]["code"] in {"metrics_not_allowed", "not_found"}


async def test_connections_deliveries_latency_and_recoveries_of_a_real_node(start_node, settings, services):
    node = start_node(FEEDS_NODE_NAME="node-a")
    alice, bob, slug = await org_with_reader(node.url, settings, services)
    http = httpx.AsyncClient(base_url=node.url)
    before = (await http.get("/metrics")).text

    ws = await websockets.connect(node.ws_url)
    await ws.send(orjson.dumps({"id": 1, "connect": {"token": await connection_token(bob, slug)}}).decode())
    subs = orjson.loads(await asyncio.wait_for(ws.recv(), 5))["connect"]["subs"]
    assert (await alice.post(f"/api/v1/orgs/{slug}/posts", json={"body": "live"})).status_code == 201
    await asyncio.wait_for(ws.recv(), 5)
    during = (await http.get("/metrics")).text
    assert sample(during, "feeds_connections", node="node-a") == 1
    assert sample(during, "feeds_deliveries_total") > sample(before, "feeds_deliveries_total")
    assert sample(during, "feeds_delivery_latency_seconds_count") > sample(before, "feeds_delivery_latency_seconds_count")
    await ws.close()

    # Reconnect asking to recover every channel from its position, and one from an unknown epoch.
    assert (await alice.post(f"/api/v1/orgs/{slug}/posts", json={"body": "missed"})).status_code == 201
    # ($counts has no history: nothing to recover on it.)
    recover = {ch: {"recover": True, "epoch": s["epoch"], "offset": s["offset"]} for ch, s in subs.items() if "epoch" in s}
    first = next(iter(recover))
    recover[first] = {"recover": True, "epoch": "not-the-epoch", "offset": 0}
    ws = await websockets.connect(node.ws_url)
    await ws.send(orjson.dumps({"id": 1, "connect": {"token": await connection_token(bob, slug), "subs": recover}}).decode())
    await asyncio.wait_for(ws.recv(), 5)
    after = (await http.get("/metrics")).text
    await ws.close()
    await http.aclose()
    assert sample(after, "feeds_recoveries_total", result="recovered") == sample(before, "feeds_recoveries_total", result="recovered") + len(recover) - 1
    assert sample(after, "feeds_recoveries_total", result="failed") == sample(before, "feeds_recoveries_total", result="failed") + 1
