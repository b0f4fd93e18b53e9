"""HTTP abuse (issue 9): dead credentials, hostile uploads, hostile text and hostile pagination
are refused with a 4xx and the error shape, never a 500, and leak nothing.

Already covered elsewhere (not repeated here): no credentials → 401 (tests/api/test_input_validation.py),
ids out of range, malformed JSON, unknown fields, NUL in names (same file); declared sizes over the
limit, `../` and control characters in a file name, HTML served as an attachment
(tests/api/test_attachments_and_visibility.py); other orgs' ids on every endpoint
(tests/api/test_isolation_matrix.py)."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import pytest

from feeds_server import limits
from feeds_server.domain import cursors
from feeds_server.store.base import utcnow
from tests import factory
from tests.realtime.helpers import actor_on


async def _member(client, settings):  # type: ignore[no-untyped-def]
    owner = await factory.sign_up(client, factory.unique("Owner"))
    org = await factory.create_org(owner)
    return owner, org, f"/api/v1/orgs/{org['slug']}"


async def _refused(client, token: str, base: str) -> None:  # type: ignore[no-untyped-def]
    for path in ("/api/v1/me", f"{base}/feed", f"{base}/members"):
        r = await client.get(path, headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 401, (path, r.text)
        assert set(r.json()) == {"error"}


# --- tokens ------------------------------------------------------------------------------------


async def test_forged_tokens_are_refused_before_any_data(client, settings):
    owner, org, base = await _member(client, settings)
    real = owner.token
    for forged in (real[:-1] + ("A" if real[-1] != "A" else "B"), "fst_" + "A" * 43, real + "x", "Bearer", "fst_\x00", "x" * 5000):
        await _refused(client, forged, base)


async def test_a_signed_out_token_is_refused(client, settings):
    owner, org, base = await _member(client, settings)
    assert (await owner.post("/api/v1/auth/signout")).status_code == 204
    await _refused(client, owner.token, base)


async def test_an_expired_token_is_refused(client, settings, services):
    owner, org, base = await _member(client, settings)
    services.clock = lambda: utcnow() + timedelta(days=400)
    await _refused(client, owner.token, base)


async def test_the_token_of_an_erased_user_is_refused(client, settings):
    owner, org, base = await _member(client, settings)
    r = await owner.post("/api/v1/me/erase", json={"password": factory.PASSWORD})
    assert r.status_code == 202, r.text
    await _refused(client, owner.token, base)


# --- uploads -----------------------------------------------------------------------------------


def _multipart(name: str, content: bytes, ctype: str, boundary: str = "XyZ") -> bytes:
    return (
        f'--{boundary}\r\nContent-Disposition: form-data; name="message"\r\n\r\n{{"body": "file"}}\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="{name}"\r\nContent-Type: {ctype}\r\n\r\n'
    ).encode() + content + f"\r\n--{boundary}--\r\n".encode()


async def _raw_post(node, path: str, token: str, body: bytes, length: int, close_early: bool = False) -> bytes:  # type: ignore[no-untyped-def]
    """A request written by hand: the Content-Length header says what the test wants, not what is sent."""
    reader, writer = await asyncio.open_connection("127.0.0.1", node.port)
    writer.write((f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
                  f"Content-Type: multipart/form-data; boundary=XyZ\r\nContent-Length: {length}\r\n\r\n").encode() + body)
    await writer.drain()
    if close_early:
        writer.write_eof()
    try:
        return await asyncio.wait_for(reader.read(65536), 10)
    finally:
        writer.close()


async def test_a_lying_content_length_is_refused_and_stores_nothing(node, settings, services):
    owner = await actor_on(node.url, factory.unique("Owner"))
    org = await factory.create_org(owner)
    path = f"/api/v1/orgs/{org['slug']}/posts"
    body = _multipart("a.txt", b"y" * 5000, "text/plain")
    short = await _raw_post(node, path, owner.token, body, 100)
    assert short.startswith(b"HTTP/1.1 4"), short[:200]
    long = await _raw_post(node, path, owner.token, body, len(body) + 10_000, close_early=True)
    assert long == b"" or long.startswith(b"HTTP/1.1 4"), long[:200]
    assert (await owner.get(f"/api/v1/orgs/{org['slug']}/feed")).json()["items"] == []
    files = [p for p in settings.files_dir.rglob("*") if p.is_file()] if settings.files_dir.exists() else []
    assert files == []


async def test_a_chunked_upload_without_length_is_measured_as_it_arrives(client, settings):
    owner, org, base = await _member(client, settings)

    async def chunks():  # type: ignore[no-untyped-def]
        yield _multipart("a.txt", b"z" * 1000, "text/plain")

    r = await client.post(f"{base}/posts", content=chunks(), headers={**owner.headers, "content-type": "multipart/form-data; boundary=XyZ"})
    assert r.status_code == 201, r.text
    assert r.json()["post"]["attachments"][0]["size"] == 1000

    async def too_much():  # type: ignore[no-untyped-def]
        head, tail = _multipart("b.bin", b"", "application/octet-stream").split(b"\r\n--XyZ--")
        yield head
        for _ in range(limits.MAX_FILE_BYTES // (1024 * 1024) + 1):
            yield b"q" * (1024 * 1024)
        yield b"\r\n--XyZ--" + tail

    r = await client.post(f"{base}/posts", content=too_much(), headers={**owner.headers, "content-type": "multipart/form-data; boundary=XyZ"})
    assert r.status_code == 413, r.text


@pytest.mark.parametrize("name", ["../../../etc/passwd", "..\\..\\boot.ini", "a\x00.txt", "/abs/path.txt", "\x00", "....//x"])
async def test_path_tricks_and_nul_in_file_names_are_neutralised(client, settings, name):
    owner, org, base = await _member(client, settings)
    r = await owner.post(f"{base}/posts", files=[("files", (name, b"data", "text/plain"))], data={"message": json.dumps({"body": "f"})})
    assert r.status_code in (201, 422), r.text
    if r.status_code == 201:
        stored = r.json()["post"]["attachments"][0]["filename"]
        assert "/" not in stored and "\\" not in stored and "\x00" not in stored and stored not in ("", ".", "..")
    root = settings.files_dir.resolve()
    assert all(p.resolve().is_relative_to(root) for p in root.rglob("*"))


@pytest.mark.parametrize("declared", ["image/png", "text/html", "application/javascript", "image/svg+xml", "nonsense", "text/html; charset=utf-7"])
async def test_a_spoofed_content_type_is_never_served_as_active_content(client, settings, declared):
    owner, org, base = await _member(client, settings)
    payload = b"<html><script>alert(document.cookie)</script></html>"
    r = await owner.post(f"{base}/posts", files=[("files", ("pic.png", payload, declared))], data={"message": json.dumps({"body": "f"})})
    assert r.status_code == 201, r.text
    got = await owner.get(f"{base}/attachments/{r.json()['post']['attachments'][0]['id']}")
    assert got.content == payload
    assert not got.headers["content-type"].startswith(("text/html", "application/javascript", "image/svg"))
    assert got.headers["x-content-type-options"] == "nosniff"
    assert got.headers["content-disposition"].startswith("attachment")


# --- text --------------------------------------------------------------------------------------


@pytest.mark.parametrize("raw", [
    b'{"body": "a\\u0000b"}', b'{"body": "\\u0000"}', b'{"body": "a\x00b"}',
    b'{"body": "\\ud800"}', b'{"body": "x\\udfff y"}', b'{"body": "\\ud800\\ud800"}', b'{"body": "\xed\xa0\x80"}',
])
async def test_nul_bytes_and_lone_surrogates_are_refused_never_500(client, settings, raw):
    owner, org, base = await _member(client, settings)
    for path in ("/posts", "/groups"):
        body = raw if path == "/posts" else raw.replace(b'"body"', b'"name"')[:-1] + b', "sources": []}'
        r = await client.post(base + path, content=body, headers={**owner.headers, "content-type": "application/json"})
        assert r.status_code in (400, 422), (path, r.status_code, r.text)
        assert set(r.json()) == {"error"}
    assert (await owner.get(f"{base}/feed")).json()["items"] == []


async def test_script_tags_are_kept_as_text_and_served_as_json(client, settings):
    owner, org, base = await _member(client, settings)
    body = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    r = await owner.post(f"{base}/posts", json={"body": body})
    assert r.status_code == 201
    got = await owner.get(f"{base}/posts/{r.json()['post']['id']}")
    assert got.headers["content-type"].startswith("application/json")
    assert got.json()["post"]["body"] == body
    assert got.json()["post"]["segments"] == [{"type": "text", "text": body}]


# --- pagination --------------------------------------------------------------------------------


@pytest.mark.parametrize("query", [
    "limit=1000000000", "limit=-1", "limit=0", "limit=1e3", "limit=" + "9" * 400, "limit=abc",
    "cursor=AAAA", "cursor=" + "A" * 5000, "cursor=%00", "cursor=../../", "cursor=" + "MTIz",
])
async def test_huge_limits_and_forged_cursors_are_422(client, settings, query):
    owner, org, base = await _member(client, settings)
    for path in ("/feed", "/members", "/notifications"):
        r = await owner.get(f"{base}{path}?{query}")
        assert r.status_code in (200, 422), (path, query, r.text)
        if r.status_code == 200:
            assert "limit" in query and "cursor" not in query
        else:
            assert r.json()["error"]["code"] in ("invalid_cursor", "invalid_query", "validation_failed"), r.text


async def test_the_largest_page_is_the_documented_one(client, settings):
    owner, org, base = await _member(client, settings)
    assert (await owner.get(f"{base}/feed?limit={limits.MAX_PAGE_SIZE}")).status_code == 200
    assert (await owner.get(f"{base}/feed?limit={limits.MAX_PAGE_SIZE + 1}")).status_code == 422


async def test_a_cursor_from_another_org_shows_only_ones_own_org(client, settings):
    owner_a, org_a, base_a = await _member(client, settings)
    owner_b, org_b, base_b = await _member(client, settings)
    mine = [(await owner_b.post(f"{base_b}/posts", json={"body": f"b{i}"})).json()["post"]["id"] for i in range(3)]
    theirs = [(await owner_a.post(f"{base_a}/posts", json={"body": f"a{i}"})).json()["post"]["id"] for i in range(5)]
    page = (await owner_a.get(f"{base_a}/feed?limit=2")).json()
    assert page["next_cursor"]
    r = await owner_b.get(f"{base_b}/feed?limit=100&cursor={page['next_cursor']}")
    assert r.status_code in (200, 422)
    if r.status_code == 200:
        got = {i["id"] for i in r.json()["items"]}
        assert not got & set(theirs) and got <= set(mine)
    far = cursors.encode(utcnow() + timedelta(days=3650), 2**62)
    r = await owner_b.get(f"{base_b}/feed?limit=100&cursor={far}")
    assert r.status_code == 200 and {i["id"] for i in r.json()["items"]} == set(mine)


@pytest.mark.parametrize("body", [b"--XyZ\r\n[]--XyZ--\r\n", b"--XyZ\r\n\r\n\r\n--XyZ--", b"--XyZ\r\nContent-Disposition: form-data\r\n\r\n", b"garbage"])
async def test_a_malformed_multipart_body_is_400(client, settings, body):
    """Found by the fuzzer (tests/abuse/fuzz.py): a part whose headers do not parse was a 500."""
    owner, org, base = await _member(client, settings)
    r = await client.post(f"{base}/posts", content=body, headers={**owner.headers, "content-type": "multipart/form-data; boundary=XyZ"})
    assert r.status_code in (400, 422), r.text


async def test_a_part_name_outside_latin_1_is_not_a_500(client, settings):
    """Found by bench/fuzz.py: a multipart part name with characters beyond Latin-1 was a 500."""
    owner, org, base = await _member(client, settings)
    body = '--XyZ\r\nContent-Disposition: form-data; name="😀名"\r\n\r\nnull\r\n--XyZ--\r\n'.encode()
    r = await client.post(f"{base}/posts", content=body, headers={**owner.headers, "content-type": "multipart/form-data; boundary=XyZ"})
    assert r.status_code in (400, 422), r.text


@pytest.mark.parametrize("url", ["http://crm.example:aD/hook", "http://crm.example:99999/", "http://:80/hook", "https://[::1/x"])
async def test_a_webhook_url_whose_host_or_port_does_not_parse_is_422(client, settings, url):
    """Found by bench/fuzz.py: a non-numeric port was a 500 when the URL was written to the audit log."""
    owner, org, base = await _member(client, settings)
    integration = (await owner.post(f"{base}/integrations", json={"name": "CRM"})).json()["integration"]["id"]
    r = await owner.put(f"{base}/integrations/{integration}/webhook", json={"url": url})
    assert r.status_code == 422, r.text
    ok = await owner.put(f"{base}/integrations/{integration}/webhook", json={"url": "https://crm.example:8443/hook"})
    assert ok.status_code == 200, ok.text
