"""What a reviewer checks on every answer: security headers, HSTS only behind TLS, a request id in
every error that matches the header and the log, client request ids that cannot reach a header or a
log line unchecked, and no stack trace in a 500."""

from __future__ import annotations

import logging
from dataclasses import replace

import httpx
import pytest

from feeds_server.api.app import create_app
from feeds_server.api.pipeline import build_route
from feeds_server.api.routing import PUBLIC, Endpoint
from feeds_server.runtime.services import Services
from tests import factory


@pytest.mark.parametrize("path", ["/api/v1/me", "/healthz", "/openapi.json", "/no/such/route", "/"])
async def test_every_answer_carries_nosniff_and_no_referrer_and_no_hsts_over_http(client, path):
    r = await client.get(path)
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["referrer-policy"] == "no-referrer"
    assert "strict-transport-security" not in r.headers


async def test_hsts_is_sent_when_the_node_is_reached_over_tls(settings):
    services = Services.build(replace(settings, public_url="https://feeds.example.com"))
    try:
        app = create_app(services=services)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as c:
            for path in ("/healthz", "/api/v1/me"):
                r = await c.get(path)
                assert r.headers["strict-transport-security"] == "max-age=31536000; includeSubDomains"
                assert r.headers["x-content-type-options"] == "nosniff"  # once, not twice
                assert r.headers.get_list("x-content-type-options") == ["nosniff"]
    finally:
        await services.close()


async def test_an_error_names_its_request_id_as_the_header_does(client):
    r = await client.get("/api/v1/me")
    assert r.status_code == 401
    assert r.json()["error"]["request_id"] == r.headers["x-request-id"]
    assert len(r.headers["x-request-id"]) == 32


@pytest.mark.parametrize("sent, kept", [("abc-123_x.y:z", True), ("a" * 64, True), ("a" * 65, False),
                                         ("x\r\nSet-Cookie: a=b", False), ("é", False), ("a b", False)])
async def test_a_client_request_id_is_kept_only_if_it_is_a_short_token(client, sent, kept):
    r = await client.get("/api/v1/me", headers={"x-request-id": sent.encode("utf-8")})
    rid = r.headers["x-request-id"]
    assert (rid == sent) is kept
    assert r.json()["error"]["request_id"] == rid
    assert "set-cookie" not in r.headers


async def test_a_500_says_internal_error_with_its_request_id_and_never_the_trace(app, caplog):
    async def broken(ctx):  # type: ignore[no-untyped-def]
        raise RuntimeError("secret detail of the server")

    app.router.routes.insert(0, build_route(Endpoint("GET", "/api/v1/broken", broken, access=PUBLIC)))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app, raise_app_exceptions=False), base_url="http://test") as c:
        with caplog.at_level(logging.ERROR, logger="feeds_server.api"):
            r = await c.get("/api/v1/broken")
    assert r.status_code == 500
    error = r.json()["error"]
    assert error["code"] == "internal_error" and error["request_id"] == r.headers["x-request-id"]
    assert "secret" not in r.text and "Traceback" not in r.text and "RuntimeError" not in r.text
    assert any("secret detail" in (rec.exc_text or str(rec.exc_info)) for rec in caplog.records)


async def test_the_answers_of_a_real_node_carry_the_headers(settings, services, tmp_path):
    """Through uvicorn and the node's HTTP protocol too, with a refusal the protocol writes itself."""
    from tests.realtime.conftest import node_env
    from tests.server import ServerProcess

    node = ServerProcess(node_env(settings, FEEDS_PUBLIC_URL="https://feeds.example.com"), log_path=tmp_path / "node.log").start()
    try:
        async with httpx.AsyncClient(base_url=node.url) as c:
            r = await c.get("/api/v1/me")
            assert r.status_code == 401 and r.headers["strict-transport-security"].startswith("max-age=")
            owner = await factory.sign_up(c, factory.unique("Owner"))
            assert (await owner.get("/api/v1/me")).headers["x-content-type-options"] == "nosniff"
            big = await c.get("/healthz", headers={"x-fill": "f" * 20_000})
            assert big.status_code == 431 and big.json()["error"]["request_id"] == big.headers["x-request-id"]
    finally:
        node.stop()
