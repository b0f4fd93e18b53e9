"""`feeds-server rules validate|apply`: one rule file, many orgs, each with its own copy."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from feeds_server import rules_cli
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
