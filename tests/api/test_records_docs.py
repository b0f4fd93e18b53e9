"""docs/records.md works as written: its example batch, sent to the demo org, answers what the page shows."""

from __future__ import annotations

import json
import re
from pathlib import Path

from tests import factory

DOCS = Path(__file__).resolve().parents[2] / "docs" / "records.md"


def _json_blocks() -> list[str]:
    return re.findall(r"```json\n(.*?)```", DOCS.read_text(), re.S)


async def test_the_documented_batch_answers_as_documented(client):
    blocks = _json_blocks()
    batch = json.loads(next(b for b in blocks if '"events"' in b))
    answer = json.loads(next(b for b in blocks if '"results"' in b))
    admin = await factory.sign_up(client, factory.unique("Demo"))
    await factory.create_org(admin, slug="acme", load_sample_data=True)
    b = "/api/v1/orgs/acme"
    token = (await admin.post(f"{b}/integrations", json={"name": "CRM back end"})).json()["token"]
    r = await client.post(f"{b}/integration/record-events", json=batch, headers={"authorization": f"Bearer {token}"})
    assert r.status_code == 200 and r.json() == answer
    item = json.loads(next(b for b in blocks if '"kind": "record"' in b))
    edited = next(i for i in (await admin.get(f"{b}/feed", params={"module": "Deals"})).json()["items"] if i["data"]["change"] == "edited")
    assert {k: edited[k] for k in item} == item
