"""How the server hands out the web client: types, caching, security headers, no file outside it."""

from __future__ import annotations

import httpx
import pytest

from feeds_server import limits


@pytest.fixture
def http(web_server):  # type: ignore[no-untyped-def]
    with httpx.Client(base_url=web_server.url, timeout=10) as client:
        yield client


def test_page_is_html_with_a_strict_content_security_policy(http):
    r = http.get("/")
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    assert '<script type="module" src="/app/main.js">' in r.text
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "object-src 'none'" in csp and "frame-ancestors 'none'" in csp
    assert r.headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize(("path", "content_type"), [
    ("/app/main.js", "text/javascript; charset=utf-8"),
    ("/app/views/wall.js", "text/javascript; charset=utf-8"),
    ("/app/app.css", "text/css; charset=utf-8"),
    ("/app/favicon.svg", "image/svg+xml"),
])
def test_assets_have_their_type_and_revalidate_by_etag(http, path, content_type):
    r = http.get(path)
    assert r.status_code == 200
    assert r.headers["content-type"] == content_type
    assert r.headers["cache-control"] == "no-cache"
    again = http.get(path, headers={"If-None-Match": r.headers["etag"]})
    assert again.status_code == 304
    assert again.content == b""


def test_limits_module_carries_the_servers_numbers(http):
    """The composer checks attachments and length with the numbers of feeds_server/limits.py."""
    r = http.get("/app/limits.js")
    assert r.headers["content-type"] == "text/javascript; charset=utf-8"
    assert f"export const MAX_POST_CHARS = {limits.MAX_POST_CHARS};" in r.text
    assert f"export const MAX_FILES_PER_POST = {limits.MAX_FILES_PER_POST};" in r.text
    assert f"export const MAX_FILE_BYTES = {limits.MAX_FILE_BYTES};" in r.text
    assert f"export const MAX_FILES_TOTAL_BYTES = {limits.MAX_FILES_TOTAL_BYTES};" in r.text
    assert f"export const MAX_DORMANT_DAYS = {limits.MAX_DORMANT_DAYS};" in r.text


def test_centrifuge_sdk_is_served_as_an_es_module(http, centrifuge_sdk):
    r = http.get("/vendor/centrifuge.js")
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/javascript; charset=utf-8"
    assert r.content == centrifuge_sdk.read_bytes()
    assert "export {" in r.text and "Centrifuge" in r.text


@pytest.mark.parametrize("path", [
    "/app/%2e%2e/api/web.py",
    "/app/..%2f..%2fpyproject.toml",
    "/app/.hidden.js",
    "/app/missing.js",
    "/app/views",
    "/app/main.py",
])
def test_nothing_outside_the_client_folder_is_served(http, path):
    assert http.get(path).status_code == 404


def test_api_answers_are_unchanged(http):
    r = http.get("/api/v1/me")
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "unauthenticated"
