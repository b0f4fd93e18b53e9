"""Search on both databases: the same cases answer the same on SQLite FTS5 and PostgreSQL."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import inspect, text

from feeds_server.store.scope import org_session
from tests import factory
from tests.api.records_helpers import crm, ev, send  # noqa: F401 - the crm fixture


@pytest.fixture
async def team(client, settings):  # type: ignore[no-untyped-def]
    return await factory.team(client, settings.mail_dir)


base = factory.org_path


async def search(actor, org, q: str, **params):  # type: ignore[no-untyped-def]
    r = await actor.get(f"{base(org)}/search", params={"q": q, **params})
    assert r.status_code == 200, r.text
    return r.json()


async def found(actor, org, q: str) -> list[str]:  # type: ignore[no-untyped-def]
    """The texts of every hit, in order."""
    return [(i["comment"] or i["post"])["body"] for i in (await search(actor, org, q))["items"]]


async def post(actor, org, body: str, **extra) -> dict:  # type: ignore[no-untyped-def]
    r = await actor.post(f"{base(org)}/posts", json={"body": body, **extra})
    assert r.status_code == 201, r.text
    return r.json()["post"]


async def comment(actor, org, post_id: int, body: str) -> dict:  # type: ignore[no-untyped-def]
    r = await actor.post(f"{base(org)}/posts/{post_id}/comments", json={"body": body})
    assert r.status_code == 201, r.text
    return r.json()["comment"]


async def test_words_are_stemmed_and_accent_insensitive_in_english_and_french(team):
    owner, ann, bob, org = team
    await post(ann, org, "Two meetings with the supplier today")
    await post(owner, org, "Réunion d'équipe demain à 9h")
    await post(owner, org, "Nothing to see here")
    assert await found(bob, org, "meeting") == ["Two meetings with the supplier today"]
    assert await found(bob, org, "réunions") == ["Réunion d'équipe demain à 9h"]
    assert await found(bob, org, "REUNION equipe") == ["Réunion d'équipe demain à 9h"]
    assert await found(bob, org, "supplier réunion") == []  # every word must match
    assert await found(bob, org, "the") == []  # stop words alone find nothing


async def test_hits_have_their_type_and_an_excerpt_with_the_matched_words_marked(team):
    owner, ann, bob, org = team
    p = await post(ann, org, "<b>Budget</b> meetings start Monday")
    c = await comment(bob, org, p["id"], "I will bring the budgets")
    page = await search(owner, org, "budget")
    by_type = {i["type"]: i for i in page["items"]}
    assert set(by_type) == {"status", "comment"}
    assert by_type["comment"]["comment"]["id"] == c["id"] and by_type["comment"]["post"]["id"] == p["id"]
    assert by_type["status"]["comment"] is None
    parts = by_type["status"]["excerpt"]
    assert "".join(x["text"] for x in parts) == "<b>Budget</b> meetings start Monday"
    assert [x["text"] for x in parts if x["hit"]] == ["Budget"]
    assert [x["text"] for x in by_type["comment"]["excerpt"] if x["hit"]] == ["budgets"]


async def test_exact_phrases_need_their_words_in_order(team):
    owner, ann, bob, org = team
    await post(ann, org, "The quarterly budget review is done")
    await post(ann, org, "Review the budget quarterly")
    assert await found(bob, org, '"budget review"') == ["The quarterly budget review is done"]
    assert sorted(await found(bob, org, "budget review")) == ["Review the budget quarterly", "The quarterly budget review is done"]


async def test_the_best_match_comes_first(team):
    owner, ann, bob, org = team
    await post(ann, org, "Pipeline pipeline pipeline: the pipeline")
    await post(ann, org, "A long note about many things, among them the pipeline, and the weather, lunch and holidays")
    hits = await found(bob, org, "pipeline")
    assert hits[0] == "Pipeline pipeline pipeline: the pipeline" and len(hits) == 2


async def test_pages_follow_each_other_without_gaps_or_repeats(team):
    owner, ann, bob, org = team
    for n in range(7):
        await post(ann, org, "forecast " * (1 + n % 3) + f"number {n}")
    seen, cursor, pages = [], None, 0
    while True:
        page = await search(bob, org, "forecast", limit=3, **({"cursor": cursor} if cursor else {}))
        seen += [i["post"]["id"] for i in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    everything = [i["post"]["id"] for i in (await search(bob, org, "forecast", limit=100))["items"]]
    assert pages == 3 and seen == everything and len(set(seen)) == 7
    r = await bob.get(f"{base(org)}/search", params={"q": "forecast", "cursor": "bm90LWEtY3Vyc29y"})
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_cursor"


async def test_only_a_window_of_the_newest_visible_matches_is_ranked_and_older_ones_follow(team, monkeypatch):
    """Ranking is bounded: the newest matches (a window) are ranked, best first; the cursor then goes on
    to the next older window. Hidden matches take no place in a window; a page never shows newer items."""
    from feeds_server import limits

    monkeypatch.setattr(limits, "SEARCH_RANK_WINDOW", 3)
    owner, ann, bob, org = team
    gid = (await owner.post(f"{base(org)}/groups", json={"name": "Board", "sources": [{"type": "user", "id": ann.id}]})).json()["group"]["id"]
    ids = []
    for n in range(7):
        ids.append((await post(ann, org, "forecast " * (1 + n % 3) + f"number {n}"))["id"])
        if n in (2, 5):
            await post(ann, org, "forecast forecast forecast forecast hidden", group_id=gid)  # bob never sees these
    pages, cursor = [], None
    while True:
        page = await search(bob, org, "forecast", limit=2, **({"cursor": cursor} if cursor else {}))
        pages.append(([i["post"]["id"] for i in page["items"]], page["more_older"]))
        if cursor is None:
            newest = await post(ann, org, "forecast forecast forecast newest")  # after the first page: not in this reading
        cursor = page["next_cursor"]
        if cursor is None:
            break
    # Windows (newest first): posts 6, 5, 4 | 3, 2, 1 | 0; in each, more "forecast" ranks first.
    assert pages == [
        ([ids[5], ids[4]], True), ([ids[6]], True),
        ([ids[2], ids[1]], True), ([ids[3]], True),
        ([ids[0]], False),
    ]
    first = await search(bob, org, "forecast", limit=10)
    assert {i["post"]["id"] for i in first["items"]} == {newest["id"], ids[6], ids[5]}
    assert first["more_older"] is True and first["next_cursor"] is not None


async def test_the_planner_settings_of_a_search_end_with_its_request(team, services, backend) -> None:
    """The search statement plans with settings of its own (store/search.py); they are local to the
    request's transaction, so no pooled connection keeps them for the next request."""
    owner, ann, _, org = team
    await owner.post(f"{base(org)}/posts", json={"body": "quarterly pipeline review"})
    assert (await found(ann, org, "pipeline review")) == ["quarterly pipeline review"]
    if backend != "postgres":
        return
    names = ("random_page_cost", "max_parallel_workers_per_gather", "enable_bitmapscan", "enable_hashjoin", "enable_mergejoin")
    connections = [await services.engine.connect() for _ in range(3)]
    try:
        for conn in connections:
            changed = (await conn.execute(text("SELECT name FROM pg_settings WHERE name = ANY(:n) AND setting <> reset_val"), {"n": list(names)})).all()
            assert changed == []
    finally:
        for conn in connections:
            await conn.close()


