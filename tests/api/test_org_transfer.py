"""Exporting an org and importing it into another with a mapping of users (F-OPS-3, F-ORG-8)."""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import select

from feeds_server.cli import data as data_cli
from feeds_server.actions import org_export, org_import
from feeds_server.actions.org_import import ImportRefused
from feeds_server.store.models import Event
from feeds_server.store.scope import org_session
from tests import factory

FILE_BYTES = os.urandom(300_000)


def _same_shape(value: Any) -> Any:
    """A feed item without its ids (an import gives new ones) and without the raw text (its tokens hold ids;
    the rendered `segments` stay, with the names)."""
    if isinstance(value, list):
        return [_same_shape(v) for v in value]
    if isinstance(value, dict):
        return {k: _same_shape(v) for k, v in value.items() if k != "id" and not k.endswith("_id") and k != "body"}
    return value


async def _source_org(client, settings) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """An org with posts, mentions, a group post, private messages, comments, a file, records and follows."""
    alice = await factory.sign_up(client, factory.unique("Alice"))
    org = await factory.create_org(alice)
    slug = org["slug"]
    b = f"/api/v1/orgs/{slug}"
    bob = await factory.sign_up(client, factory.unique("Bob"))
    carol = await factory.sign_up(client, factory.unique("Carol"))
    ceo = (await alice.get(f"{b}/roles")).json()["roles"][0]["id"]
    sales = (await alice.post(f"{b}/roles", json={"name": "Sales", "parent_id": ceo})).json()["role"]["id"]
    await factory.invite_and_join(alice, slug, bob, settings.mail_dir, role_id=sales)
    await factory.invite_and_join(alice, slug, carol, settings.mail_dir)
    team = (await alice.post(f"{b}/groups", json={"name": "Team", "sources": [{"type": "user", "id": alice.id}, {"type": "user", "id": carol.id}]})).json()["group"]["id"]

    async def post(actor: factory.Actor, body: dict[str, Any]) -> int:
        r = await actor.post(f"{b}/posts", json=body)
        assert r.status_code == 201, r.text
        return r.json()["post"]["id"]

    async def comment(actor: factory.Actor, post_id: int, text: str) -> None:
        assert (await actor.post(f"{b}/posts/{post_id}/comments", json={"body": text})).status_code == 201

    status = await post(alice, {"body": f"Welcome @[user:{bob.id}], @[role:{sales}] and @[group:{team}]!"})
    await comment(bob, status, f"Thanks @[user:{alice.id}]")
    await comment(carol, status, "Hello all")
    await post(carol, {"body": "Team only", "group_id": team})
    private = await post(alice, {"body": "Just for you, Bob", "recipient_id": bob.id})
    await comment(bob, private, "Got it")
    await post(carol, {"body": f"A secret for the team and @[user:{alice.id}]", "group_id": team, "private": True})
    await post(carol, {"body": f"Thanks @[user:{bob.id}]", "recipient_id": bob.id})
    r = await bob.post(f"{b}/posts", files=[("files", ("deck.bin", FILE_BYTES, "application/octet-stream"))], data={"message": '{"body": "The deck"}'})
    assert r.status_code == 201, r.text
    token = (await alice.post(f"{b}/integrations", json={"name": "CRM"})).json()["token"]
    events = [
        {"event_id": "e1", "type": "created", "module": "Deals", "record": {"id": "D-1", "name": "Big deal", "owner_email": alice.email, "fields": {"Amount": 5}}},
        {"event_id": "e2", "type": "edited", "module": "Deals", "record": {"id": "D-1", "fields": {"Amount": 9}}, "changes": [{"field": "Amount", "old": 5, "new": 9}]},
        {"event_id": "e3", "type": "created", "module": "Leads", "record": {"id": "L-1", "name": "A lead", "owner_email": bob.email}},
    ]
    r = await client.post(f"{b}/integration/record-events", json={"events": events}, headers={"authorization": f"Bearer {token}"})
    assert r.status_code == 200, r.text
    record_id = r.json()["results"][0]["record_id"]
    assert (await carol.put(f"{b}/records/{record_id}/follow")).status_code in (200, 204)
    r = await client.post(f"{b}/integration/record-events", json={"events": [
        {"event_id": "e4", "type": "note_added", "module": "Deals", "record": {"id": "D-1"}, "note": {"id": "N-1", "text": "Called them"}}]},
        headers={"authorization": f"Bearer {token}"})
    assert r.status_code == 200, r.text
    rule = {"name": "Big ones", "module": "Deals", "criteria": {"field": "Amount", "type": "number", "op": "gt", "value": 100}}
    assert (await alice.post(f"{b}/rules", json=rule)).status_code == 201
    assert (await alice.put(f"{b}/feed-modules", json={"modules": {"Leads": False}})).status_code == 200
    return {"slug": slug, "people": [alice, bob, carol], "team": team}


