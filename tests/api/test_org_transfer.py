"""Exporting an org and importing it into another with a mapping of users (F-OPS-3, F-ORG-8): with
edits and their history, reactions, saved items, pins and file previews (F-POST-9)."""

from __future__ import annotations

import io
import json
import os
import zipfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import orjson
import pytest
from PIL import Image
from sqlalchemy import select

from feeds_server.cli import data as data_cli
from feeds_server.actions import org_export, org_import
from feeds_server.actions.org_import import ImportRefused
from feeds_server.notify.previews import make_previews
from feeds_server.store import archive as archive_format
from feeds_server.store.models import DormancyNotice, Event, Follow, NotificationSettings, PreviewJob
from feeds_server.store.scope import org_session
from tests import factory

FILE_BYTES = os.urandom(300_000)
# The tables and fields version 2 of the archive added.
NEW_TABLES = ("item_version", "reaction", "saved_item", "pin")
# And those version 3 added (besides every notification setting).
V3_TABLES = ("mute", "dormancy_notice")
V3_FIELDS = {"follow": ("rule_id", "fields"), "rule": ("fields",), "notification": ("reason", "record_id", "updated_at")}


def _png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (640, 480), "teal").save(out, format="PNG")
    return out.getvalue()


PNG_BYTES = _png()


def _same_shape(value: Any) -> Any:
    """A feed item without its ids (an import gives new ones) and without the raw text (its tokens hold ids;
    the rendered `segments` stay, with the names)."""
    if isinstance(value, list):
        return [_same_shape(v) for v in value]
    if isinstance(value, dict):
        return {k: _same_shape(v) for k, v in value.items() if k != "id" and not k.endswith("_id") and k != "body"}
    return value


async def _source_org(client, settings) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """An org with posts, mentions, a group post, private messages, comments, files, records and follows;
    edited posts and comments (an earlier text hidden), reactions, saved items, pins and an edit window."""
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

    async def comment(actor: factory.Actor, post_id: int, text: str) -> int:
        r = await actor.post(f"{b}/posts/{post_id}/comments", json={"body": text})
        assert r.status_code == 201, r.text
        return r.json()["comment"]["id"]

    async def ok(response: Any) -> Any:
        r = await response
        assert r.status_code in (200, 204), r.text
        return r

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

    # Edits with their history, one earlier text hidden by an admin; the org's edit window.
    await ok(alice.patch(b, json={"edit_window_seconds": 3600}))
    plans = await post(carol, {"body": "Plans: draft", "group_id": team})
    await ok(carol.patch(f"{b}/posts/{plans}", json={"body": f"Plans: second draft for @[user:{alice.id}]"}))
    await ok(carol.patch(f"{b}/posts/{plans}", json={"body": f"Plans: final, @[user:{alice.id}] and @[group:{team}]"}))
    first = (await alice.get(f"{b}/posts/{plans}/history")).json()["versions"][-1]
    await ok(alice.patch(f"{b}/versions/{first['version_id']}", json={"hidden": True}))
    reply = await comment(alice, plans, "Looks good")
    await ok(alice.patch(f"{b}/comments/{reply}", json={"body": f"Looks good, @[user:{carol.id}]"}))
    # Reactions on posts and comments, saved items, pins on the org feed and in a group.
    thanks = await comment(bob, status, "Noted")
    for actor, path, emoji in ((bob, f"posts/{status}", "👍"), (carol, f"posts/{status}", "🎉"), (carol, f"posts/{status}", "👍"),
                               (alice, f"comments/{thanks}", "❤️"), (alice, f"posts/{plans}", "👀"), (carol, f"comments/{reply}", "👍")):
        await ok(actor.put(f"{b}/{path}/reactions", json={"emoji": emoji, "on": True}))
    await ok(bob.put(f"{b}/posts/{status}/saved"))
    await ok(carol.put(f"{b}/posts/{plans}/saved"))
    await ok(alice.put(f"{b}/posts/{status}/pin"))
    await ok(alice.put(f"{b}/posts/{plans}/pin"))
    # An image: the worker made its thumbnail in the source.
    r = await alice.post(f"{b}/posts", files=[("files", ("chart.png", PNG_BYTES, "image/png"))], data={"message": '{"body": "The chart"}'})
    assert r.status_code == 201, r.text
    assert await make_previews(client._transport.app.state.services, burst=True) == 1
    return {"slug": slug, "people": [alice, bob, carol], "team": team, "plans": plans, "reply": reply, "status": status}


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


def _item(items: list[dict[str, Any]], start: str) -> dict[str, Any]:
    return next(i for i in items if i["body"].startswith(start))


