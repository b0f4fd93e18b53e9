"""Auto-follow rules: limits, follower options, evaluation on create and edit, lists, preview
(F-FOLLOW-4 … F-FOLLOW-7). The criteria language itself is tested in tests/unit/test_criteria.py."""

from __future__ import annotations

import pytest

from feeds_server import limits
from feeds_server.domain.records import ADMIN_ONLY_OPTIONS
from tests import factory
from tests.api.records_helpers import crm, ev, items, send  # noqa: F401 - `crm` is a fixture

BIG = {"field": "Amount", "type": "number", "op": "gt", "value": 50000}


def rule(name: str, module: str = "Deals", criteria: dict | None = None, **followers) -> dict:  # type: ignore[type-arg, no-untyped-def]
    return {"name": name, "module": module, "criteria": criteria or BIG, "followers": followers or {"creator": True}}


async def _member(crm, settings, prefix: str, **extra):  # type: ignore[no-untyped-def]
    user = await factory.sign_up(crm["client"], factory.unique(prefix))
    await factory.invite_and_join(crm["admin"], crm["org"]["slug"], user, settings.mail_dir, **extra)
    return user


async def test_fifth_rule_per_module_is_accepted_and_sixth_refused(crm):
    """F-FOLLOW-6: at most 5 per module for each user who creates them."""
    rep, manager = crm["rep"], crm["manager"]
    for i in range(limits.MAX_RULES_PER_MODULE_PER_CREATOR):
        assert (await rep.post(f"{crm['b']}/rules", json=rule(f"r{i}"))).status_code == 201
    r = await rep.post(f"{crm['b']}/rules", json=rule("sixth"))
    assert r.status_code == 422 and r.json()["error"]["code"] == "too_many_rules"
    assert r.json()["error"]["details"] == {"limit": limits.MAX_RULES_PER_MODULE_PER_CREATOR, "module": "Deals"}
    assert (await rep.post(f"{crm['b']}/rules", json=rule("other module", module="Leads"))).status_code == 201
    assert (await manager.post(f"{crm['b']}/rules", json=rule("other creator"))).status_code == 201
    first = (await rep.get(f"{crm['b']}/rules")).json()["created_by_me"][0]["id"]
    assert (await rep.delete(f"{crm['b']}/rules/{first}")).status_code == 204
    assert (await rep.post(f"{crm['b']}/rules", json=rule("fifth again"))).status_code == 201


@pytest.mark.parametrize("option", ADMIN_ONLY_OPTIONS)
async def test_admin_only_follower_options_are_refused_to_members(crm, option):
    """F-FOLLOW-5: only admins add followers other than the creator (on create, edit and preview)."""
    rep, admin = crm["rep"], crm["admin"]
    value = {"record_creator": True, "owner_superior_role": True, "users": [admin.id], "roles": [crm["roles"]["ceo"]]}.get(option)
    if value is None:  # groups, territories
        value = [await _group_or_territory(crm, option)]
    r = await rep.post(f"{crm['b']}/rules", json=rule("x", **{option: value}))
    assert r.status_code == 403 and r.json()["error"]["code"] == "admin_only_follower_option"
    assert r.json()["error"]["details"] == {"option": option}
    r = await rep.post(f"{crm['b']}/rules/preview", json={"module": "Deals", "criteria": BIG, "followers": {option: value}})
    assert r.status_code == 403
    mine = (await rep.post(f"{crm['b']}/rules", json=rule("mine"))).json()["rule"]["id"]
    assert (await rep.patch(f"{crm['b']}/rules/{mine}", json={"followers": {option: value}})).status_code == 403
    assert (await admin.post(f"{crm['b']}/rules", json=rule("ok", **{option: value}))).status_code == 201


async def _group_or_territory(crm, option: str) -> int:  # type: ignore[no-untyped-def]
    admin = crm["admin"]
    if option == "groups":
        return (await admin.post(f"{crm['b']}/groups", json={"name": "Watchers", "sources": [{"type": "user", "id": admin.id}]})).json()["group"]["id"]
    return (await admin.post(f"{crm['b']}/territories", json={"name": "Nordics"})).json()["territory"]["id"]


