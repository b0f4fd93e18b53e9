"""Proving an email address and changing a password (actions/credentials.py).

The handlers check and count; the work that hashes runs after the request's own transaction
(`Deferred`), with no database connection held while argon2 runs.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from feeds_server.actions import credentials
from feeds_server.api import throttle
from feeds_server.api.accounts import account_view
from feeds_server.api.context import Ctx, Deferred
from feeds_server.api.access import request_address
from feeds_server.api.routing import PUBLIC, USER, Routes
from feeds_server.api.schemas import Body, Email, Password, Text

routes = Routes("accounts")


class LinkTokenBody(Body):
    token: Text = Field(min_length=1, max_length=200)


class ChangePasswordBody(Body):
    current_password: Text = Field(max_length=1024)
    new_password: Password


class ResetRequestBody(Body):
    email: Email


class ResetBody(Body):
    token: Text = Field(min_length=1, max_length=200)
    new_password: Password


@routes.post("/api/v1/auth/verify-email", access=PUBLIC, body=LinkTokenBody, reads_only=True)
async def verify_email(ctx: Ctx) -> Deferred:
    """Confirm an email address with the token of the link sent to it (signed in or not)."""
    services, token, now = ctx.services, ctx.body.token, ctx.services.clock()

    async def complete() -> dict[str, Any]:
        user = await credentials.verify_email(services, token, now)
        return {"user": account_view(user)}

    return Deferred(complete)


@routes.post("/api/v1/me/verification-email", access=USER, status=202)
async def send_verification_email(ctx: Ctx) -> dict[str, Any]:
    """Send the verification link to the caller's address again (a few an hour at most)."""
    user = ctx.current_user
    credentials.require_unverified(user)
    await throttle.emailing_own_account(ctx)
    await credentials.send_verification(ctx.session, user, ctx.services.clock())
    return {"email": user.email, "verification": "email_sent"}


@routes.post("/api/v1/me/password", access=USER, body=ChangePasswordBody, reads_only=True)
async def change_password(ctx: Ctx) -> Deferred:
    """Change the password; needs the current one. Every other session of the account ends."""
    b: ChangePasswordBody = ctx.body
    user, token = ctx.current_user, ctx.token
    await throttle.signing_in(ctx, user.email)  # a guess at the current password counts as a sign-in
    services, now, address = ctx.services, ctx.services.clock(), request_address(ctx)

    async def complete() -> dict[str, Any]:
        done = await credentials.change_password(
            services, user.id, token.id if token else None, b.current_password, b.new_password, now, address
        )
        return {"ended_sessions": done.ended_sessions}

    return Deferred(complete)


@routes.post("/api/v1/auth/password-reset", access=PUBLIC, body=ResetRequestBody, status=202, reads_only=True)
async def request_password_reset(ctx: Ctx) -> Deferred:
    """Email a password reset link to the address if it has an account; the answer is the same either way."""
    await throttle.signing_up(ctx)
    email, services, now = ctx.body.email, ctx.services, ctx.services.clock()

    async def complete() -> dict[str, Any]:
        may_send = await throttle.may_email_account(ctx, email)
        await credentials.request_password_reset(services, email, now, may_send)
        return {"reset": "email_sent_if_account_exists"}

    return Deferred(complete)


@routes.post("/api/v1/auth/password-reset/complete", access=PUBLIC, body=ResetBody, reads_only=True)
async def reset_password(ctx: Ctx) -> Deferred:
    """Set a new password with the token of a reset link (once, within 30 minutes); every session ends."""
    b: ResetBody = ctx.body
    services, now, address = ctx.services, ctx.services.clock(), request_address(ctx)

    async def complete() -> dict[str, Any]:
        done = await credentials.reset_password(services, b.token, b.new_password, now, address)
        return {"user": account_view(done.user), "ended_sessions": done.ended_sessions}

    return Deferred(complete)
