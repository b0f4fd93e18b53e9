"""Invitations (F-ORG-5): accept or decline for 7 days, by id or by the email's link."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update

from feeds_server import limits
from feeds_server.store.models import Org
from feeds_server.store.scope import account_session
from tests import factory


async def _invited(client, services, settings):  # type: ignore[no-untyped-def]
    owner = await factory.sign_up(client, factory.unique("Owner"))
    org = await factory.create_org(owner)
    guest = await factory.sign_up(client, factory.unique("Guest"))
    r = await owner.post(f"/api/v1/orgs/{org['slug']}/invitations", json={"email": guest.email})
    assert r.status_code == 201
    await factory.deliver_mail(client)
    return owner, org, guest, r.json()["invitation"]


async def test_invitation_at_six_days_23_hours_is_accepted(client, services, settings):
    start = services.clock()
    owner, org, guest, inv = await _invited(client, services, settings)
    services.clock = lambda: start + limits.INVITATION_TTL - timedelta(hours=1)
    guest = await factory.sign_in(client, guest.email)
    r = await guest.post(f"/api/v1/me/invitations/{inv['id']}/accept")
    assert r.status_code == 200 and r.json()["org"]["slug"] == org["slug"]


async def test_invitation_at_seven_days_and_one_second_is_expired(client, services, settings):
    start = services.clock()
    owner, org, guest, inv = await _invited(client, services, settings)
    services.clock = lambda: start + limits.INVITATION_TTL + timedelta(seconds=1)
    guest = await factory.sign_in(client, guest.email)  # the week-old sign-in has expired too
    for action in ("accept", "decline"):
        r = await guest.post(f"/api/v1/me/invitations/{inv['id']}/{action}")
        assert r.status_code == 410 and r.json()["error"]["code"] == "invitation_expired"
    assert (await guest.get("/api/v1/me/invitations")).json()["invitations"] == []


async def test_invitee_sees_pending_invitations_and_declines_one(client, services, settings):
    owner, org, guest, inv = await _invited(client, services, settings)
    pending = (await guest.get("/api/v1/me/invitations")).json()["invitations"]
    assert [(p["id"], p["org"]["slug"]) for p in pending] == [(inv["id"], org["slug"])]
    assert (await guest.post(f"/api/v1/me/invitations/{inv['id']}/decline")).status_code == 204
    r = await guest.post(f"/api/v1/me/invitations/{inv['id']}/accept")
    assert r.status_code == 409 and r.json()["error"]["code"] == "invitation_answered"


async def test_accepting_keeps_the_invitees_other_orgs(client, services, settings):
    owner, org, guest, inv = await _invited(client, services, settings)
    own = await factory.create_org(guest)
    await guest.post(f"/api/v1/me/invitations/{inv['id']}/accept")
    slugs = {m["org"]["slug"] for m in (await guest.get("/api/v1/me")).json()["orgs"]}
    assert slugs == {org["slug"], own["slug"]}


async def test_someone_elses_invitation_is_not_found(client, services, settings):
    owner, org, guest, inv = await _invited(client, services, settings)
    other = await factory.sign_up(client, factory.unique("Other"))
    r = await other.post(f"/api/v1/me/invitations/{inv['id']}/accept")
    assert r.status_code == 404 and r.json()["error"]["code"] == "invitation_not_found"
    token = factory.invitation_token(settings.mail_dir, guest.email)
    assert (await other.post("/api/v1/invitations/accept", json={"token": token})).status_code == 404


async def test_invitation_email_carries_the_link(client, services, settings):
    owner, org, guest, inv = await _invited(client, services, settings)
    [mail] = [m for m in factory.mails(settings.mail_dir) if m["To"] == guest.email]
    assert org["name"] in mail["Subject"]
    assert (await guest.post("/api/v1/invitations/accept", json={"token": factory.invitation_token(settings.mail_dir, guest.email)})).status_code == 200


async def test_ip_restricted_org_invitations_are_accepted_only_through_the_link(client, services, settings):
    """F-ORG-5 with F-SEC-4: not listed for the invitee, refused by id, accepted by the link."""
    owner, org, guest, inv = await _invited(client, services, settings)
    async with account_session(services.sessions) as session:
        await session.execute(update(Org).where(Org.id == org["id"]).values(ip_allowlist=["127.0.0.0/8"]))
    assert (await guest.get("/api/v1/me/invitations")).json()["invitations"] == []
    r = await guest.post(f"/api/v1/me/invitations/{inv['id']}/accept")
    assert r.status_code == 403 and r.json()["error"]["code"] == "invitation_link_required"
    token = factory.invitation_token(settings.mail_dir, guest.email)
    assert (await guest.post("/api/v1/invitations/accept", json={"token": token})).status_code == 200


async def test_only_admins_invite_and_revoke(client, services, settings):
    owner, org, guest, inv = await _invited(client, services, settings)
    await guest.post(f"/api/v1/me/invitations/{inv['id']}/accept")
    r = await guest.post(f"/api/v1/orgs/{org['slug']}/invitations", json={"email": "x@example.com"})
    assert r.status_code == 403 and r.json()["error"]["code"] == "admin_required"
    r = await owner.post(f"/api/v1/orgs/{org['slug']}/invitations", json={"email": "y@example.com"})
    new_id = r.json()["invitation"]["id"]
    assert (await owner.delete(f"/api/v1/orgs/{org['slug']}/invitations/{new_id}")).status_code == 204
    r = await owner.post(f"/api/v1/orgs/{org['slug']}/invitations", json={"email": guest.email})
    assert r.status_code == 409 and r.json()["error"]["code"] == "already_member"