async def _target(client, source: dict[str, Any]) -> tuple[factory.Actor, str, list[factory.Actor]]:  # type: ignore[no-untyped-def]
    """Another org, and an account for each person of the source (same names, other emails)."""
    owner = await factory.sign_up(client, factory.unique("Target"))
    slug = (await factory.create_org(owner))["slug"]
    twins = [await factory.sign_up(client, p.name, email=f"{p.name.lower()}@new.example") for p in source["people"]]
    return owner, slug, twins


def _mapping(tmp_path: Path, source: dict[str, Any], twins: list[factory.Actor], leave_out: int | None = None) -> str:
    alice, bob, carol = source["people"]
    pairs = {alice.email: twins[0].email, bob.email.upper(): twins[1].email, str(carol.id): twins[2].email}
    if leave_out is not None:
        pairs.pop([alice.email, bob.email.upper(), str(carol.id)][leave_out])
    path = tmp_path / "users.json"
    path.write_text(json.dumps(pairs))
    return str(path)


async def _pages(actor: factory.Actor, url: str, key: str) -> list[dict[str, Any]]:
    out, cursor = [], None
    while True:
        r = await actor.get(url, params={"limit": "2", **({"cursor": cursor} if cursor else {})})
        assert r.status_code == 200, r.text
        out += r.json()[key]
        cursor = r.json().get("next_cursor")
        if not cursor:
            return out


async def test_an_exported_org_imported_elsewhere_reads_the_same_for_every_mapped_person(client, settings, tmp_path, monkeypatch):
    """F-OPS-3: the same feeds, group feed, notifications, follows and files, with new ids, in small batches."""
    monkeypatch.setattr(org_export, "BATCH", 2)
    monkeypatch.setattr(org_import, "BATCH", 3)
    source = await _source_org(client, settings)
    archive = tmp_path / "export.zip"
    assert await data_cli.export_org(settings, source["slug"], str(archive)) == 0
    owner, slug, twins = await _target(client, source)
    assert await data_cli.import_org(settings, slug, str(archive), _mapping(tmp_path, source, twins), None) == 0

    src, dst = f"/api/v1/orgs/{source['slug']}", f"/api/v1/orgs/{slug}"
    for person, twin in zip(source["people"], twins, strict=True):
        before = await _pages(person, f"{src}/feed", "items")
        after = await _pages(twin, f"{dst}/feed", "items")
        assert len(after) == len(before) > 3, person.name
        assert _same_shape(after) == _same_shape(before), person.name
        for path, key in (("/notifications", "notifications"), ("/followed-records", "records")):
            want = (await person.get(f"{src}{path}?limit=100")).json()[key]
            got = (await twin.get(f"{dst}{path}?limit=100")).json()[key]
            assert _same_shape(got) == _same_shape(want), (person.name, path)
    alice2 = twins[0]
    team = next(g for g in (await alice2.get(f"{dst}/groups")).json()["groups"] if g["name"] == "Team")
    assert _same_shape(await _pages(alice2, f"{dst}/groups/{team['id']}/feed", "items")) == _same_shape(
        await _pages(source["people"][0], f"{src}/groups/{source['team']}/feed", "items"))

    # The file came along, byte for byte; mentions point at the new people, roles and groups.
    deck = next(i for i in await _pages(twins[1], f"{dst}/feed", "items") if i["attachments"])
    r = await twins[1].get(f"{dst}/attachments/{deck['attachments'][0]['id']}")
    assert r.status_code == 200 and r.content == FILE_BYTES
    welcome = next(i for i in await _pages(twins[1], f"{dst}/feed", "items") if i["body"].startswith("Welcome"))
    sales = next(r for r in (await owner.get(f"{dst}/roles")).json()["roles"] if r["name"] == "Sales")
    assert welcome["body"] == f"Welcome @[user:{twins[1].id}], @[role:{sales['id']}] and @[group:{team['id']}]!"
    # Mapped people joined with their roles; the unticked module stays unticked; clients are told to reload.
    bob2 = (await owner.get(f"{dst}/members/{twins[1].id}")).json()["member"]
    assert bob2["role_id"] == sales["id"]
    modules = {m["module"]: m["enabled"] for m in (await owner.get(f"{dst}/feed-modules")).json()["modules"]}
    assert modules["Leads"] is False
    assert [r["name"] for r in (await alice2.get(f"{dst}/rules")).json()["created_by_me"]] == ["Big ones"]
    async with org_session(client._transport.app.state.services.sessions, owner.orgs[slug]["id"]) as session:
        types = list((await session.execute(select(Event.type).order_by(Event.seq))).scalars())
    assert types[-1] == "org.imported" and "org.import_batch" in types
    audit = (await owner.get(f"{dst}/audit", params={"action": "org.imported"})).json()["entries"]
    with zipfile.ZipFile(archive) as z:
        exported = orjson.loads(z.read("manifest.jsonl").splitlines()[-1])["counts"]
    assert audit[0]["details"]["counts"]["post"] == exported["post"] and audit[0]["details"]["counts"]["comment"] == exported["comment"]


