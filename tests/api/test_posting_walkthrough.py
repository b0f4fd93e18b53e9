from tests import factory


async def test_post_mention_group_comment_feed(client, services, settings):
    alice = await factory.sign_up(client, "Alice Smoke")
    bob = await factory.sign_up(client, "Bob Smoke")
    org = await factory.create_org(alice, "feed-smoke")
    slug = org["slug"]
    await factory.invite_and_join(alice, slug, bob, settings.mail_dir)
    r = await alice.post(f"/api/v1/orgs/{slug}/posts", json={"body": f"hi @[user:{bob.id}]"})
    assert r.status_code == 201, r.text
    post = r.json()["post"]
    assert post["segments"][1] == {"type": "mention", "kind": "user", "id": bob.id, "name": "Bob Smoke"}
    r = await alice.post(f"/api/v1/orgs/{slug}/groups", json={"name": "Core", "sources": [{"type": "user", "id": alice.id}]})
    assert r.status_code == 201, r.text
    gid = r.json()["group"]["id"]
    r = await alice.post(f"/api/v1/orgs/{slug}/posts", json={"body": "group only", "group_id": gid})
    assert r.status_code == 201, r.text
    r = await bob.post(f"/api/v1/orgs/{slug}/posts/{post['id']}/comments", json={"body": "thanks"})
    assert r.status_code == 201, r.text
    r = await bob.get(f"/api/v1/orgs/{slug}/feed")
    assert r.status_code == 200, r.text
    items = r.json()["items"]
    assert [i["body"] for i in items] == [post["body"]]
    assert items[0]["comment_count"] == 1
    r = await alice.get(f"/api/v1/orgs/{slug}/feed", params={"limit": 1})
    page1 = r.json()
    assert [i["body"] for i in page1["items"]] == ["group only"]
    r = await alice.get(f"/api/v1/orgs/{slug}/feed", params={"limit": 1, "cursor": page1["next_cursor"]})
    assert [i["body"] for i in r.json()["items"]] == [post["body"]]
    files = [("files", ("a.txt", b"x" * 10, "text/plain")), ("files", ("b.bin", b"y" * 5, "application/x-evil"))]
    r = await alice.post(f"/api/v1/orgs/{slug}/posts", files=files, data={"message": '{"body": "files"}'})
    assert r.status_code == 201, r.text
    att = r.json()["post"]["attachments"]
    assert [a["size"] for a in att] == [10, 5]
    r = await bob.get(f"/api/v1/orgs/{slug}/attachments/{att[1]['id']}")
    assert r.status_code == 200 and r.content == b"y" * 5
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["content-type"].startswith("application/octet-stream")
    r = await alice.delete(f"/api/v1/orgs/{slug}/posts/{post['id']}")
    assert r.status_code == 204
    r = await client.post(f"/api/v1/orgs/{slug}/posts", json={"body": "once"}, headers={**alice.headers, "Idempotency-Key": "k1"})
    r2 = await client.post(f"/api/v1/orgs/{slug}/posts", json={"body": "once"}, headers={**alice.headers, "Idempotency-Key": "k1"})
    assert r.json() == r2.json() and r2.headers.get("idempotent-replayed") == "true"
    r3 = await client.post(f"/api/v1/orgs/{slug}/posts", json={"body": "twice"}, headers={**alice.headers, "Idempotency-Key": "k1"})
    assert r3.status_code == 409
