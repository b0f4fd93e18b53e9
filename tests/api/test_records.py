"""Records and following (F-FOLLOW-1 … F-FOLLOW-10, F-FEED-4, F-FEED-5)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from feeds_server import limits
from tests import factory


@pytest.fixture
async def crm(client, settings):  # type: ignore[no-untyped-def]
    """An org with an admin, two reps (Rep under Manager), and an integration token."""
    admin = await factory.sign_up(client, factory.unique("Admin"))
    org = await factory.create_org(admin)
    b = f"/api/v1/orgs/{org['slug']}"
    ceo = (await admin.get(f"{b}/roles")).json()["roles"][0]["id"]
    manager_role = (await admin.post(f"{b}/roles", json={"name": "Manager", "parent_id": ceo})).json()["role"]["id"]
    rep_role = (await admin.post(f"{b}/roles", json={"name": "Rep", "parent_id": manager_role})).json()["role"]["id"]
    manager = await factory.sign_up(client, factory.unique("Manager"))
    rep = await factory.sign_up(client, factory.unique("Rep"))
    await factory.invite_and_join(admin, org["slug"], manager, settings.mail_dir, role_id=manager_role)
    await factory.invite_and_join(admin, org["slug"], rep, settings.mail_dir, role_id=rep_role)
    token = (await admin.post(f"{b}/integrations", json={"name": "CRM"})).json()["token"]
    return {"admin": admin, "manager": manager, "rep": rep, "org": org, "b": b, "token": token, "client": client}


async def send(crm, *events, token=None):  # type: ignore[no-untyped-def]
    r = await crm["client"].post(
        f"{crm['b']}/integration/record-events", json={"events": list(events)}, headers={"authorization": f"Bearer {token or crm['token']}"}
    )
    return r


def ev(event_id, type_="created", module="Deals", crm_id="D-1", **record):  # type: ignore[no-untyped-def]
    extra = {k: record.pop(k) for k in ("changes", "note", "actor_email") if k in record}
    return {"event_id": event_id, "type": type_, "module": module, "record": {"id": crm_id, **record}, **extra}


async def items(actor, crm, **params):  # type: ignore[no-untyped-def]
    return (await actor.get(f"{crm['b']}/feed", params=params)).json()["items"]


async def test_owner_follows_automatically_and_sees_created_edited_deleted_with_a_business_card(crm):
    rep = crm["rep"]
    r = await send(crm, ev("e1", name="Acme 200 seats", owner_email=rep.email, fields={"Amount": 50000, "Stage": "Proposal"}))
    assert r.status_code == 200 and r.json()["results"][0]["status"] == "applied"
    await send(crm, ev("e2", "edited", name="Acme 200 seats", fields={"Amount": 75000}, changes=[{"field": "Amount", "old": 50000, "new": 75000}]))
    await send(crm, ev("e3", "deleted"))
    got = await items(rep, crm)
    assert [i["data"]["change"] for i in got] == ["deleted", "edited", "created"]
    card = got[1]["data"]["record"]
    assert card["module"] == "Deals" and card["name"] == "Acme 200 seats" and card["owner"]["id"] == rep.id
    assert {"field": "Amount", "value": 75000} in card["key_fields"]
    assert got[1]["data"]["fields"] == [{"field": "Amount", "old": 50000, "new": 75000}]
    assert await items(crm["manager"], crm) == []  # not a follower
    notes = (await rep.get(f"{crm['b']}/notifications")).json()
    assert notes["unread"] == 3 and {n["kind"] for n in notes["notifications"]} == {"record_owned"}


async def test_a_replayed_batch_creates_nothing_twice(crm):
    batch = [ev("r1", name="Once", owner_email=crm["rep"].email), ev("r2", "edited", fields={"x": 1})]
    first = await send(crm, *batch)
    again = await send(crm, *batch)
    assert [r["status"] for r in first.json()["results"]] == ["applied", "applied"]
    assert [r["status"] for r in again.json()["results"]] == ["duplicate", "duplicate"]
    assert len(await items(crm["rep"], crm)) == 2


async def test_batches_of_500_are_accepted_and_501_refused(crm):
    many = [ev(f"b{i}", crm_id=f"L-{i}", module="Leads", name=f"Lead {i}") for i in range(limits.MAX_RECORD_EVENTS_PER_BATCH + 1)]
    assert (await send(crm, *many)).status_code == 422
    assert (await send(crm, *many[:-1])).status_code == 200


async def test_unticked_modules_produce_no_feed_items(crm):
    admin, rep = crm["admin"], crm["rep"]
    await admin.put(f"{crm['b']}/feed-modules", json={"modules": {"Deals": False}})
    await send(crm, ev("u1", name="Hidden", owner_email=rep.email))
    assert await items(rep, crm) == []
    await send(crm, ev("u2", module="Leads", crm_id="L-1", name="Shown", owner_email=rep.email))
    assert [i["module"] for i in await items(rep, crm)] == ["Leads"]


async def test_follow_unfollow_and_followed_by_me_pages(crm):
    manager = crm["manager"]
    ids = []
    for i in range(7):
        r = await send(crm, ev(f"f{i}", module="Deals" if i % 2 else "Leads", crm_id=f"X-{i}", name=f"R{i}"))
        ids.append(r.json()["results"][0]["record_id"])
    for rid in ids:
        assert (await manager.put(f"{crm['b']}/records/{rid}/follow")).json()["record"]["following"] is True
    seen, cursor = [], None
    while True:
        page = (await manager.get(f"{crm['b']}/followed-records", params={"limit": 3, **({"cursor": cursor} if cursor else {})})).json()
        seen += [r["id"] for r in page["records"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == ids
    deals = (await manager.get(f"{crm['b']}/followed-records", params={"module": "Deals"})).json()["records"]
    assert [r["id"] for r in deals] == ids[1::2]
    assert (await manager.delete(f"{crm['b']}/records/{ids[0]}/follow")).status_code == 204
    assert (await manager.delete(f"{crm['b']}/records/{ids[0]}/follow")).status_code == 404
    await send(crm, ev("f-edit", "edited", module="Deals", crm_id="X-1", fields={"a": 1}))
    assert [i["data"]["record"]["crm_id"] for i in await items(manager, crm)] == ["X-1"]


@pytest.mark.parametrize("days,status", [(0, 422), (1, 200), (limits.MAX_DORMANT_DAYS, 200), (limits.MAX_DORMANT_DAYS + 1, 422)])
async def test_dormant_days_from_1_to_180(crm, days, status):
    r = await crm["rep"].get(f"{crm['b']}/dormant-records", params={"days": days})
    assert r.status_code == status
    if status == 422:
        assert r.json()["error"]["code"] == "invalid_dormant_days"


async def test_dormant_records_are_those_not_updated_for_n_days(crm, services):
    rep = crm["rep"]
    start = services.clock()
    services.clock = lambda: start
    await send(crm, ev("d1", crm_id="D-old", name="Old", owner_email=rep.email))
    services.clock = lambda: start + timedelta(days=10)
    await send(crm, ev("d2", crm_id="D-new", name="New", owner_email=rep.email))
    await send(crm, ev("d3", module="Leads", crm_id="L-old", name="Other"))
    services.clock = lambda: start + timedelta(days=30)
    rep = await factory.sign_in(crm["client"], rep.email)
    names = lambda r: [x["name"] for x in r.json()["records"]]  # noqa: E731
    assert names(await rep.get(f"{crm['b']}/dormant-records", params={"days": 20})) == ["Old", "New"]
    assert names(await rep.get(f"{crm['b']}/dormant-records", params={"days": 30})) == ["Old"]
    services.clock = lambda: start + timedelta(days=30) - timedelta(seconds=1)
    rep = await factory.sign_in(crm["client"], rep.email)
    assert names(await rep.get(f"{crm['b']}/dormant-records", params={"days": 30})) == []
    assert names(await rep.get(f"{crm['b']}/dormant-records", params={"days": 20, "module": "Leads"})) == []


def rule(name, module="Deals", **followers):  # type: ignore[no-untyped-def]
    return {"name": name, "module": module, "criteria": {"field": "Amount", "type": "number", "op": "gt", "value": 50000},
            "followers": followers or {"creator": True}}


async def test_fifth_rule_per_module_is_accepted_and_sixth_refused(crm):
    rep = crm["rep"]
    for i in range(limits.MAX_RULES_PER_MODULE_PER_CREATOR):
        assert (await rep.post(f"{crm['b']}/rules", json=rule(f"r{i}"))).status_code == 201
    r = await rep.post(f"{crm['b']}/rules", json=rule("sixth"))
    assert r.status_code == 422 and r.json()["error"]["code"] == "too_many_rules"
    assert (await rep.post(f"{crm['b']}/rules", json=rule("other module", module="Leads"))).status_code == 201


async def test_admin_only_follower_options_are_refused_to_members(crm):
    rep, admin = crm["rep"], crm["admin"]
    for option in ({"record_creator": True}, {"owner_superior_role": True}, {"users": [admin.id]}):
        r = await rep.post(f"{crm['b']}/rules", json=rule("x", **option))
        assert r.status_code == 403 and r.json()["error"]["code"] == "admin_only_follower_option"
    assert (await admin.post(f"{crm['b']}/rules", json=rule("ok", owner_superior_role=True, creator=False))).status_code == 201


async def test_rules_make_the_owners_superior_role_and_territory_members_follow(crm, settings):
    admin, manager, rep = crm["admin"], crm["manager"], crm["rep"]
    terr = (await admin.post(f"{crm['b']}/territories", json={"name": "Nordics"})).json()["territory"]["id"]
    watcher = await factory.sign_up(crm["client"], factory.unique("Watcher"))
    await factory.invite_and_join(admin, crm["org"]["slug"], watcher, settings.mail_dir)
    await admin.put(f"{crm['b']}/territories/{terr}/members/{watcher.id}")
    r = await admin.post(f"{crm['b']}/rules", json=rule("big deals", creator=False, owner_superior_role=True, territories=[terr]))
    assert r.status_code == 201
    await send(crm, ev("s1", crm_id="small", name="Small", owner_email=rep.email, fields={"Amount": 100}))
    await send(crm, ev("s2", crm_id="big", name="Big", owner_email=rep.email, fields={"Amount": 90000}))
    assert [i["data"]["record"]["name"] for i in await items(manager, crm)] == ["Big"]
    assert [i["data"]["record"]["name"] for i in await items(watcher, crm)] == ["Big"]
    assert await items(admin, crm) == []
    await send(crm, ev("s3", "edited", crm_id="small", fields={"Amount": 60000}))
    assert [i["data"]["record"]["name"] for i in await items(manager, crm)][0] == "Small"
    shared = (await watcher.get(f"{crm['b']}/rules")).json()
    assert [x["name"] for x in shared["shared_with_me"]] == ["big deals"] and shared["created_by_me"] == []
    rid = shared["shared_with_me"][0]["id"]
    assert (await watcher.delete(f"{crm['b']}/rules/{rid}")).status_code == 403
    assert (await rep.delete(f"{crm['b']}/rules/{rid}")).status_code == 404
    assert (await admin.delete(f"{crm['b']}/rules/{rid}")).status_code == 204


async def test_rule_preview_shows_matching_records_and_their_followers(crm):
    admin, rep = crm["admin"], crm["rep"]
    for i, amount in enumerate((10, 60000, 80000)):
        await send(crm, ev(f"p{i}", crm_id=f"P-{i}", name=f"Deal {i}", owner_email=rep.email, fields={"Amount": amount}))
    r = await admin.post(f"{crm['b']}/rules/preview", json={"module": "Deals", "criteria": rule("x")["criteria"], "followers": {"creator": True, "owner_superior_role": True}})
    body = r.json()
    assert r.status_code == 200 and body["criteria_text"] == "Amount > 50000"
    assert sorted(m["record"]["name"] for m in body["matches"]) == ["Deal 1", "Deal 2"]
    assert {f["id"] for f in body["matches"][0]["followers"]} == {admin.id, crm["manager"].id}
    bad = await admin.post(f"{crm['b']}/rules/preview", json={"module": "Deals", "criteria": {"field": "A", "type": "boolean", "op": "gt", "value": 1}})
    assert bad.status_code == 422 and bad.json()["error"]["details"]["path"] == "criteria.op"


async def test_crm_notes_show_as_comments_and_comments_go_back_as_signed_notes(crm, services):
    admin, rep = crm["admin"], crm["rep"]
    received: list[tuple[dict, dict]] = []
    fail_first = [True]

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        headers = dict(line.split(": ", 1) for line in head.decode().split("\r\n")[1:] if ": " in line)
        body = await reader.readexactly(int(headers.get("content-length", headers.get("Content-Length", "0"))))
        status = "500 Internal Server Error" if fail_first[0] else "200 OK"
        fail_first[0] = False
        if status == "200 OK":
            received.append(({k.lower(): v for k, v in headers.items()}, __import__("orjson").loads(body)))
        writer.write(f"HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".encode())
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    integ = (await admin.get(f"{crm['b']}/integrations")).json()["integrations"][0]["id"]
    secret = (await admin.put(f"{crm['b']}/integrations/{integ}/webhook", json={"url": f"http://127.0.0.1:{port}/notes"})).json()["secret"]
    await send(crm, ev("n1", name="Noted", owner_email=rep.email))
    await send(crm, ev("n2", "note_added", note={"id": "crm-note-1", "text": "Called the customer"}))
    item = (await items(rep, crm))[0]
    assert item["latest_comments"][0]["body"] == "Called the customer" and item["latest_comments"][0]["data"]["source"] == "crm"
    assert (await rep.post(f"{crm['b']}/posts/{item['id']}/comments", json={"body": "Follow-up on Friday"})).status_code == 201
    from feeds_server.actions.webhooks import deliver_webhooks, sign

    assert await deliver_webhooks(services, burst=True) == 0  # the CRM answered 500: retried later
    now = services.clock()
    services.clock = lambda: now + timedelta(hours=1)
    assert await deliver_webhooks(services, burst=True) == 1
    headers, payload = received[0]
    assert payload["type"] == "note.created" and payload["note"]["text"] == "Follow-up on Friday"
    assert payload["record"] == {"module": "Deals", "crm_id": "D-1"}
    raw = __import__("orjson").dumps(payload)
    assert headers["x-feeds-signature"] == sign(secret, headers["x-feeds-timestamp"], raw)
    server.close()


async def test_integration_tokens_work_only_for_their_own_org(crm, client):
    other_admin = await factory.sign_up(client, factory.unique("Other"))
    other = await factory.create_org(other_admin)
    r = await client.post(f"/api/v1/orgs/{other['slug']}/integration/record-events", json={"events": [ev("i1", name="X")]},
                          headers={"authorization": f"Bearer {crm['token']}"})
    assert r.status_code == 401
    rid = (await send(crm, ev("i2", name="Mine"))).json()["results"][0]["record_id"]
    assert (await other_admin.get(f"/api/v1/orgs/{other['slug']}/records/{rid}")).status_code == 404
    assert (await other_admin.put(f"/api/v1/orgs/{other['slug']}/records/{rid}/follow")).status_code == 404
    r = await client.post(f"{crm['b']}/integration/record-events", json={"events": [ev("i3")]}, headers={"authorization": "Bearer fsk_forged"})
    assert r.status_code == 401
