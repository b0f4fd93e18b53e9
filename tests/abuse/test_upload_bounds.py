"""An upload is bounded as a whole, not only file by file (F-POST-7): a stream of parts, bytes
before the first boundary or after the last are refused or left unread as soon as they pass the
bound, never gathered in memory."""

from __future__ import annotations

from collections.abc import AsyncIterator

from feeds_server import limits
from feeds_server.api.uploads import MAX_UPLOAD_BYTES
from tests import factory

CHUNK = 64 * 1024
MULTIPART = {"content-type": "multipart/form-data; boundary=XyZ"}


def _message(text: str = "hello") -> bytes:
    return b'--XyZ\r\nContent-Disposition: form-data; name="message"\r\n\r\n{"body": "' + text.encode() + b'"}\r\n'


class Stream:
    """A request body made of a head and then `count` chunks from `more`; counts what was read."""

    def __init__(self, head: bytes, more: bytes, count: int, tail: bytes = b"") -> None:
        self.head, self.more, self.count, self.tail = head, more, count, tail
        self.sent = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield self.head
        self.sent += len(self.head)
        for _ in range(self.count):
            yield self.more
            self.sent += len(self.more)
        if self.tail:
            yield self.tail


async def _poster(client):  # type: ignore[no-untyped-def]
    owner = await factory.sign_up(client, factory.unique("Owner"))
    org = await factory.create_org(owner)
    return owner, f"/api/v1/orgs/{org['slug']}/posts"


async def test_a_second_message_part_is_refused_at_once(client):
    """600 MB of `message` parts of 512 KiB: refused at the second, after ~1 MiB read."""
    owner, path = await _poster(client)
    part = b'--XyZ\r\nContent-Disposition: form-data; name="message"\r\n\r\n{"body": "' + b"x" * (512 * 1024) + b'"}\r\n'
    body = Stream(_message(), part, 1200)
    r = await client.post(path, content=body, headers={**owner.headers, **MULTIPART})
    assert r.status_code == 422 and r.json()["error"]["code"] == "missing_message", r.text
    assert body.sent < 4 * 1024 * 1024
    assert r.headers["connection"] == "close"


async def test_exactly_one_message_part_is_accepted(client):
    owner, path = await _poster(client)
    r = await client.post(path, content=_message() + b"--XyZ--\r\n", headers={**owner.headers, **MULTIPART})
    assert r.status_code == 201, r.text


async def test_endless_part_headers_are_cut_off(client):
    """Part headers are neither file nor message bytes: a part whose headers never end is refused
    after a few KiB (the parser's own header bounds, then the whole bound), never gathered."""
    owner, path = await _poster(client)
    head = b'--XyZ\r\nContent-Disposition: form-data; name="message"\r\n'
    line = b"".join(b"X-H%06d: %s\r\n" % (i, b"v" * 100) for i in range(500))
    body = Stream(head, line, MAX_UPLOAD_BYTES // len(line) + 50)
    r = await client.post(path, content=body, headers={**owner.headers, **MULTIPART})
    assert r.status_code in (400, 413), r.text
    assert body.sent <= 2 * len(line)


async def test_a_declared_length_over_the_whole_bound_is_refused_unread(client):
    owner, path = await _poster(client)
    body = Stream(_message(), b"z" * CHUNK, 100)
    headers = {**owner.headers, **MULTIPART, "content-length": str(MAX_UPLOAD_BYTES + 1)}
    r = await client.post(path, content=body, headers=headers)
    assert r.status_code == 413, r.text
    assert body.sent <= len(_message())


async def test_the_whole_bound_leaves_room_for_full_files_and_message(client):
    """Five files of 4 MiB (the 20 MiB cap) and a long message fit in the whole bound."""
    assert MAX_UPLOAD_BYTES >= limits.MAX_FILES_TOTAL_BYTES + 4 * (limits.MAX_POST_CHARS + 1) + 4096
    owner, path = await _poster(client)
    parts = [
        b'--XyZ\r\nContent-Disposition: form-data; name="files"; filename="f%d.bin"\r\n\r\n' % i + b"z" * limits.MAX_FILE_BYTES + b"\r\n"
        for i in range(limits.MAX_FILES_PER_POST)
    ]
    body = _message("\u00e9" * limits.MAX_POST_CHARS) + b"".join(parts) + b"--XyZ--\r\n"
    r = await client.post(path, content=body, headers={**owner.headers, **MULTIPART})
    assert r.status_code == 201, r.text
    assert len(r.json()["post"]["attachments"]) == limits.MAX_FILES_PER_POST


async def test_nothing_is_read_past_the_closing_boundary(client):
    """After `--XyZ--` the upload is complete: the post is made and the rest is left unread (the
    answer closes the connection so it is not taken for the next request)."""
    owner, path = await _poster(client)
    body = Stream(_message() + b"--XyZ--\r\n", b"t" * CHUNK, 10_000)
    r = await client.post(path, content=body, headers={**owner.headers, **MULTIPART})
    assert r.status_code == 201, r.text
    assert body.sent <= len(_message()) + 64 + CHUNK
    assert r.headers["connection"] == "close"