async def test_an_exported_org_imported_elsewhere_reads_the_same_for_every_mapped_person(client, settings, services, tmp_path, monkeypatch, capsys):
    """F-OPS-3: the same feeds, group feed, notifications, follows and files, with new ids, in small batches;
    the same edit histories, reactions, saved items and pins (F-POST-9); thumbnails made again."""
    monkeypatch.setattr(org_export, "BATCH", 2)
    monkeypatch.setattr(org_import, "BATCH", 3)
    source = await _source_org(client, settings)
    archive = tmp_path / "export.zip"
    assert await data_cli.export_org(settings, source["slug"], str(archive)) == 0
    owner, slug, twins = await _target(client, source)
    assert await data_cli.import_org(settings, slug, str(archive), _mapping(tmp_path, source, twins), None) == 0
    assert "the source org's edit window was 3600 seconds; this org's stays unlimited" in capsys.readouterr().out

    src, dst = f"/api/v1/orgs/{source['slug']}", f"/api/v1/orgs/{slug}"
    # The image came without its thumbnail and with a job for the worker, which makes it again.
    chart = _item(await _pages(twins[0], f"{dst}/feed", "items"), "The chart")["attachments"][0]
    assert chart["preview"]["state"] == "pending"
    async with org_session(services.sessions, owner.orgs[slug]["id"]) as session:
        jobs = (await session.execute(select(PreviewJob.attachment_id, PreviewJob.status))).all()
        assert [tuple(j) for j in jobs] == [(chart["id"], "pending")]
    assert await make_previews(services, burst=True) == 1
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
    deck = _item(await _pages(twins[1], f"{dst}/feed", "items"), "The deck")
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
    # The last of the import, then the worker's thumbnail.
    assert types[-2:] == ["org.imported", "attachment.previewed"] and "org.import_batch" in types
    audit = (await owner.get(f"{dst}/audit", params={"action": "org.imported"})).json()["entries"]
    with zipfile.ZipFile(archive) as z:
        exported = orjson.loads(z.read("manifest.jsonl").splitlines()[-1])["counts"]
    assert audit[0]["details"]["counts"]["post"] == exported["post"] and audit[0]["details"]["counts"]["comment"] == exported["comment"]
    assert {t: exported[t] for t in NEW_TABLES} == {"item_version": 3, "reaction": 6, "saved_item": 2, "pin": 2}
    assert {t: audit[0]["details"]["counts"][t] for t in NEW_TABLES} == {t: exported[t] for t in NEW_TABLES}

    # Histories (the hidden text hidden, shown to admins), who reacted, saved items and pins read the same.
    alice, bob, carol = source["people"]
    alice2, bob2, carol2 = twins
    plans2 = _item(await _pages(carol2, f"{dst}/feed", "items"), "Plans")
    status2 = _item(await _pages(bob2, f"{dst}/feed", "items"), "Welcome")
    reply2 = next(c for c in plans2["latest_comments"] if c["body"].startswith("Looks good"))
    assert plans2["edited_at"] is not None and reply2["edited_at"] is not None
    for person, twin in ((alice, alice2), (carol, carol2)):
        for path, path2 in ((f"posts/{source['plans']}/history", f"posts/{plans2['id']}/history"),
                            (f"comments/{source['reply']}/history", f"comments/{reply2['id']}/history"),
                            (f"posts/{source['plans']}/reactions", f"posts/{plans2['id']}/reactions")):
            want, got = (await person.get(f"{src}/{path}")).json(), (await twin.get(f"{dst}/{path2}")).json()
            assert _same_shape(got) == _same_shape(want), (person.name, path)
    history = (await carol2.get(f"{dst}/posts/{plans2['id']}/history")).json()["versions"]
    assert [v["hidden"] for v in history] == [False, False, True] and history[-1]["body"] is None
    assert (await alice2.get(f"{dst}/posts/{plans2['id']}/history")).json()["versions"][-1]["hidden_by"]["id"] == alice2.id
    assert history[1]["body"] == f"Plans: second draft for @[user:{alice2.id}]"
    who = (await bob2.get(f"{dst}/posts/{status2['id']}/reactions")).json()
    assert _same_shape(who) == _same_shape((await bob.get(f"{src}/posts/{source['status']}/reactions")).json())
    for person, twin in zip(source["people"], twins, strict=True):
        for path in ("/saved", "/pins", f"/pins?group_id={source['team']}"):
            path2 = path.replace(str(source["team"]), str(team["id"]))
            want, got = await person.get(f"{src}{path}"), await twin.get(f"{dst}{path2}")
            assert got.status_code == want.status_code, (person.name, path)
            if want.status_code == 200:
                assert _same_shape(got.json()) == _same_shape(want.json()), (person.name, path)
    assert [p["body"][:5] for p in (await carol2.get(f"{dst}/pins?group_id={team['id']}")).json()["pinned"]] == ["Plans"]
    # The target's edit window stays its own.
    assert (await owner.get(dst)).json()["org"]["edit_window_seconds"] is None


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
    assert lines[0]["t"] == "header" and lines[0]["version"] == archive_format.VERSION == 3 and lines[-1]["t"] == "end"
    assert lines[0]["org"]["edit_window_seconds"] == 3600
    assert not any("secret of the other org" in json.dumps(line) for line in lines)
    assert {line["email"] for line in lines if line["t"] == "user"} == {p.email for p in source["people"]}
    # The files, never their thumbnails.
    assert len(files) == 2 == sum(len(line["attachments"]) for line in lines if line["t"] == "post")
    assert not any("preview" in a for line in lines if line["t"] == "post" for a in line["attachments"])
    entries = (await alice.get(f"/api/v1/orgs/{source['slug']}/audit", params={"action": "org.exported"})).json()["entries"]
    assert entries[0]["details"]["counts"]["post"] == lines[-1]["counts"]["post"]


