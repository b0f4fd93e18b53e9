"""Shared by the records and rules tests: an org with a small role tree and a CRM integration."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests import factory


@pytest.fixture
async def crm(client: httpx.AsyncClient, settings: Any) -> dict[str, Any]:
    """An org with an admin (CEO), a manager (Manager, under CEO), a rep (Rep, under Manager) and an integration token."""
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
    return {
        "admin": admin, "manager": manager, "rep": rep, "org": org, "b": b, "token": token, "client": client,
        "roles": {"ceo": ceo, "manager": manager_role, "rep": rep_role},
    }


async def send(crm: dict[str, Any], *events: dict[str, Any], token: str | None = None) -> httpx.Response:
    """Post a batch of record events with the org's integration token."""
    return await crm["client"].post(
        f"{crm['b']}/integration/record-events", json={"events": list(events)}, headers={"authorization": f"Bearer {token or crm['token']}"}
    )


def ev(event_id: str, type_: str = "created", module: str = "Deals", crm_id: str = "D-1", **record: Any) -> dict[str, Any]:
    """One record event; `changes`, `note` and `actor_email` go on the event, the rest on the record."""
    extra = {k: record.pop(k) for k in ("changes", "note", "actor_email", "occurred_at") if k in record}
    return {"event_id": event_id, "type": type_, "module": module, "record": {"id": crm_id, **record}, **extra}


async def items(actor: factory.Actor, crm: dict[str, Any], **params: Any) -> list[dict[str, Any]]:
    """The actor's feed wall."""
    r = await actor.get(f"{crm['b']}/feed", params=params)
    assert r.status_code == 200, r.text
    return r.json()["items"]



async def set_merge_seconds(actor: factory.Actor, crm: dict[str, Any], seconds: int) -> None:
    """The actor's record merge window (0: each change notifies on its own)."""
    r = await actor.patch(f"{crm['b']}/notification-settings", json={"record_merge_seconds": seconds})
    assert r.status_code == 200, r.text