async def test_filters_combine(team, client, settings):
    owner, ann, bob, org = team
    b = base(org)
    gid = (await owner.post(f"{b}/groups", json={"name": "Sales team", "sources": [{"type": "user", "id": ann.id}, {"type": "user", "id": bob.id}]})).json()["group"]["id"]
    in_group = await post(ann, org, "Offer sent to Globex", group_id=gid)
    mine = await post(bob, org, "Offer drafted for Initech")
    note = await comment(owner, org, mine["id"], "Offer looks good")
    files = [("files", ("offer.txt", b"offer", "text/plain"))]
    r = await ann.post(f"{b}/posts", files=files, data={"message": json.dumps({"body": "Offer attached"})})
    assert r.status_code == 201, r.text
    with_file = r.json()["post"]

    async def ids(q: str) -> set[int]:
        return {(i["comment"] or i["post"])["id"] for i in (await search(bob, org, q))["items"]}

    assert await ids("offer") == {in_group["id"], mine["id"], note["id"], with_file["id"]}
    assert await ids("offer from:me") == {mine["id"]}
    assert await ids(f"offer from:@[user:{ann.id}]") == {in_group["id"], with_file["id"]}
    assert await ids(f"offer from:{owner.id}") == {note["id"]}
    assert await ids('offer in:"sales TEAM"') == {in_group["id"]}
    assert await ids(f"in:{gid}") == {in_group["id"]}
    assert await ids("offer in:nowhere") == set()
    assert await ids("offer type:comment") == {note["id"]}
    assert await ids("offer type:status from:me") == {mine["id"]}
    assert await ids("has:file") == {with_file["id"]}
    assert await ids("offer after:2000-01-01 before:2999-01-01") == await ids("offer")
    assert await ids("offer before:2000-01-01") == set()
    assert await ids("offer in:²") == set()  # "²" is a digit to str.isdigit, not to int: a name here
    for bad in ("type:email", "from:²"):
        r = await bob.get(f"{b}/search", params={"q": bad})
        assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_search_query", bad


