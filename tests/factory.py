"""Builds users and orgs through the public API, so tests set up state the way clients do."""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
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


def answer_of(response: httpx.Response) -> Any:
    """A response's JSON less the error's `request_id`, which is each request's own: two answers
    that must tell nothing apart are compared with this."""
    body = response.json()
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        return {**body, "error": {k: v for k, v in body["error"].items() if k != "request_id"}}
    return body


def unique(prefix: str) -> str:
    return f"{prefix}{next(_counter)}"


async def sign_up(
    client: httpx.AsyncClient, name: str | None = None, email: str | None = None, verified: bool = True, secret_key: str | None = None
) -> Actor:
    """A new account, signed in. With `verified`, its address is confirmed through the public route,
    with a link signed as the verification email's is (the key of the in-process app, or
    `secret_key` for a server in another process; a remote server without it stays unverified).
    The verification email then goes nowhere: the worker drops it for a verified address."""
    name = name or unique("user")
    email = email or f"{name.lower().replace(' ', '.')}@example.com"
    r = await client.post("/api/v1/auth/signup", json={"email": email, "password": PASSWORD, "name": name})
    assert r.status_code == 201, r.text
    actor = await sign_in(client, email)
    app = getattr(client._transport, "app", None)
    services = app.state.services if app is not None else None
    if secret_key is None and services is not None:
        secret_key = services.settings.secret_key
    if verified and secret_key is not None:
        now = services.clock() if services is not None else datetime.now(timezone.utc)
        await verify_email(actor, verification_link(secret_key, actor.id, actor.email, now))
    return actor


def verification_link(secret_key: str, user_id: int, email: str, now: datetime) -> str:
    """The token of a verification link, as the notifier worker signs it."""
    from feeds_server import limits
    from feeds_server.domain import account_links

    return account_links.sign(secret_key, account_links.VERIFY_EMAIL, user_id, now + limits.EMAIL_VERIFICATION_TTL, email)


async def verify_email(actor: Actor, token: str) -> None:
    r = await actor.client.post("/api/v1/auth/verify-email", json={"token": token})
    assert r.status_code == 200 and r.json()["user"]["email_verified"], r.text


def mail_link(mail_dir: Path, email: str, pattern: str) -> str:
    """The first group of `pattern` in the newest email to `email` whose text has it."""
    for msg in reversed(mails(mail_dir)):
        if msg["To"] == email:
            body = msg.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
            match = re.search(pattern, body)
            if match:
                return match.group(1)
    raise AssertionError(f"no email to {email} matching {pattern!r}")


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
    return mail_link(mail_dir, email, r"/invitation/(fsi_[A-Za-z0-9_-]+)")


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


async def team(client: httpx.AsyncClient, mail_dir: Path) -> tuple[Actor, Actor, Actor, dict[str, Any]]:
    """An org with its owner (admin) and two members, Ann and Bob."""
    owner = await sign_up(client, unique("Owner"))
    org = await create_org(owner)
    ann = await sign_up(client, unique("Ann"))
    bob = await sign_up(client, unique("Bob"))
    for member in (ann, bob):
        await invite_and_join(owner, org["slug"], member, mail_dir)
    return owner, ann, bob, org


def org_path(org: dict[str, Any]) -> str:
    """The API prefix of an org's routes."""
    return f"/api/v1/orgs/{org['slug']}"
