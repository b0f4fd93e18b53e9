"""Each feed item says why its reader has it: mentioned (directly, through a role, through a group),
owner, follower (by hand, through a rule), group member, participant, or nothing for an org-wide post.
Computed per page with a fixed number of queries; live publications carry no per-reader reason."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event, select

from feeds_server.domain.feed_reasons import FeedReader, ItemFacts, Mentioned, RecordTie, feed_reason
from feeds_server.store.models import Event
from feeds_server.store.scope import org_session
from tests import factory
from tests.api.records_helpers import crm, ev, items, send  # noqa: F401 - `crm` is a fixture


async def _post(actor: factory.Actor, b: str, body: str, **target: Any) -> dict[str, Any]:
    r = await actor.post(f"{b}/posts", json={"body": body, **target})
    assert r.status_code == 201, r.text
    return r.json()["post"]


def _reasons(page_items: list[dict[str, Any]]) -> dict[int, Any]:
    return {i["id"]: i["reason"] for i in page_items}


async def _group(crm: dict[str, Any], name: str, *members: factory.Actor) -> int:
    r = await crm["admin"].post(f"{crm['b']}/groups", json={"name": name, "sources": [{"type": "user", "id": m.id} for m in members]})
    assert r.status_code == 201, r.text
    return r.json()["group"]["id"]


async def test_mentions_say_how_the_reader_was_named(crm):
    """Direct, through the reader's role, through one of the reader's groups; others' mentions are no reason."""
    admin, manager, rep, b = crm["admin"], crm["manager"], crm["rep"], crm["b"]
    sales = await _group(crm, "Sales", rep, manager)
    direct = await _post(admin, b, f"hello @[user:{rep.id}]")
    via_role = await _post(admin, b, f"reps: @[role:{crm['roles']['rep']}]")
    via_group = await _post(admin, b, f"team @[group:{sales}]")
    both = await _post(admin, b, f"@[group:{sales}] and @[user:{rep.id}]")  # a direct mention wins
    plain = await _post(admin, b, "an org-wide post")
    got = _reasons(await items(rep, crm))
    assert got[direct["id"]] == {"code": "mentioned"}
    assert got[via_role["id"]] == {"code": "mentioned_via_role", "role_id": crm["roles"]["rep"], "role_name": "Rep"}
    assert got[via_group["id"]] == {"code": "mentioned_via_group", "group_id": sales, "group_name": "Sales"}
    assert got[both["id"]] == {"code": "mentioned"}
    assert got[plain["id"]] is None
    # The manager holds another role and is not the one named directly.
    theirs = _reasons(await items(manager, crm))
    assert theirs[direct["id"]] is None and theirs[via_role["id"]] is None
    assert theirs[via_group["id"]]["code"] == "mentioned_via_group"


async def test_private_messages_group_posts_and_comments(crm):
    """participant for a private message to or from the reader and for a post they commented on;
    group_member (with the group) for a group post, on the wall and on the group's own feed."""
    admin, manager, rep, b = crm["admin"], crm["manager"], crm["rep"], crm["b"]
    sales = await _group(crm, "Sales", rep, manager)
    dm = await _post(admin, b, "just for you", recipient_id=rep.id)
    group_post = await _post(manager, b, "in the group", group_id=sales)
    org_post = await _post(admin, b, "what do you think?")
    assert (await rep.post(f"{b}/posts/{org_post['id']}/comments", json={"body": "good"})).status_code == 201
    got = _reasons(await items(rep, crm))
    assert got[dm["id"]] == {"code": "participant"}
    assert got[group_post["id"]] == {"code": "group_member", "group_id": sales, "group_name": "Sales"}
    assert got[org_post["id"]] == {"code": "participant"}
    assert _reasons(await items(admin, crm))[dm["id"]] == {"code": "participant"}  # from the reader
    assert _reasons(await items(manager, crm))[org_post["id"]] is None
    r = await rep.get(f"{b}/groups/{sales}/feed")
    assert r.status_code == 200 and _reasons(r.json()["items"]) == {group_post["id"]: got[group_post["id"]]}
    # The single post, saved items, pins and search answers carry the reader's reason too.
    assert (await rep.get(f"{b}/posts/{dm['id']}")).json()["post"]["reason"] == {"code": "participant"}
    assert (await rep.put(f"{b}/posts/{dm['id']}/saved")).status_code == 200
    assert [i["reason"] for i in (await rep.get(f"{b}/saved")).json()["items"]] == [{"code": "participant"}]
    assert (await admin.put(f"{b}/posts/{org_post['id']}/pin")).status_code == 200
    assert [p["reason"] for p in (await rep.get(f"{b}/pins")).json()["pinned"]] == [{"code": "participant"}]
    hits = (await rep.get(f"{b}/search", params={"q": "group"})).json()["items"]
    assert [h["post"]["reason"] for h in hits if h["post"]["id"] == group_post["id"]] == [got[group_post["id"]]]