async def test_a_member_never_sees_a_hit_from_a_group_or_message_they_are_not_in(team):
    owner, ann, bob, org = team
    b = base(org)
    gid = (await owner.post(f"{b}/groups", json={"name": "Board", "sources": [{"type": "user", "id": ann.id}]})).json()["group"]["id"]
    secret = await post(ann, org, "Acquisition of Hooli is confidential", group_id=gid)
    await comment(ann, org, secret["id"], "Acquisition price agreed")
    dm = await post(owner, org, "Acquisition terms for your eyes", recipient_id=ann.id, private=True)
    public = await post(owner, org, "Acquisition rumours are false")
    for q in ("acquisition", "hooli", "price", f"in:{gid}", "type:message", "type:comment acquisition"):
        page = await search(bob, org, q)
        texts = json.dumps(page)
        assert "Hooli" not in texts and "price" not in texts and "your eyes" not in texts, q
    assert [i["post"]["id"] for i in (await search(bob, org, "acquisition"))["items"]] == [public["id"]]
    assert (await search(bob, org, "acquisition", limit=1))["next_cursor"] is None  # nothing hidden behind a page either
    seen_by_ann = {(i["comment"] or i["post"])["body"] for i in (await search(ann, org, "acquisition"))["items"]}
    assert seen_by_ann == {secret["body"], "Acquisition price agreed", dm["body"], public["body"]}
    assert [i["type"] for i in (await search(ann, org, "type:message"))["items"]] == ["message"]


async def test_edits_deletes_and_bulk_writes_keep_the_index(team, services):
    owner, ann, bob, org = team
    p = await post(ann, org, "Draft about lemons")
    c = await comment(bob, org, p["id"], "Lemons are sour")
    async with org_session(services.sessions, org["id"]) as s:
        await s.execute(text("UPDATE posts SET body = 'Draft about oranges' WHERE id = :id"), {"id": p["id"]})
        await s.execute(text("UPDATE comments SET body = 'Oranges are sweet' WHERE id = :id"), {"id": c["id"]})
    assert await found(owner, org, "lemon") == []
    assert sorted(await found(owner, org, "orange")) == ["Draft about oranges", "Oranges are sweet"]
    assert (await bob.delete(f"{base(org)}/comments/{c['id']}")).status_code == 204
    assert await found(owner, org, "orange") == ["Draft about oranges"]
    assert (await ann.delete(f"{base(org)}/posts/{p['id']}")).status_code == 204
    assert await found(owner, org, "orange") == []
    async with org_session(services.sessions, org["id"]) as s:
        left = (await s.execute(text("SELECT count(*) FROM search_items WHERE post_id = :id"), {"id": p["id"]})).scalar_one()
    assert left == 0