async def test_people_the_mapping_leaves_out_refuse_the_import_with_their_list(client, settings, tmp_path):
    source = await _source_org(client, settings)
    archive = tmp_path / "export.zip"
    await data_cli.export_org(settings, source["slug"], str(archive))
    owner, slug, twins = await _target(client, source)
    carol = source["people"][2]
    with pytest.raises(SystemExit) as refused:
        await data_cli.import_org(settings, slug, str(archive), _mapping(tmp_path, source, twins, leave_out=2), None)
    assert carol.email in str(refused.value) and "--map-unknown-to" in str(refused.value)
    dst = f"/api/v1/orgs/{slug}"
    assert (await owner.get(f"{dst}/feed")).json()["items"] == []
    assert [r["name"] for r in (await owner.get(f"{dst}/roles")).json()["roles"]] == ["CEO"]

    # With a catch-all, Carol's items become the owner's.
    assert await data_cli.import_org(settings, slug, str(archive), _mapping(tmp_path, source, twins, leave_out=2), owner.email) == 0
    team_only = next(i for i in (await owner.get(f"{dst}/feed?limit=100")).json()["items"] if i["body"] == "Team only")
    assert team_only["author"]["id"] == owner.id


async def test_unknown_target_accounts_and_damaged_archives_are_refused(client, settings, tmp_path, services):
    source = await _source_org(client, settings)
    archive = tmp_path / "export.zip"
    await data_cli.export_org(settings, source["slug"], str(archive))
    owner, slug, twins = await _target(client, source)
    path = tmp_path / "users.json"
    path.write_text(json.dumps({p.email: "ghost@nowhere.example" for p in source["people"]}))
    with pytest.raises(ImportRefused) as refused:
        await org_import.import_org(services, owner.orgs[slug]["id"], archive, json.loads(path.read_text()))
    assert "ghost@nowhere.example" in str(refused.value)

    cut = tmp_path / "cut.zip"
    with zipfile.ZipFile(archive) as full, zipfile.ZipFile(cut, "w") as out:
        for name in full.namelist():
            data = full.read(name)
            out.writestr(name, data.rsplit(b"\n", 2)[0] + b"\n" if name == "manifest.jsonl" else data)
    mapping = {p.email: t.email for p, t in zip(source["people"], twins, strict=True)}
    with pytest.raises(ImportRefused) as refused:
        await org_import.import_org(services, owner.orgs[slug]["id"], cut, mapping)
    assert "cut off" in str(refused.value)
    with pytest.raises(ImportRefused) as refused:
        await org_import.import_org(services, source["people"][0].orgs[source["slug"]]["id"], archive, mapping)
    assert "this very org" in str(refused.value)
    assert (await owner.get(f"/api/v1/orgs/{slug}/feed")).json()["items"] == []


async def test_an_export_holds_its_org_only(client, settings, tmp_path):
    """F-ORG-8: nothing of another org, not even of the same people, is in an org's archive."""
    source = await _source_org(client, settings)
    alice = source["people"][0]
    other = await factory.create_org(alice)
    r = await alice.post(f"/api/v1/orgs/{other['slug']}/posts", json={"body": "secret of the other org"})
    assert r.status_code == 201
    archive = tmp_path / "export.zip"
    await data_cli.export_org(settings, source["slug"], str(archive))
    with zipfile.ZipFile(archive) as z:
        lines = [orjson.loads(line) for line in z.read("manifest.jsonl").splitlines()]
        files = [n for n in z.namelist() if n.startswith("files/")]
    assert lines[0]["t"] == "header" and lines[0]["version"] == 1 and lines[-1]["t"] == "end"
    assert not any("secret of the other org" in json.dumps(line) for line in lines)
    assert {line["email"] for line in lines if line["t"] == "user"} == {p.email for p in source["people"]}
    assert len(files) == 1
    entries = (await alice.get(f"/api/v1/orgs/{source['slug']}/audit", params={"action": "org.exported"})).json()["entries"]
    assert entries[0]["details"]["counts"]["post"] == lines[-1]["counts"]["post"]
