"""Taking someone else's invitation or account: a stranger who signs up with an invited address sees
and accepts nothing until the address is proven, an invitation link works only for the address it
was sent to, and account links (verification, password reset) refuse forgery, reuse and age."""

from __future__ import annotations

from datetime import timedelta

from feeds_server import limits
from feeds_server.domain import account_links
from tests import factory

VERIFY = r"/verify-email/(fsv_[0-9]+\.[0-9]+\.[A-Za-z0-9_-]+)"
RESET = r"/reset-password/(fsr_[0-9]+\.[0-9]+\.[A-Za-z0-9_-]+)"


async def _org_inviting(client, settings, email: str):  # type: ignore[no-untyped-def]
    admin = await factory.sign_up(client, factory.unique("Admin"))
    org = await factory.create_org(admin)
    r = await admin.post(f"/api/v1/orgs/{org['slug']}/invitations", json={"email": email})
    assert r.status_code == 201, r.text
    await factory.deliver_mail(client)
    return admin, org, r.json()["invitation"]


async def test_stranger_who_signs_up_with_an_invited_address_sees_and_accepts_nothing_is_refused(client, settings):
    admin, org, invitation = await _org_inviting(client, settings, "pending@x.test")
    stranger = await factory.sign_up(client, "Stranger", email="pending@x.test", verified=False)
    me = (await stranger.get("/api/v1/me")).json()
    assert me["user"]["email_verified"] is False and me["invitations"] == []
    assert (await stranger.get("/api/v1/me/invitations")).json()["invitations"] == []
    for action in ("accept", "decline"):
        r = await stranger.post(f"/api/v1/me/invitations/{invitation['id']}/{action}")
        assert r.status_code == 403 and r.json()["error"]["code"] == "email_not_verified"
    assert (await stranger.get(f"/api/v1/orgs/{org['slug']}/feed")).status_code == 404
    # The owner of the mailbox follows the link of the verification email: now the invitation shows.
    await factory.deliver_mail(client)
    token = factory.mail_link(settings.mail_dir, "pending@x.test", VERIFY)
    r = await client.post("/api/v1/auth/verify-email", json={"token": token})
    assert r.status_code == 200 and r.json()["user"]["email_verified"] is True
    assert [i["id"] for i in (await stranger.get("/api/v1/me")).json()["invitations"]] == [invitation["id"]]


async def test_invitation_link_used_by_another_account_is_refused(client, settings):
    admin, org, invitation = await _org_inviting(client, settings, "invitee@x.test")
    token = factory.invitation_token(settings.mail_dir, "invitee@x.test")
    other = await factory.sign_up(client, factory.unique("Other"))  # verified, but another address
    r = await other.post("/api/v1/invitations/accept", json={"token": token})
    assert r.status_code == 404 and r.json()["error"]["code"] == "invitation_not_found"
    assert (await other.get(f"/api/v1/orgs/{org['slug']}/feed")).status_code == 404
    # The invited address's own account, unverified, accepts through the link: the link reached that
    # mailbox, which proves the address as the verification link would.
    invitee = await factory.sign_up(client, "Invitee", email="invitee@x.test", verified=False)
    r = await invitee.post("/api/v1/invitations/accept", json={"token": token})
    assert r.status_code == 200, r.text
    assert (await invitee.get("/api/v1/me")).json()["user"]["email_verified"] is True


async def test_forged_verification_link_is_refused(client, settings):
    user = await factory.sign_up(client, factory.unique("Victim"), verified=False)
    now = client._transport.app.state.services.clock()
    forged = [
        account_links.sign("not-the-server-key", account_links.VERIFY_EMAIL, user.id, now + timedelta(days=1), user.email),
        factory.verification_link(settings.secret_key, user.id, "someone.else@example.com", now),  # signed for another address
        factory.verification_link(settings.secret_key, user.id, user.email, now).replace(f"fsv_{user.id}.", f"fsv_{user.id + 1}."),
        "fsv_1.2.x", "fsv_².2.x", "fsr_" + factory.verification_link(settings.secret_key, user.id, user.email, now)[4:], "nonsense",
    ]
    for token in forged:
        r = await client.post("/api/v1/auth/verify-email", json={"token": token})
        assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_link", (token, r.text)
    assert (await user.get("/api/v1/me")).json()["user"]["email_verified"] is False


async def test_expired_verification_link_is_refused(client, settings, services):
    user = await factory.sign_up(client, factory.unique("Late"), verified=False)
    await factory.deliver_mail(client)
    token = factory.mail_link(settings.mail_dir, user.email, VERIFY)
    start = services.clock()
    services.clock = lambda: start + limits.EMAIL_VERIFICATION_TTL + timedelta(seconds=1)
    r = await client.post("/api/v1/auth/verify-email", json={"token": token})
    assert r.status_code == 410 and r.json()["error"]["code"] == "link_expired"
    services.clock = lambda: start + limits.EMAIL_VERIFICATION_TTL - timedelta(seconds=5)
    assert (await client.post("/api/v1/auth/verify-email", json={"token": token})).status_code == 200


async def test_reused_verification_link_is_refused(client, settings):
    user = await factory.sign_up(client, factory.unique("Twice"), verified=False)
    await factory.deliver_mail(client)
    token = factory.mail_link(settings.mail_dir, user.email, VERIFY)
    assert (await client.post("/api/v1/auth/verify-email", json={"token": token})).status_code == 200
    r = await client.post("/api/v1/auth/verify-email", json={"token": token})
    assert r.status_code == 410 and r.json()["error"]["code"] == "link_used"


async def test_reused_forged_or_expired_reset_link_is_refused(client, settings, services):
    user = await factory.sign_up(client, factory.unique("Owner"))
    assert (await client.post("/api/v1/auth/password-reset", json={"email": user.email})).status_code == 202
    await factory.deliver_mail(client)
    token = factory.mail_link(settings.mail_dir, user.email, RESET)
    body = {"token": token, "new_password": "a brand new password"}
    start = services.clock()
    services.clock = lambda: start + limits.PASSWORD_RESET_TTL + timedelta(seconds=1)
    r = await client.post("/api/v1/auth/password-reset/complete", json=body)
    assert r.status_code == 410 and r.json()["error"]["code"] == "link_expired"
    services.clock = lambda: start + limits.PASSWORD_RESET_TTL - timedelta(seconds=5)
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    r = await client.post("/api/v1/auth/password-reset/complete", json={**body, "token": forged})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_link"
    assert (await client.post("/api/v1/auth/password-reset/complete", json=body)).status_code == 200
    r = await client.post("/api/v1/auth/password-reset/complete", json={**body, "new_password": "and another one"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_link"  # single use
    r = await client.post("/api/v1/auth/signin", json={"email": user.email, "password": "a brand new password"})
    assert r.status_code == 200