async def test_a_rule_needs_a_follower_and_named_followers_must_exist_in_the_org(crm):
    admin = crm["admin"]
    r = await admin.post(f"{crm['b']}/rules", json=rule("nobody", creator=False))
    assert r.status_code == 422 and r.json()["error"]["code"] == "no_followers"
    r = await admin.post(f"{crm['b']}/rules", json=rule("ghost", users=[999_999]))
    assert r.status_code == 404 and r.json()["error"]["code"] == "user_not_found"
    r = await admin.post(f"{crm['b']}/rules", json=rule("ghost", territories=[999_999]))
    assert r.status_code == 404 and r.json()["error"]["code"] == "territory_not_found"


async def test_a_rule_name_is_unique_per_creator_and_module(crm):
    rep = crm["rep"]
    assert (await rep.post(f"{crm['b']}/rules", json=rule("Big"))).status_code == 201
    r = await rep.post(f"{crm['b']}/rules", json=rule("Big"))
    assert r.status_code == 409 and r.json()["error"]["code"] == "rule_name_taken"
    assert (await rep.post(f"{crm['b']}/rules", json=rule("Big", module="Leads"))).status_code == 201


async def test_by_default_the_rules_creator_follows_matching_records(crm):
    """F-FOLLOW-4: a matching record is followed on creation and on edit; in any module, custom ones too."""
    rep, manager = crm["rep"], crm["manager"]
    assert (await manager.post(f"{crm['b']}/rules", json=rule("custom", module="Vendors_X"))).status_code == 201
    await send(crm, ev("c1", module="Vendors_X", crm_id="V-1", name="Small vendor", owner_email=rep.email, fields={"Amount": 10}))
    await send(crm, ev("c2", module="Vendors_X", crm_id="V-2", name="Big vendor", owner_email=rep.email, fields={"Amount": 90000}))
    assert [i["data"]["record"]["name"] for i in await items(manager, crm)] == ["Big vendor"]
    await send(crm, ev("c3", "edited", module="Vendors_X", crm_id="V-1", fields={"Amount": 60000}))
    got = await items(manager, crm)
    assert [(i["data"]["record"]["name"], i["data"]["change"]) for i in got] == [("Small vendor", "edited"), ("Big vendor", "created")]
    followed = (await manager.get(f"{crm['b']}/followed-records")).json()["records"]
    assert {r["name"] for r in followed} == {"Small vendor", "Big vendor"}


async def test_rules_make_the_owners_superior_role_and_territory_members_follow(crm, settings):
    """F-FOLLOW-5: users holding the role directly above the owner's; members of a territory and of those below it."""
    admin, manager, rep = crm["admin"], crm["manager"], crm["rep"]
    emea = (await admin.post(f"{crm['b']}/territories", json={"name": "EMEA"})).json()["territory"]["id"]
    nordics = (await admin.post(f"{crm['b']}/territories", json={"name": "Nordics", "parent_id": emea})).json()["territory"]["id"]
    watcher = await _member(crm, settings, "Watcher")
    outsider = await _member(crm, settings, "Outsider")
    await admin.put(f"{crm['b']}/territories/{nordics}/members/{watcher.id}")
    r = await admin.post(f"{crm['b']}/rules", json=rule("big deals", creator=False, owner_superior_role=True, territories=[emea]))
    assert r.status_code == 201
    await send(crm, ev("s1", crm_id="small", name="Small", owner_email=rep.email, fields={"Amount": 100}))
    await send(crm, ev("s2", crm_id="big", name="Big", owner_email=rep.email, fields={"Amount": 90000}))
    assert [i["data"]["record"]["name"] for i in await items(manager, crm)] == ["Big"]
    assert [i["data"]["record"]["name"] for i in await items(watcher, crm)] == ["Big"]
    assert await items(admin, crm) == [] and await items(outsider, crm) == []
    # The superior of a manager-owned record is the CEO role's holder (the admin), not the manager.
    await send(crm, ev("s3", crm_id="mgr", name="Manager's", owner_email=manager.email, fields={"Amount": 90000}))
    assert [i["data"]["record"]["name"] for i in await items(admin, crm)] == ["Manager's"]


