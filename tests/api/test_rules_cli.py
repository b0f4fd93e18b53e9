"""`feeds-server rules validate|apply`: one rule file, many orgs, each with its own copy."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from feeds_server.cli import rules as rules_cli
from tests import factory

EXAMPLE = Path(__file__).resolve().parents[2] / "rules" / "examples" / "high-value-deals.json"


def test_validate_command_accepts_examples_and_refuses_bad_files(tmp_path):
    ok = subprocess.run([sys.executable, "-m", "feeds_server.cli", "rules", "validate", str(EXAMPLE)], capture_output=True, text=True)
    assert ok.returncode == 0 and "1 rule(s) valid" in ok.stdout
    bad = tmp_path / "bad.json"
    bad.write_text('{"version": 1, "rules": [{"name": "x", "module": "Deals", "criteria": {"and": []}}]}')
    res = subprocess.run([sys.executable, "-m", "feeds_server.cli", "rules", "validate", str(bad)], capture_output=True, text=True)
    assert res.returncode != 0 and "rules[0].criteria.and" in res.stderr


async def test_apply_copies_rules_into_each_org_and_reapplying_updates(client, settings):
    owners = []
    for _ in range(2):
        owner = await factory.sign_up(client, factory.unique("Owner"))
        org = await factory.create_org(owner, load_sample_data=True)
        owners.append((owner, org))
    for _, org in owners:
        assert await rules_cli.apply(settings, org["slug"], str(EXAMPLE)) == 0
        assert await rules_cli.apply(settings, org["slug"], str(EXAMPLE)) == 0
    for owner, org in owners:
        mine = (await owner.get(f"/api/v1/orgs/{org['slug']}/rules")).json()["created_by_me"]
        # The sample data's rule has the same name: applying updated it rather than adding a copy.
        assert [r["name"] for r in mine] == ["High-value deals in negotiation"]
        leadership = next(g for g in (await owner.get(f"/api/v1/orgs/{org['slug']}/groups")).json()["groups"] if g["name"] == "Leadership")
        assert mine[0]["followers"]["groups"] == [leadership["id"]]


async def test_each_org_keeps_its_own_copy_resolved_to_its_own_people(client, settings, tmp_path):
    """Names resolve in each org; changing one org's copy leaves the other's alone (F-ORG-8)."""
    orgs = []
    for _ in range(2):
        owner = await factory.sign_up(client, factory.unique("Owner"))
        orgs.append((owner, await factory.create_org(owner, load_sample_data=True)))
    key_accounts = Path(__file__).resolve().parents[2] / "rules" / "examples" / "key-accounts.json"
    rules_by_org = []
    for owner, org in orgs:
        assert await rules_cli.apply(settings, org["slug"], str(key_accounts)) == 0
        b = f"/api/v1/orgs/{org['slug']}"
        mine = {r["name"]: r for r in (await owner.get(f"{b}/rules")).json()["created_by_me"]}
        emea = next(t for t in (await owner.get(f"{b}/territories")).json()["territories"] if t["name"] == "EMEA")
        vp_sales = next(r for r in (await owner.get(f"{b}/roles")).json()["roles"] if r["name"] == "VP Sales")
        rule = mine["Mid-size manufacturing and logistics accounts"]
        assert rule["followers"]["territories"] == [emea["id"]] and rule["followers"]["roles"] == [vp_sales["id"]]
        rules_by_org.append(rule)
    assert rules_by_org[0]["id"] != rules_by_org[1]["id"]
    (owner_a, org_a), (owner_b, org_b) = orgs
    r = await owner_a.patch(f"/api/v1/orgs/{org_a['slug']}/rules/{rules_by_org[0]['id']}", json={"name": "Changed in A"})
    assert r.status_code == 200
    names_b = [x["name"] for x in (await owner_b.get(f"/api/v1/orgs/{org_b['slug']}/rules")).json()["created_by_me"]]
    assert "Mid-size manufacturing and logistics accounts" in names_b and "Changed in A" not in names_b


async def test_a_file_naming_people_the_org_does_not_have_changes_nothing(client, settings, tmp_path, capsys):
    owner = await factory.sign_up(client, factory.unique("Owner"))
    org = await factory.create_org(owner, load_sample_data=True)
    path = tmp_path / "rules.json"
    path.write_text(
        '{"version": 1, "rules": ['
        '{"name": "Fine", "module": "Deals", "criteria": {"field": "Amount", "type": "number", "op": "gt", "value": 1}},'
        '{"name": "Ghost", "module": "Deals", "criteria": {"field": "Amount", "type": "number", "op": "gt", "value": 1},'
        ' "followers": {"users": ["nobody@nowhere.example"]}}]}'
    )
    with pytest.raises(SystemExit) as exited:
        await rules_cli.apply(settings, org["slug"], str(path))
    assert "nobody@nowhere.example" in str(exited.value) and "nothing was applied" in str(exited.value)
    names = [r["name"] for r in (await owner.get(f"/api/v1/orgs/{org['slug']}/rules")).json()["created_by_me"]]
    assert "Fine" not in names
    with pytest.raises(SystemExit):
        await rules_cli.apply(settings, "no-such-org", str(path))


def test_apply_command_runs_from_the_shell(tmp_path):
    """`feeds-server rules apply` as a command: a missing org is a clear error, not a traceback."""
    env = {**__import__("os").environ, "FEEDS_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'x.db'}", "FEEDS_DATA_DIR": str(tmp_path)}
    subprocess.run([sys.executable, "-m", "feeds_server.cli", "migrate"], capture_output=True, text=True, env=env, check=True)
    res = subprocess.run([sys.executable, "-m", "feeds_server.cli", "rules", "apply", "--org", "acme", str(EXAMPLE)], capture_output=True, text=True, env=env)
    assert res.returncode == 1 and "no org with the slug 'acme'" in res.stderr