def _first_version(archive: Path, out: Path) -> None:
    """The archive as a server that knew neither edits, reactions, saved items nor pins wrote it."""
    with zipfile.ZipFile(archive) as full, zipfile.ZipFile(out, "w") as old:
        for name in full.namelist():
            if name != "manifest.jsonl":
                old.writestr(name, full.read(name))
                continue
            lines = [orjson.loads(line) for line in full.read(name).splitlines()]
            lines = [line for line in lines if line["t"] not in NEW_TABLES + V3_TABLES]
            # Follows came before rules, and knew neither rules nor fields.
            follows = [line for line in lines if line["t"] == "follow"]
            lines = [line for line in lines if line["t"] != "follow"]
            at = next(i for i, line in enumerate(lines) if line["t"] == "rule")
            lines[at:at] = follows
            lines[0]["version"] = 1
            del lines[0]["org"]["edit_window_seconds"]
            counts: dict[str, int] = {}
            for line in lines[1:-1]:
                line.pop("edited_at", None)
                for key in V3_FIELDS.get(line["t"], ()):
                    line.pop(key, None)
                if line["t"] == "notification_settings":
                    for key in [k for k in line if k not in ("t", "user_id", "mention_emails", "batch_window_seconds")]:
                        del line[key]
                counts[line["t"]] = counts.get(line["t"], 0) + 1
            lines[-1]["counts"] = counts
            old.writestr(name, b"".join(orjson.dumps(line) + b"\n" for line in lines))


def _without_new_data(value: Any) -> Any:
    """A feed as an archive of version 1 carries it: no edit times, reactions, saved marks, nor thumbnails
    and the image sizes the worker reads (not run here)."""
    if isinstance(value, list):
        return [_without_new_data(v) for v in value]
    if isinstance(value, dict):
        skip = {"edited_at", "reactions", "my_reactions", "saved", "preview", "width", "height", "page_count"}
        return {k: _without_new_data(v) for k, v in value.items() if k not in skip}
    return value


async def test_an_archive_of_the_first_version_still_imports(client, settings, services, tmp_path):
    """F-OPS-3: an archive written before edits, reactions, saved items and pins existed imports, without them."""
    source = await _source_org(client, settings)
    archive, old = tmp_path / "export.zip", tmp_path / "old.zip"
    await data_cli.export_org(settings, source["slug"], str(archive))
    _first_version(archive, old)
    owner, slug, twins = await _target(client, source)
    assert await data_cli.import_org(settings, slug, str(old), _mapping(tmp_path, source, twins), None) == 0

    src, dst = f"/api/v1/orgs/{source['slug']}", f"/api/v1/orgs/{slug}"
    for person, twin in zip(source["people"], twins, strict=True):
        before, after = await _pages(person, f"{src}/feed", "items"), await _pages(twin, f"{dst}/feed", "items")
        assert _same_shape(_without_new_data(after)) == _same_shape(_without_new_data(before)), person.name
        assert all(i["edited_at"] is None and i["reactions"] == [] and not i["saved"] for i in after)
        assert (await twin.get(f"{dst}/saved")).json()["items"] == []
        assert (await twin.get(f"{dst}/pins")).json()["pinned"] == []
    carol2 = twins[2]
    plans = _item(await _pages(carol2, f"{dst}/feed", "items"), "Plans")
    assert [v["current"] for v in (await carol2.get(f"{dst}/posts/{plans['id']}/history")).json()["versions"]] == [True]
    # Images still get their thumbnails made.
    chart = _item(await _pages(twins[0], f"{dst}/feed", "items"), "The chart")["attachments"][0]
    assert chart["preview"]["state"] == "pending"