async def test_rules_follow_the_record_creator_and_named_users_roles_and_groups(crm, settings):
    admin, manager, rep = crm["admin"], crm["manager"], crm["rep"]
    named = await _member(crm, settings, "Named")
    in_role = await _member(crm, settings, "InRole", role_id=crm["roles"]["manager"])
    in_group = await _member(crm, settings, "InGroup")
    group = (await admin.post(f"{crm['b']}/groups", json={"name": "Deal desk", "sources": [{"type": "user", "id": in_group.id}]})).json()["group"]["id"]
    followers = {"creator": False, "record_creator": True, "users": [named.id], "roles": [crm["roles"]["manager"]], "groups": [group]}
    assert (await admin.post(f"{crm['b']}/rules", json=rule("everyone", **followers))).status_code == 201
    await send(crm, ev("n1", name="Wide", owner_email=admin.email, creator_email=rep.email, fields={"Amount": 70000}))
    for who in (rep, named, manager, in_role, in_group):
        assert [i["data"]["record"]["name"] for i in await items(who, crm)] == ["Wide"], who.name


async def test_created_by_me_and_shared_with_me(crm, settings):
    """F-FOLLOW-7: users see the rules they created and those that name them; they change only their own."""
    admin, manager, rep = crm["admin"], crm["manager"], crm["rep"]
    terr = (await admin.post(f"{crm['b']}/territories", json={"name": "DACH"})).json()["territory"]["id"]
    await admin.put(f"{crm['b']}/territories/{terr}/members/{rep.id}")
    group = (await admin.post(f"{crm['b']}/groups", json={"name": "Reps", "sources": [{"type": "role", "id": crm["roles"]["rep"]}]})).json()["group"]["id"]
    ids = {}
    for name, followers in {"by user": {"users": [rep.id]}, "by role": {"roles": [crm["roles"]["rep"]]}, "by group": {"groups": [group]},
                            "by territory": {"territories": [terr]}, "not for rep": {"users": [manager.id]}}.items():
        ids[name] = (await admin.post(f"{crm['b']}/rules", json=rule(name, module=name.replace(" ", "_"), **followers))).json()["rule"]["id"]
    mine = (await rep.post(f"{crm['b']}/rules", json=rule("rep's own"))).json()["rule"]["id"]
    listed = (await rep.get(f"{crm['b']}/rules")).json()
    assert [r["name"] for r in listed["created_by_me"]] == ["rep's own"]
    assert [r["name"] for r in listed["shared_with_me"]] == ["by user", "by role", "by group", "by territory"]
    assert listed["shared_with_me"][0]["criteria_text"] == "Amount > 50000"
    r = await rep.patch(f"{crm['b']}/rules/{ids['by user']}", json={"name": "mine now"})
    assert r.status_code == 403 and r.json()["error"]["code"] == "not_rule_creator"
    assert (await rep.delete(f"{crm['b']}/rules/{ids['by role']}")).status_code == 403
    assert (await rep.patch(f"{crm['b']}/rules/{ids['not for rep']}", json={"name": "x"})).status_code == 404
    assert (await rep.delete(f"{crm['b']}/rules/{ids['not for rep']}")).status_code == 404
    r = await rep.patch(f"{crm['b']}/rules/{mine}", json={"name": "renamed", "description": "why", "criteria": {"field": "Stage", "type": "text", "op": "eq", "value": "Won"}})
    assert r.status_code == 200 and r.json()["rule"]["name"] == "renamed" and r.json()["rule"]["criteria_text"] == 'Stage = "Won"'
    assert (await rep.delete(f"{crm['b']}/rules/{mine}")).status_code == 204
    assert (await rep.get(f"{crm['b']}/rules")).json()["created_by_me"] == []
    assert (await admin.delete(f"{crm['b']}/rules/{ids['by user']}")).status_code == 204


async def test_an_edited_rule_applies_at_once(crm, services):
    """Compiled rules are cached by version: an edit within the same clock tick still takes effect."""
    rep = crm["rep"]
    frozen = services.clock()
    services.clock = lambda: frozen
    rid = (await rep.post(f"{crm['b']}/rules", json=rule("big"))).json()["rule"]["id"]
    await send(crm, ev("v1", crm_id="A", name="Won deal", fields={"Amount": 10, "Stage": "Won"}))
    assert await items(rep, crm) == []
    won = {"field": "Stage", "type": "picklist", "op": "eq", "value": "Won"}
    assert (await rep.patch(f"{crm['b']}/rules/{rid}", json={"criteria": won})).status_code == 200
    await send(crm, ev("v2", crm_id="B", name="Another won deal", fields={"Amount": 10, "Stage": "Won"}))
    assert [i["data"]["record"]["name"] for i in await items(rep, crm)] == ["Another won deal"]
    assert (await rep.delete(f"{crm['b']}/rules/{rid}")).status_code == 204
    await send(crm, ev("v3", crm_id="C", name="Third", fields={"Stage": "Won"}))
    assert len(await items(rep, crm)) == 1