async def test_record_items_name_the_owner_the_manual_follow_and_the_rule(crm):
    """owner; follower_manual; follower_rule with the rule's id and name (the "edit the rule" action)."""
    admin, manager, rep, b = crm["admin"], crm["manager"], crm["rep"], crm["b"]
    rule = {"name": "High-value deals", "module": "Deals", "followers": {"creator": True},
            "criteria": {"field": "Amount", "type": "number", "op": "gt", "value": 50000}}
    r = await admin.post(f"{b}/rules", json=rule)
    assert r.status_code == 201, r.text
    rule_id = r.json()["rule"]["id"]
    await send(crm, ev("e1", name="Acme", owner_email=rep.email, fields={"Amount": 90000}))
    record_id = (await items(rep, crm))[0]["data"]["record"]["id"]
    assert (await manager.put(f"{b}/records/{record_id}/follow")).status_code == 200
    await send(crm, ev("e2", "edited", fields={"Amount": 95000}))
    edited = {"rep": (await items(rep, crm))[0], "manager": (await items(manager, crm))[0], "admin": (await items(admin, crm))[0]}
    assert len({i["id"] for i in edited.values()}) == 1
    assert edited["rep"]["reason"] == {"code": "owner", "record_id": record_id, "record_name": "Acme"}
    assert edited["manager"]["reason"] == {"code": "follower_manual", "record_id": record_id, "record_name": "Acme"}
    assert edited["admin"]["reason"] == {
        "code": "follower_rule", "record_id": record_id, "record_name": "Acme", "rule_id": rule_id, "rule_name": "High-value deals",
    }
    # The reason is the reader's tie now: after unfollowing, an older item has none left.
    assert (await manager.delete(f"{b}/records/{record_id}/follow")).status_code == 204
    assert (await items(manager, crm))[0]["reason"] is None


async def test_a_page_costs_the_same_few_queries_whatever_its_size(crm, services):
    """The reasons of a page are read in at most two queries for the whole page, never per item."""
    admin, rep, b = crm["admin"], crm["rep"], crm["b"]
    for i in range(3):
        await send(crm, ev(f"c{i}", crm_id=f"D-{i}", name=f"Deal {i}", owner_email=rep.email))
        await _post(admin, b, f"post {i} @[user:{rep.id}]")
        plain = await _post(admin, b, f"plain {i}")
        assert (await admin.post(f"{b}/posts/{plain['id']}/comments", json={"body": "more"})).status_code == 201
        if i:  # the reader commented: beyond the latest comments shown, so it is asked of the database
            assert (await rep.post(f"{b}/posts/{plain['id']}/comments", json={"body": "seen"})).status_code == 201
            for _ in range(3):
                assert (await admin.post(f"{b}/posts/{plain['id']}/comments", json={"body": "and more"})).status_code == 201

    async def statements(limit: int) -> tuple[int, list[dict[str, Any]]]:
        seen: list[str] = []

        def count(conn, cursor, statement, *args):  # type: ignore[no-untyped-def]
            if "set_config" not in statement:  # naming the org on a pooled connection, not the page's work
                seen.append(statement)

        event.listen(services.engine.sync_engine, "before_cursor_execute", count)
        try:
            page = await items(rep, crm, limit=limit)
        finally:
            event.remove(services.engine.sync_engine, "before_cursor_execute", count)
        return len(seen), page

    small, first = await statements(3)
    large, page = await statements(9)
    assert [i["reason"]["code"] for i in first] == ["participant", "mentioned", "owner"]
    assert [i["reason"] and i["reason"]["code"] for i in page[3:]] == ["participant", "mentioned", "owner", None, "mentioned", "owner"]
    assert large == small


async def test_live_publications_carry_no_reason(crm, services):
    """A post.created publication is shared by every subscriber: no per-reader reason in it."""
    admin, rep, b = crm["admin"], crm["rep"], crm["b"]
    await _post(admin, b, f"hi @[user:{rep.id}]", recipient_id=rep.id)
    async with org_session(services.sessions, crm["org"]["id"]) as session:
        payloads = (await session.execute(select(Event.payload).where(Event.type == "post.created"))).scalars().all()
    assert payloads and all("reason" not in p["post"] for p in payloads)


def test_the_order_of_reasons():
    """A mention beats the item's kind; the kind beats having commented; nothing for an org-wide post."""
    reader = FeedReader(user_id=1, role_id=5, group_ids=frozenset({7}))
    role = Mentioned("role", 5, "Rep")
    assert feed_reason(reader, ItemFacts(private=True, mentions=(role,))) == {"code": "mentioned_via_role", "role_id": 5, "role_name": "Rep"}
    assert feed_reason(reader, ItemFacts(mentions=(role, Mentioned("group", 7, "G")))) == {
        "code": "mentioned_via_group", "group_id": 7, "group_name": "G",
    }
    assert feed_reason(reader, ItemFacts(mentions=(Mentioned("user", 2), Mentioned("group", 8), Mentioned("role", 6)))) is None
    record = (3, "Deal")
    assert feed_reason(reader, ItemFacts(record=record, commented=True), RecordTie(owner=True, follow_source="owner"))["code"] == "owner"
    assert feed_reason(reader, ItemFacts(record=record, commented=True), RecordTie(owner=False))["code"] == "participant"
    assert feed_reason(reader, ItemFacts(record=record), RecordTie(owner=False, follow_source="owner"))["code"] == "follower_manual"
    assert feed_reason(reader, ItemFacts(record=record, commented=True), None) == {"code": "participant"}
    assert feed_reason(reader, ItemFacts(group=(7, "G"), commented=True)) == {"code": "group_member", "group_id": 7, "group_name": "G"}
    assert feed_reason(reader, ItemFacts()) is None