async def test_people_named_only_by_earlier_texts_and_reactions_are_in_the_archive(client, settings, tmp_path):
    """F-OPS-3: a former member whom only an earlier text mentions, or who reacted, is among the archive's people."""
    alice = await factory.sign_up(client, factory.unique("Alice"))
    slug = (await factory.create_org(alice))["slug"]
    b = f"/api/v1/orgs/{slug}"
    dave, erin = await factory.sign_up(client, factory.unique("Dave")), await factory.sign_up(client, factory.unique("Erin"))
    for person in (dave, erin):
        await factory.invite_and_join(alice, slug, person, settings.mail_dir)
    post = (await alice.post(f"{b}/posts", json={"body": f"Ask @[user:{dave.id}]"})).json()["post"]["id"]
    assert (await alice.patch(f"{b}/posts/{post}", json={"body": "Ask someone"})).status_code == 200
    assert (await erin.put(f"{b}/posts/{post}/reactions", json={"emoji": "👍", "on": True})).status_code == 200
    for person in (dave, erin):
        assert (await alice.delete(f"{b}/members/{person.id}")).status_code in (200, 204)
    archive = tmp_path / "export.zip"
    await data_cli.export_org(settings, slug, str(archive))
    with zipfile.ZipFile(archive) as z:
        lines = [orjson.loads(line) for line in z.read("manifest.jsonl").splitlines()]
    people = {line["id"]: line["member"] for line in lines if line["t"] == "user"}
    assert people == {alice.id: True, dave.id: False, erin.id: False}
    assert [line["user_id"] for line in lines if line["t"] == "reaction"] == [erin.id]
    assert [line["body"] for line in lines if line["t"] == "item_version"] == [f"Ask @[user:{dave.id}]"]


async def test_pins_the_org_feed_has_no_place_for_are_left_out_and_told(client, settings, tmp_path, capsys):
    """At most 5 pins on the org feed: an import into a full one keeps its own; group pins land in the new group."""
    source = await _source_org(client, settings)
    archive = tmp_path / "export.zip"
    await data_cli.export_org(settings, source["slug"], str(archive))
    owner, slug, twins = await _target(client, source)
    dst = f"/api/v1/orgs/{slug}"
    for n in range(5):
        post = (await owner.post(f"{dst}/posts", json={"body": f"House rule {n}"})).json()["post"]["id"]
        assert (await owner.put(f"{dst}/posts/{post}/pin")).status_code == 200
    assert await data_cli.import_org(settings, slug, str(archive), _mapping(tmp_path, source, twins), None) == 0
    assert "1 pin(s) of the org feed left out: it has 5 pinned posts already" in capsys.readouterr().out
    assert [p["body"] for p in (await owner.get(f"{dst}/pins")).json()["pinned"]] == [f"House rule {n}" for n in range(4, -1, -1)]
    team = next(g for g in (await twins[0].get(f"{dst}/groups")).json()["groups"] if g["name"] == "Team")
    assert [p["body"][:5] for p in (await twins[0].get(f"{dst}/pins?group_id={team['id']}")).json()["pinned"]] == ["Plans"]


