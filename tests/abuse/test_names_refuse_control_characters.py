"""Names are one line: control characters and line breaks are refused where a name enters (422
`validation_failed` naming the field), and names stored before that rule leave on one line.

A name travels into email headers (a CR LF there starts a new header: "Eve\\r\\nBcc: victim@…"),
`Content-Disposition` headers, logs and exports. Sign-up, orgs, groups, roles, profiles,
territories, integrations, rules, CRM record names, rule files and org imports are covered here;
upload file names in tests/abuse/test_http_abuse.py.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select, update

from feeds_server.cli import data as data_cli
from feeds_server.actions import org_import
from feeds_server.domain import names
from feeds_server.domain.rulefile import parse_rule_file
from feeds_server.errors import ValidationFailed
from feeds_server.store.models import Group, Role
from feeds_server.store.scope import org_session
from tests import factory
from tests.api.records_helpers import crm, ev, send  # noqa: F401 - `crm` is a fixture

INJECTION = "Eve\r\nBcc: victim@evil.test"
# One of each kind: CR LF, a lone LF, TAB, NUL, ESC, DEL, NEL (a C1 control), the Unicode line and paragraph separators.
REFUSED = [INJECTION, "Eve\nBcc", "Eve\tTab", "Eve\x00", "Eve\x1b[31m", "Eve\x7f", "Eve\x85", "Eve\u2028", "Eve\u2029"]
ACCEPTED = "Élodie O'Brien — Łukasz 名前 😀 (Sales, EMEA)"  # every printable character stays allowed
CRITERIA = {"field": "Amount", "type": "number", "op": "gt", "value": 50000}


def assert_refused(r: Any, field: str) -> None:
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["code"] == "validation_failed"
    assert [e["field"] for e in error["details"]["errors"]] == [field], error
    assert "control characters" in error["message"]


def test_the_refused_characters_are_exactly_category_cc_and_the_line_separators() -> None:
    import sys
    import unicodedata

    refused = {c for c in map(chr, range(sys.maxunicode + 1)) if names.first_forbidden(c)}
    assert refused == {c for c in map(chr, range(sys.maxunicode + 1)) if unicodedata.category(c) == "Cc"} | {"\u2028", "\u2029"}
    assert names.one_line(INJECTION) == "Eve Bcc: victim@evil.test"


@pytest.mark.parametrize("name", REFUSED)
async def test_sign_up_with_a_control_character_in_the_name_is_refused(client, name):
    r = await client.post("/api/v1/auth/signup", json={"email": f"{factory.unique('eve')}@example.com", "password": factory.PASSWORD, "name": name})
    assert_refused(r, "name")


async def test_sign_up_with_any_printable_name_is_accepted(client):
    actor = await factory.sign_up(client, ACCEPTED, email=f"{factory.unique('elodie')}@example.com")
    assert actor.name == ACCEPTED


async def test_org_names_with_line_breaks_are_refused_on_create_and_patch(client):
    owner = await factory.sign_up(client, factory.unique("Owner"))
    assert_refused(await owner.post("/api/v1/orgs", json={"name": INJECTION, "slug": factory.unique("org"), "time_zone": "UTC"}), "name")
    org = await factory.create_org(owner)
    b = f"/api/v1/orgs/{org['slug']}"
    assert_refused(await owner.patch(b, json={"name": INJECTION}), "name")
    r = await owner.patch(b, json={"name": ACCEPTED})
    assert r.status_code == 200 and r.json()["org"]["name"] == ACCEPTED, r.text


async def test_group_role_profile_territory_integration_and_rule_names_with_line_breaks_are_refused(client):
    owner = await factory.sign_up(client, factory.unique("Owner"))
    org = await factory.create_org(owner)
    b = f"/api/v1/orgs/{org['slug']}"
    members = [{"type": "user", "id": owner.id}]
    assert_refused(await owner.post(f"{b}/groups", json={"name": INJECTION, "sources": members}), "name")
    group = (await owner.post(f"{b}/groups", json={"name": ACCEPTED, "sources": members})).json()["group"]
    assert_refused(await owner.patch(f"{b}/groups/{group['id']}", json={"name": "a\u2028b"}), "name")
    for path, key in (("roles", "role"), ("territories", "territory"), ("profiles", "profile")):
        assert_refused(await owner.post(f"{b}/{path}", json={"name": INJECTION}), "name")
        r = await owner.post(f"{b}/{path}", json={"name": f"{ACCEPTED} {path}"})
        assert r.status_code == 201, r.text
        assert_refused(await owner.patch(f"{b}/{path}/{r.json()[key]['id']}", json={"name": "x\ny"}), "name")
    assert_refused(await owner.post(f"{b}/integrations", json={"name": INJECTION}), "name")
    assert_refused(await owner.post(f"{b}/rules", json={"name": INJECTION, "module": "Deals", "criteria": CRITERIA}), "name")


async def test_a_crm_record_name_with_line_breaks_is_refused(crm):
    r = await send(crm, ev("n1", name=INJECTION))
    assert_refused(r, "events.0.record.name")
    r = await send(crm, ev("n2", territory="EMEA\r\nX"))
    assert_refused(r, "events.0.record.territory")
    assert (await send(crm, ev("n3", name=ACCEPTED))).status_code == 200


def test_a_rule_file_with_a_line_break_in_a_name_is_refused() -> None:
    rule = {"name": INJECTION, "module": "Deals", "criteria": CRITERIA}
    with pytest.raises(ValidationFailed, match=r"rules\[0\]\.name: must not contain control characters"):
        parse_rule_file({"version": 1, "rules": [rule]})
    with pytest.raises(ValidationFailed, match=r"rules\[0\]\.followers\.roles\[0\]"):
        parse_rule_file({"version": 1, "rules": [{**rule, "name": "ok", "followers": {"roles": ["CEO\n"]}}]})
    assert parse_rule_file({"version": 1, "rules": [{**rule, "name": ACCEPTED}]})[0].name == ACCEPTED


async def test_names_stored_with_line_breaks_before_the_rule_are_imported_on_one_line(client, settings, services, tmp_path):
    """An export from before the rule may hold such names: the import puts them on one line and says so."""
    owner = await factory.sign_up(client, factory.unique("Owner"))
    org = await factory.create_org(owner)
    b = f"/api/v1/orgs/{org['slug']}"
    await owner.post(f"{b}/groups", json={"name": "Team", "sources": [{"type": "user", "id": owner.id}]})
    await owner.post(f"{b}/roles", json={"name": "Sales"})
    async with org_session(services.sessions, org["id"]) as session:  # legacy rows, written as they were then
        await session.execute(update(Group).where(Group.name == "Team").values(name="Team\r\nBcc: x@evil.test"))
        await session.execute(update(Role).where(Role.name == "Sales").values(name="Sales\u2028EMEA"))
    archive = tmp_path / "export.zip"
    assert await data_cli.export_org(settings, org["slug"], str(archive)) == 0

    target_owner = await factory.sign_up(client, factory.unique("Target"))
    target = await factory.create_org(target_owner)
    report = await org_import.import_org(services, target["id"], archive, {owner.email: target_owner.email})
    async with org_session(services.sessions, target["id"]) as session:
        groups = set((await session.execute(select(Group.name))).scalars())
        roles = set((await session.execute(select(Role.name))).scalars())
    assert "Team Bcc: x@evil.test" in groups and "Sales EMEA" in roles
    assert not any(names.first_forbidden(n) for n in groups | roles)
    notes = "\n".join(report.notes)
    assert "1 group name(s) held control characters" in notes and "1 role name(s) held control characters" in notes
