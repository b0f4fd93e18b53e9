"""Attachments (F-POST-7) and who sees what (F-POST-1, F-POST-3, F-POST-4, F-POST-5, F-FEED-3)."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from feeds_server import limits
from feeds_server.store.models import Attachment, Post
from feeds_server.store.scope import org_session
from tests import factory
from tests.api.test_posts_and_feed import base, team  # noqa: F401 - fixture

MiB = 1024 * 1024


def files(*sizes: int) -> list[tuple[str, tuple[str, bytes, str]]]:
    return [("files", (f"f{i}.bin", b"x" * size, "application/octet-stream")) for i, size in enumerate(sizes)]


async def _post_files(actor, org, sizes, body="with files"):  # type: ignore[no-untyped-def]
    return await actor.post(f"{base(org)}/posts", files=files(*sizes), data={"message": json.dumps({"body": body})})


def _stored_files(settings) -> list[str]:  # type: ignore[no-untyped-def]
    root = settings.files_dir
    return [p.name for p in root.rglob("*") if p.is_file()] if root.exists() else []


async def _nothing_stored(services, settings, org) -> None:  # type: ignore[no-untyped-def]
    async with org_session(services.sessions, org["id"]) as s:
        assert (await s.execute(select(Post.id))).all() == []
        assert (await s.execute(select(Attachment.id))).all() == []
    assert _stored_files(settings) == []


async def test_five_files_are_accepted_and_a_sixth_refused(team, services, settings):  # noqa: F811
    owner, ann, bob, org = team
    r = await _post_files(ann, org, [10] * (limits.MAX_FILES_PER_POST + 1))
    assert r.status_code == 422 and r.json()["error"]["code"] == "too_many_files"
    assert r.json()["error"]["details"]["limit"] == limits.MAX_FILES_PER_POST
    await _nothing_stored(services, settings, org)
    r = await _post_files(ann, org, [10] * limits.MAX_FILES_PER_POST)
    assert r.status_code == 201 and len(r.json()["post"]["attachments"]) == limits.MAX_FILES_PER_POST


async def test_a_file_of_4_mib_is_accepted_and_4_mib_plus_one_byte_refused(team, services, settings):  # noqa: F811
    owner, ann, bob, org = team
    r = await _post_files(ann, org, [limits.MAX_FILE_BYTES + 1])
    assert r.status_code == 413 and r.json()["error"]["code"] == "file_too_large"
    await _nothing_stored(services, settings, org)
    r = await _post_files(ann, org, [limits.MAX_FILE_BYTES])
    assert r.status_code == 201 and r.json()["post"]["attachments"][0]["size"] == limits.MAX_FILE_BYTES


async def test_five_files_of_exactly_4_mib_make_20_mib_and_are_accepted(team):  # noqa: F811
    owner, ann, bob, org = team
    assert limits.MAX_FILES_PER_POST * limits.MAX_FILE_BYTES == limits.MAX_FILES_TOTAL_BYTES
    r = await _post_files(ann, org, [limits.MAX_FILE_BYTES] * limits.MAX_FILES_PER_POST)
    assert r.status_code == 201


async def test_more_than_20_mib_is_refused_as_soon_as_the_limit_is_crossed(team, services, settings):  # noqa: F811
    """The server stops reading at the limit: a chunked body (no Content-Length) is pulled only a
    little past 20 MiB, never to its end."""
    owner, ann, bob, org = team
    boundary = "xyzzy"
    pulled = 0
    chunk = b"y" * (256 * 1024)

    async def body():  # type: ignore[no-untyped-def]
        nonlocal pulled
        head = f'--{boundary}\r\nContent-Disposition: form-data; name="message"\r\n\r\n{{"body": "big"}}\r\n'.encode()
        yield head
        for i in range(limits.MAX_FILES_PER_POST):
            part = f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="f{i}"\r\nContent-Type: application/octet-stream\r\n\r\n'.encode()
            yield part
            sent = 0
            while sent < limits.MAX_FILE_BYTES:
                pulled += len(chunk)
                sent += len(chunk)
                yield chunk
            yield b"\r\n"
        # 16 MiB more that the server must never pull (five full files are already the 20 MiB maximum).
        for _ in range(64):
            pulled += len(chunk)
            yield chunk

    r = await ann.client.post(
        f"{base(org)}/posts", content=body(), headers={**ann.headers, "content-type": f"multipart/form-data; boundary={boundary}"}
    )
    assert r.status_code == 413 and r.json()["error"]["code"] in {"file_too_large", "files_too_large"}
    assert pulled < limits.MAX_FILES_TOTAL_BYTES + 2 * MiB
    await _nothing_stored(services, settings, org)


async def test_a_declared_size_over_20_mib_is_refused_before_reading(team, services, settings):  # noqa: F811
    owner, ann, bob, org = team
    r = await ann.client.post(
        f"{base(org)}/posts",
        content=b"",
        headers={**ann.headers, "content-type": "multipart/form-data; boundary=b", "content-length": str(limits.MAX_FILES_TOTAL_BYTES + 10 * MiB)},
    )
    assert r.status_code == 413 and r.json()["error"]["code"] == "files_too_large"
    await _nothing_stored(services, settings, org)


async def test_downloads_follow_the_post_and_are_safe(team, settings):  # noqa: F811
    owner, ann, bob, org = team
    group = await ann.post(f"{base(org)}/groups", json={"name": "Pair", "sources": [{"type": "user", "id": ann.id}]})
    assert group.status_code == 403  # Standard members cannot create groups
    gid = (await owner.post(f"{base(org)}/groups", json={"name": "Pair", "sources": [{"type": "user", "id": ann.id}]})).json()["group"]["id"]
    # Written by hand: httpx would percent-encode the control character in the file name.
    raw = (
        b'--XyZ\r\nContent-Disposition: form-data; name="message"\r\n\r\n{"body": "x"}\r\n'
        b'--XyZ\r\nContent-Disposition: form-data; name="files"; filename="pa\x01ss.html"\r\n\r\nx\r\n--XyZ--\r\n'
    )
    refused = await ann.post(f"{base(org)}/posts", content=raw, headers={"content-type": "multipart/form-data; boundary=XyZ"})
    assert refused.status_code == 422 and refused.json()["error"]["code"] == "invalid_filename"
    r = await ann.post(
        f"{base(org)}/posts",
        files=[("files", ("../../etc/pa\u202ess<wd>.html", b"<script>alert(1)</script>", "text/html"))],
        data={"message": json.dumps({"body": "group file", "group_id": gid})},
    )
    assert r.status_code == 201, r.text
    att = r.json()["post"]["attachments"][0]
    assert "/" not in att["filename"] and "\u202e" not in att["filename"]
    ok = await ann.get(f"{base(org)}/attachments/{att['id']}")
    assert ok.status_code == 200 and ok.content == b"<script>alert(1)</script>"
    assert ok.headers["content-type"].startswith("application/octet-stream")
    assert ok.headers["x-content-type-options"] == "nosniff"
    assert ok.headers["content-disposition"].startswith("attachment;")
    assert (await bob.get(f"{base(org)}/attachments/{att['id']}")).status_code == 404
    stranger = await factory.sign_up(ann.client, factory.unique("Stranger"))
    other = await factory.create_org(stranger)
    assert (await stranger.get(f"/api/v1/orgs/{other['slug']}/attachments/{att['id']}")).status_code == 404
    before = len(_stored_files(settings))
    assert (await ann.delete(f"{base(org)}/posts/{r.json()['post']['id']}")).status_code == 204
    assert len(_stored_files(settings)) == before - 1


VISIBILITY = [
    # kind, who sees it
    ("org post", {"author", "group member", "nested member", "role holder", "outsider"}),
    ("group post", {"author", "group member", "nested member"}),
    ("private to a user", {"author", "group member"}),
    ("private to a group", {"author", "group member", "nested member"}),
    # A mention never widens an item's audience: the role holder outside group A does not see it.
    ("group post mentioning a role", {"author", "group member", "nested member"}),
    ("group post mentioning a member", {"author", "group member", "nested member"}),
    ("private to a user mentioning its author", {"author", "group member"}),
    ("org post mentioning the nested group", {"author", "group member", "nested member", "role holder", "outsider"}),
    ("org post mentioning the outsider", {"author", "group member", "nested member", "role holder", "outsider"}),
]

# kind, who writes it, status and error code: nothing of it is stored, nobody sees anything.
REFUSED = [
    ("group post mentioning the outsider", "author", 422, "mention_outside_audience"),
    ("private to a user mentioning a third person", "author", 422, "mention_outside_audience"),
    ("private to a group mentioning the role holder", "author", 422, "mention_outside_audience"),
    ("group post by a non-member", "outsider", 404, "group_not_found"),
    ("private to a group from a non-member", "outsider", 404, "group_not_found"),
]


async def _matrix_org(client, settings):  # type: ignore[no-untyped-def]
    """Group A holds user `group member`, the author and group B; group B holds role Rep & subordinates
    (where `nested member` sits). `role holder` holds role Analyst; `outsider` is in neither.
    Returns the org's base path, the people, and each kind's body."""
    owner = await factory.sign_up(client, factory.unique("Owner"))
    org = await factory.create_org(owner)
    b = base(org)
    ceo = (await owner.get(f"{b}/roles")).json()["roles"][0]["id"]
    rep = (await owner.post(f"{b}/roles", json={"name": "Rep", "parent_id": ceo})).json()["role"]["id"]
    junior = (await owner.post(f"{b}/roles", json={"name": "Junior", "parent_id": rep})).json()["role"]["id"]
    analyst = (await owner.post(f"{b}/roles", json={"name": "Analyst", "parent_id": ceo})).json()["role"]["id"]
    people = {}
    for name, role in (("author", None), ("group member", None), ("nested member", junior), ("role holder", analyst), ("outsider", None)):
        actor = await factory.sign_up(client, factory.unique(name.replace(" ", "")))
        await factory.invite_and_join(owner, org["slug"], actor, settings.mail_dir, **({"role_id": role} if role else {}))
        people[name] = actor
    inner = (await owner.post(f"{b}/groups", json={"name": "B", "sources": [{"type": "role_and_subordinates", "id": rep}]})).json()["group"]["id"]
    outer = (await owner.post(f"{b}/groups", json={"name": "A", "sources": [
        {"type": "user", "id": people["group member"].id}, {"type": "user", "id": people["author"].id}, {"type": "group", "id": inner}]})).json()["group"]["id"]
    member, outsider, holder = people["group member"].id, people["outsider"].id, people["role holder"].id
    bodies = {
        "org post": {"body": "to all"},
        "group post": {"body": "to A", "group_id": outer},
        "private to a user": {"body": "psst", "recipient_id": member},
        "private to a group": {"body": "psst A", "group_id": outer, "private": True},
        "group post mentioning a role": {"body": f"cc @[role:{analyst}]", "group_id": outer},
        "group post mentioning a member": {"body": f"cc @[user:{member}]", "group_id": outer},
        "private to a user mentioning its author": {"body": f"as @[user:{people['author'].id}] said", "recipient_id": member},
        "org post mentioning the nested group": {"body": f"cc @[group:{inner}]"},
        "org post mentioning the outsider": {"body": f"cc @[user:{outsider}]"},
        "group post mentioning the outsider": {"body": f"cc @[user:{outsider}]", "group_id": outer},
        "private to a user mentioning a third person": {"body": f"about @[user:{outsider}]", "recipient_id": member},
        "private to a group mentioning the role holder": {"body": f"cc @[user:{holder}]", "group_id": outer, "private": True},
        "group post by a non-member": {"body": "let me in", "group_id": outer},
        "private to a group from a non-member": {"body": "let me in", "group_id": outer, "private": True},
    }
    return b, people, bodies


@pytest.mark.parametrize("kind,seen_by", VISIBILITY, ids=[k for k, _ in VISIBILITY])
async def test_visibility_matrix(client, settings, kind, seen_by):
    """F-POST-1, F-POST-3 (a mention never widens who sees an item), F-POST-4, F-POST-5."""
    b, people, bodies = await _matrix_org(client, settings)
    r = await people["author"].post(f"{b}/posts", json=bodies[kind])
    assert r.status_code == 201, r.text
    post = r.json()["post"]
    stranger = await factory.sign_up(client, factory.unique("Stranger"))
    await factory.create_org(stranger)
    for name, actor in people.items():
        expected = name in seen_by
        feed = [i["id"] for i in (await actor.get(f"{b}/feed")).json()["items"]]
        assert (post["id"] in feed) is expected, (kind, name)
        r = await actor.get(f"{b}/posts/{post['id']}")
        assert r.status_code == (200 if expected else 404), (kind, name)
        r = await actor.post(f"{b}/posts/{post['id']}/comments", json={"body": "c"})
        assert r.status_code == (201 if expected else 404), (kind, name)
    r = await stranger.get(f"{b}/posts/{post['id']}")
    assert r.status_code == 404 and r.json()["error"]["code"] == "org_not_found"


@pytest.mark.parametrize("kind,writer,status,code", REFUSED, ids=[k for k, *_ in REFUSED])
async def test_mentions_outside_the_audience_and_non_members_writing_to_a_group_are_refused(client, settings, kind, writer, status, code):
    """F-POST-3: mentioning someone outside a group post or private message is refused (422
    `mention_outside_audience`), naming them. F-POST-4: only members post or send privately to a
    group; a non-member gets 404, as for every route naming a group they are not in."""
    b, people, bodies = await _matrix_org(client, settings)
    r = await people[writer].post(f"{b}/posts", json=bodies[kind])
    assert r.status_code == status and r.json()["error"]["code"] == code, r.text
    if code == "mention_outside_audience":
        mentioned = next(p for p in people.values() if f"@[user:{p.id}]" in bodies[kind]["body"])
        assert r.json()["error"]["details"]["users"] == [{"id": mentioned.id, "name": mentioned.name}]
        assert mentioned.name in r.json()["error"]["message"]
    for name, actor in people.items():
        assert (await actor.get(f"{b}/feed")).json()["items"] == [], (kind, name)


async def test_group_membership_changes_take_effect_at_once(team):  # noqa: F811
    owner, ann, bob, org = team
    b = base(org)
    gid = (await owner.post(f"{b}/groups", json={"name": "Moving", "sources": [{"type": "user", "id": ann.id}]})).json()["group"]["id"]
    post = (await ann.post(f"{b}/posts", json={"body": "inside", "group_id": gid})).json()["post"]
    assert (await bob.get(f"{b}/posts/{post['id']}")).status_code == 404
    assert (await bob.get(f"{b}/groups/{gid}")).status_code == 404
    await owner.patch(f"{b}/groups/{gid}", json={"sources": [{"type": "user", "id": ann.id}, {"type": "user", "id": bob.id}]})
    assert (await bob.get(f"{b}/posts/{post['id']}")).status_code == 200
    page = (await bob.get(f"{b}/groups/{gid}")).json()
    assert {m["id"] for m in page["members"]} == {ann.id, bob.id}
    assert [i["id"] for i in (await bob.get(f"{b}/groups/{gid}/feed")).json()["items"]] == [post["id"]]
    await owner.patch(f"{b}/groups/{gid}", json={"sources": [{"type": "user", "id": ann.id}]})
    assert (await bob.get(f"{b}/posts/{post['id']}")).status_code == 404