async def test_notification_choices_follow_fields_rules_mutes_and_dormancy_notices_come_along(client, settings, services, tmp_path):
    """F-OPS-3: every notification setting, the fields a follow cares about and the rule that made it,
    a rule's fields, mutes on the new targets, and who was told a record went dormant (else they would
    be told again); when the next digest falls due is this org's to plan."""
    source = await _source_org(client, settings)
    alice, bob, carol = source["people"]
    src = f"/api/v1/orgs/{source['slug']}"
    choices = {"channels": {"group_post": {"push": True}, "reaction": {"in_app": False}}, "quiet_hours": {"start": "22:00", "end": "07:00"},
               "time_zone": "Europe/Paris", "digest": {"frequency": "weekly", "hour": 7, "weekday": 4}, "dormant_days": 30,
               "record_merge_seconds": 300, "batch_window_seconds": 120}
    assert (await carol.patch(f"{src}/notification-settings", json=choices)).status_code == 200
    [deal] = [r for r in (await carol.get(f"{src}/followed-records")).json()["records"] if r["crm_id"] == "D-1"]
    assert (await carol.put(f"{src}/records/{deal['id']}/follow", json={"fields": ["Stage"]})).status_code == 200
    for kind, target in (("record", deal["id"]), ("group", source["team"]), ("post", source["plans"])):
        assert (await carol.put(f"{src}/mutes/{kind}/{target}")).status_code == 200, kind
    rule = {"name": "Amounts", "module": "Deals", "criteria": {"field": "Amount", "type": "number", "op": "gt", "value": 1},
            "followers": {"creator": False, "users": [bob.id]}, "fields": ["Amount"]}
    assert (await alice.post(f"{src}/rules", json=rule)).status_code == 201
    token = (await alice.post(f"{src}/integrations", json={"name": "CRM again"})).json()["token"]
    r = await client.post(f"{src}/integration/record-events", headers={"authorization": f"Bearer {token}"},
                          json={"events": [{"event_id": "x1", "type": "edited", "module": "Deals", "record": {"id": "D-1", "fields": {"Amount": 12}}}]})
    assert r.status_code == 200, r.text
    told = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    async with org_session(services.sessions, alice.orgs[source["slug"]]["id"]) as session:
        session.add(DormancyNotice(record_id=deal["id"], user_id=carol.id, last_activity_at=told))
        await session.commit()
    archive = tmp_path / "export.zip"
    assert await data_cli.export_org(settings, source["slug"], str(archive)) == 0
    with zipfile.ZipFile(archive) as z:
        tables = [orjson.loads(line)["t"] for line in z.read("manifest.jsonl").splitlines()]
    assert tables.index("rule") < tables.index("follow"), "a follow names its rule: rules come first"

    owner, slug, twins = await _target(client, source)
    assert await data_cli.import_org(settings, slug, str(archive), _mapping(tmp_path, source, twins), None) == 0
    alice2, bob2, carol2 = twins
    dst, target_id = f"/api/v1/orgs/{slug}", owner.orgs[slug]["id"]
    assert (await carol2.get(f"{dst}/notification-settings")).json() == (await carol.get(f"{src}/notification-settings")).json()
    [deal2] = [r for r in (await carol2.get(f"{dst}/followed-records")).json()["records"] if r["crm_id"] == "D-1"]
    assert (await carol2.get(f"{dst}/records/{deal2['id']}")).json()["follow"] == {"source": "manual", "rule_id": None, "fields": ["Stage"]}
    [rule2] = [r for r in (await alice2.get(f"{dst}/rules")).json()["created_by_me"] if r["name"] == "Amounts"]
    assert rule2["fields"] == ["Amount"]
    assert (await bob2.get(f"{dst}/records/{deal2['id']}")).json()["follow"] == {"source": "rule", "rule_id": rule2["id"], "fields": ["Amount"]}
    why = [n["reason"] for n in (await bob2.get(f"{dst}/notifications")).json()["notifications"] if (n["reason"] or {}).get("code") == "follower_rule"]
    assert why == [{"code": "follower_rule", "record_id": deal2["id"], "record_name": "Big deal", "rule_id": rule2["id"], "rule_name": "Amounts"}]
    team2 = next(g for g in (await alice2.get(f"{dst}/groups")).json()["groups"] if g["name"] == "Team")
    plans2 = _item(await _pages(carol2, f"{dst}/feed", "items"), "Plans")
    mutes2 = {(m["kind"], m["id"]): m["label"] for m in (await carol2.get(f"{dst}/mutes")).json()["mutes"]}
    mutes1 = {m["kind"]: m["label"] for m in (await carol.get(f"{src}/mutes")).json()["mutes"]}
    assert {k: v[:12] for k, v in mutes2.items()} == {
        ("record", deal2["id"]): mutes1["record"], ("group", team2["id"]): mutes1["group"], ("post", plans2["id"]): "Plans: final"}
    async with org_session(services.sessions, target_id) as session:
        notices = (await session.execute(select(DormancyNotice.record_id, DormancyNotice.user_id, DormancyNotice.last_activity_at))).all()
        due = (await session.execute(select(NotificationSettings.digest_due_at).where(NotificationSettings.user_id == carol2.id))).scalar_one()
        rules_of_follows = set((await session.execute(select(Follow.rule_id).where(Follow.rule_id.is_not(None)))).scalars())
    assert [(r, u, at.astimezone(timezone.utc)) for r, u, at in notices] == [(deal2["id"], carol2.id, told)]
    assert due is None and rules_of_follows == {rule2["id"]}