async def test_record_updates_and_their_notes_are_found_unless_the_module_is_off(crm):
    admin, rep = crm["admin"], crm["rep"]
    org = crm["org"]
    r = await send(crm, ev("s1", name="Umbrella deal", owner_email=rep.email),
                   ev("s2", "note_added", note={"text": "Négociations en cours avec les acheteurs"}))
    assert r.status_code == 200, r.text
    hits = (await search(rep, org, "négociation acheteur"))["items"]
    assert [(i["type"], i["comment"]["body"]) for i in hits] == [("comment", "Négociations en cours avec les acheteurs")]
    assert hits[0]["post"]["module"] == "Deals"
    assert [i["type"] for i in (await search(rep, org, "module:Deals type:record"))["items"]] == ["record"]
    assert (await admin.put(f"{crm['b']}/feed-modules", json={"modules": {"Deals": False}})).status_code == 200
    assert (await search(rep, org, "négociation"))["items"] == []
    assert (await search(rep, org, "module:Deals"))["items"] == []


async def test_an_imported_org_is_searchable_as_its_source(client, settings, tmp_path):
    """Imports write posts, comments and files in bulk: the triggers index them in the same transaction."""
    from feeds_server.cli import data as data_cli
    from tests.api.test_org_transfer import _mapping, _source_org, _target

    source = await _source_org(client, settings)
    archive = tmp_path / "export.zip"
    assert await data_cli.export_org(settings, source["slug"], str(archive)) == 0
    owner, slug, twins = await _target(client, source)
    assert await data_cli.import_org(settings, slug, str(archive), _mapping(tmp_path, source, twins), None) == 0

    def shape(items: list[dict]) -> list[tuple]:
        return sorted((i["type"], json.dumps(i["excerpt"])) for i in items)

    found_any = False
    for person, twin in zip(source["people"], twins, strict=True):
        for q in ("deck", "team", "called", "type:comment", "has:file", "type:message", "type:record"):
            before = (await search(person, {"slug": source["slug"]}, q))["items"]
            after = (await search(twin, {"slug": slug}, q))["items"]
            assert shape(after) == shape(before), (person.name, q)
            found_any = found_any or bool(before)
    assert found_any


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_the_migration_indexes_existing_items_and_goes_back_down(backend, tmp_path):
    """0012 on a database that already has posts and comments: they are found at once; downgrade and upgrade again."""
    from alembic import command
    from sqlalchemy.ext.asyncio import create_async_engine

    from feeds_server.store.migrate import alembic_config, upgrade
    from tests.api.test_migrations import _empty_database, seed_user_and_org

    url, drop = await _empty_database(backend, tmp_path)
    engine = create_async_engine(url)
    try:
        await upgrade(engine, "0011")
        async with engine.begin() as conn:
            await seed_user_and_org(conn)
            await conn.execute(text(
                "INSERT INTO posts (id, org_id, kind, author_id, body, module, data, comment_count, created_at)"
                " VALUES (5, 1, 'status', 1, 'Réunions hebdomadaires', NULL, '{}', 1, '2026-01-02 00:00:00+00')"))
            await conn.execute(text(
                "INSERT INTO comments (id, org_id, post_id, author_id, body, data, created_at)"
                " VALUES (9, 1, 5, 1, 'Weekly meetings', '{}', '2026-01-03 00:00:00+00')"))
        for _ in range(2):
            await upgrade(engine)
            async with engine.connect() as conn:
                if backend == "postgres":
                    await conn.execute(text("SELECT set_config('feeds.all_orgs', 'on', false)"))
                    hits = (await conn.execute(text(
                        "SELECT post_id, comment_id FROM search_items WHERE tsv @@ (feeds_search_word('reunion') || feeds_search_word('meeting'))"
                        " ORDER BY id"))).all()
                else:
                    hits = (await conn.execute(text(
                        "SELECT s.post_id, s.comment_id FROM search_fts JOIN search_items AS s ON s.id = search_fts.rowid"
                        " WHERE search_fts MATCH 'en : reunion OR en : meet' ORDER BY s.id"))).all()
            assert [tuple(h) for h in hits] == [(5, None), (5, 9)]
            async with engine.begin() as conn:
                await conn.run_sync(lambda c: command.downgrade(alembic_config(connection=c), "0011"))
            async with engine.connect() as conn:
                tables = await conn.run_sync(lambda c: inspect(c).get_table_names())
            assert "search_items" not in tables and "search_fts" not in tables
    finally:
        await engine.dispose()
        await drop()
