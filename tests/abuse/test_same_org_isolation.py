"""Private items of one's own org, from the route table (issue 9, F-POST-3, F-POST-4, F-POST-7):
a member who is not in a group, and is neither party of a private message, gets 404 from every
endpoint that names the group, the posts, their comments or their attachments, and changes
nothing. Extends the cross-org matrix of tests/api/test_isolation_matrix.py to the same org."""

from __future__ import annotations

import json

from feeds_server.domain import permissions as perms
from tests import factory
from tests.api.test_posts_and_feed import team  # noqa: F401 - fixture
from tests.api.routes_matrix import ep_id, example, fill, org_endpoints

PRIVATE_KINDS = ("post_id", "comment_id", "attachment_id", "group_id")
NAMING_PRIVATE = org_endpoints(lambda ep: any(f"{{{k}:int}}" in ep.path for k in PRIVATE_KINDS) and ep.permission == perms.FEEDS_TAB)


async def _private_items(team):  # type: ignore[no-untyped-def]
    owner, ann, bob, org = team
    slug = org["slug"]
    base = f"/api/v1/orgs/{slug}"
    group = (await owner.post(f"{base}/groups", json={"name": "Inner", "sources": [{"type": "user", "id": ann.id}, {"type": "user", "id": owner.id}]})).json()["group"]["id"]
    items = []
    for message in ({"body": "group only", "group_id": group}, {"body": "just us", "recipient_id": owner.id}):
        r = await ann.post(f"{base}/posts", files=[("files", ("secret.txt", b"secret", "text/plain"))], data={"message": json.dumps(message)})
        assert r.status_code == 201, r.text
        post = r.json()["post"]
        comment = (await owner.post(f"{base}/posts/{post['id']}/comments", json={"body": "reply"})).json()["comment"]
        items.append({"post_id": post["id"], "comment_id": comment["id"], "attachment_id": post["attachments"][0]["id"], "group_id": group})
    return items


async def _state(ann, base: str, item: dict) -> dict:  # type: ignore[no-untyped-def]
    post = await ann.get(f"{base}/posts/{item['post_id']}")
    comments = await ann.get(f"{base}/posts/{item['post_id']}/comments")
    file = await ann.get(f"{base}/attachments/{item['attachment_id']}")
    feed = await ann.get(f"{base}/groups/{item['group_id']}/feed")
    return {"post": post.json(), "comments": comments.json(), "file": file.content, "feed": [i["id"] for i in feed.json()["items"]]}


async def test_every_endpoint_naming_a_private_item_of_ones_own_org_answers_404(team):  # noqa: F811
    owner, ann, bob, org = team
    items = await _private_items(team)
    base = f"/api/v1/orgs/{org['slug']}"
    assert len(NAMING_PRIVATE) >= 8, [ep_id(ep) for ep in NAMING_PRIVATE]
    before = [await _state(ann, base, item) for item in items]
    ids = {"user_id": bob.id, "node_id": 1, "profile_id": 1, "invitation_id": 1, "integration_id": 1, "notification_id": 1, "record_id": 1, "rule_id": 1}
    for item in items:
        for ep in NAMING_PRIVATE:
            r = await bob.client.request(ep.method, fill(ep, org["slug"], {**ids, **item}), json=example(ep.body), headers=bob.headers)
            assert r.status_code == 404, (ep_id(ep), item, r.status_code, r.text)
    assert [await _state(ann, base, item) for item in items] == before
    feed = (await bob.get(f"{base}/feed?limit=100")).json()["items"]
    assert not {i["id"] for i in feed} & {item["post_id"] for item in items}
