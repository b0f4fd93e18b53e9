"""Builds users and orgs through the public API, so tests set up state the way clients do."""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import Message
from pathlib import Path
from typing import Any

import httpx

PASSWORD = "correct horse battery"
_counter = itertools.count(1)


@dataclass
class Actor:
    """A signed-in user and the HTTP client they use."""

    client: httpx.AsyncClient
    id: int
    email: str
    name: str
    token: str
    orgs: dict[str, Any] = field(default_factory=dict)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def _headers(self, kw: dict[str, Any]) -> dict[str, str]:
        return {**self.headers, **kw.pop("headers", {})}

    async def get(self, url: str, **kw: Any) -> httpx.Response:
        return await self.client.get(url, headers=self._headers(kw), **kw)

    async def post(self, url: str, json: Any = None, **kw: Any) -> httpx.Response:
        return await self.client.post(url, json=json, headers=self._headers(kw), **kw)

    async def put(self, url: str, json: Any = None, **kw: Any) -> httpx.Response:
        return await self.client.put(url, json=json, headers=self._headers(kw), **kw)

    async def patch(self, url: str, json: Any = None, **kw: Any) -> httpx.Response:
        return await self.client.patch(url, json=json, headers=self._headers(kw), **kw)

    async def delete(self, url: str, **kw: Any) -> httpx.Response:
        return await self.client.delete(url, headers=self._headers(kw), **kw)


def unique(prefix: str) -> str:
    return f"{prefix}{next(_counter)}"


async def sign_up(client: httpx.AsyncClient, name: str | None = None, email: str | None = None) -> Actor:
    name = name or unique("user")
    email = email or f"{name.lower().replace(' ', '.')}@example.com"
    r = await client.post("/api/v1/auth/signup", json={"email": email, "password": PASSWORD, "name": name})
    assert r.status_code == 201, r.text
    return await sign_in(client, email)


async def sign_in(client: httpx.AsyncClient, email: str, org_slug: str | None = None) -> Actor:
    body: dict[str, Any] = {"email": email, "password": PASSWORD}
    if org_slug:
        body["org_slug"] = org_slug
    r = await client.post("/api/v1/auth/signin", json=body)
    assert r.status_code == 200, r.text
    data = r.json()
    return Actor(client, data["user"]["id"], email, data["user"]["name"], data["token"])


async def create_org(actor: Actor, slug: str | None = None, **extra: Any) -> dict[str, Any]:
    slug = slug or unique("org")
    r = await actor.post("/api/v1/orgs", json={"name": f"{slug.title()} Inc", "slug": slug, "time_zone": "UTC", **extra})
    assert r.status_code == 201, r.text
    org = r.json()["org"]
    actor.orgs[slug] = org
    return org


def mails(mail_dir: Path) -> list[Message]:
    if not mail_dir.exists():
        return []
    return [message_from_bytes(p.read_bytes(), policy=policy.default) for p in sorted(mail_dir.glob("*.eml"))]


def invitation_token(mail_dir: Path, email: str) -> str:
    """The link token of the newest invitation email to `email`."""
    for msg in reversed(mails(mail_dir)):
        if msg["To"] == email:
            body = msg.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
            match = re.search(r"/invitation/(fsi_[A-Za-z0-9_-]+)", body)
            assert match, body
            return match.group(1)
    raise AssertionError(f"no invitation email to {email}")


async def deliver_mail(client: httpx.AsyncClient, services: Any = None) -> int:
    """Run the notifier worker over the outbox until nothing is due (emails land in the mail folder).

    `services` defaults to those of the in-process app behind `client`.
    """
    from feeds_server.notify import worker

    services = services or client._transport.app.state.services  # type: ignore[attr-defined]
    return await worker.run(services, burst=True)


async def invite_and_join(admin: Actor, slug: str, member: Actor, mail_dir: Path, services: Any = None, **extra: Any) -> dict[str, Any]:
    r = await admin.post(f"/api/v1/orgs/{slug}/invitations", json={"email": member.email, **extra})
    assert r.status_code == 201, r.text
    await deliver_mail(admin.client, services)
    token = invitation_token(mail_dir, member.email)
    r = await member.post("/api/v1/invitations/accept", json={"token": token})
    assert r.status_code == 200, r.text
    return r.json()