async def test_invalid_criteria_are_refused_with_the_path_of_the_problem(crm):
    r = await crm["rep"].post(f"{crm['b']}/rules", json=rule("bad", criteria={"and": [BIG, {"field": "A", "type": "boolean", "op": "gt", "value": 1}]}))
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_criteria"
    assert r.json()["error"]["details"]["path"] == "criteria.and[1].op"


async def test_rule_preview_shows_matching_records_and_who_would_follow_them(crm):
    """Before saving: which current records match, and who would follow each. Nothing is saved."""
    admin, rep, manager = crm["admin"], crm["rep"], crm["manager"]
    for i, amount in enumerate((10, 60000, 80000)):
        await send(crm, ev(f"p{i}", crm_id=f"P-{i}", name=f"Deal {i}", owner_email=rep.email, fields={"Amount": amount}))
    await send(crm, ev("p9", crm_id="P-9", name="Deleted deal", fields={"Amount": 99999}), ev("p10", "deleted", crm_id="P-9"))
    body = {"module": "Deals", "criteria": BIG, "followers": {"creator": True, "owner_superior_role": True}}
    r = await admin.post(f"{crm['b']}/rules/preview", json=body)
    assert r.status_code == 200
    preview = r.json()
    assert preview["criteria_text"] == "Amount > 50000"
    assert (preview["scanned"], preview["matched"], preview["complete"]) == (3, 2, True)
    assert sorted(m["record"]["name"] for m in preview["matches"]) == ["Deal 1", "Deal 2"]
    for match in preview["matches"]:
        assert match["followers"] == sorted([{"id": admin.id, "name": admin.name}, {"id": manager.id, "name": manager.name}], key=lambda f: f["id"])
    assert (await admin.get(f"{crm['b']}/rules")).json()["created_by_me"] == []
    # A member previews with themselves as the follower.
    mine = (await rep.post(f"{crm['b']}/rules/preview", json={"module": "Deals", "criteria": BIG})).json()
    assert {f["id"] for m in mine["matches"] for f in m["followers"]} == {rep.id}
    bad = await admin.post(f"{crm['b']}/rules/preview", json={"module": "Deals", "criteria": {"field": "A", "type": "boolean", "op": "gt", "value": 1}})
    assert bad.status_code == 422 and bad.json()["error"]["details"]["path"] == "criteria.op"
    assert (await admin.post(f"{crm['b']}/rules/preview", json={**body, "followers": {"users": [999_999]}})).status_code == 404


async def test_rules_and_previews_stay_in_their_org(crm, client):
    """F-ORG-8: another org's rules are unknown; its preview sees only its own records."""
    rid = (await crm["admin"].post(f"{crm['b']}/rules", json=rule("A's rule"))).json()["rule"]["id"]
    await send(crm, ev("o1", name="A's big deal", fields={"Amount": 90000}))
    other_admin = await factory.sign_up(client, factory.unique("Other"))
    other = await factory.create_org(other_admin)
    ob = f"/api/v1/orgs/{other['slug']}"
    assert (await other_admin.patch(f"{ob}/rules/{rid}", json={"name": "stolen"})).status_code == 404
    assert (await other_admin.delete(f"{ob}/rules/{rid}")).status_code == 404
    assert (await other_admin.get(f"{ob}/rules")).json() == {"created_by_me": [], "shared_with_me": []}
    preview = (await other_admin.post(f"{ob}/rules/preview", json={"module": "Deals", "criteria": BIG})).json()
    assert preview["matches"] == [] and preview["scanned"] == 0
    r = await other_admin.post(f"{ob}/rules", json=rule("x", users=[crm["rep"].id]))
    assert r.status_code == 404 and r.json()["error"]["code"] == "user_not_found"
