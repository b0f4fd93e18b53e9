"""A person's own data (GDPR, F-OPS-3): they export it or erase it; an org admin erases a member's
data in their org. What erasure removes and what it anonymises: actions/erasure.py."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from feeds_server.actions import erasure, orgs
from feeds_server.actions.personal_data import personal_data
from feeds_server.api import throttle
from feeds_server.api.context import Ctx, Deferred
from feeds_server.api.access import request_address
from feeds_server.api.routing import USER, Routes
from feeds_server.api.schemas import Body, Text
from feeds_server.domain import network
from feeds_server.domain import permissions as perms
from feeds_server.errors import Forbidden
from feeds_server.store.models import Org

routes = Routes("privacy")


class EraseBody(Body):
    password: Text = Field(max_length=1024)


@routes.get("/api/v1/me/export", access=USER)
async def export_me(ctx: Ctx) -> dict[str, Any]:
    """Everything the server holds of the signed-in user, in every org, as one JSON document (GDPR)."""
    address = request_address(ctx)

    def readable(org: Org) -> bool:
        return not org.ip_allowlist or network.allowed(address, org.ip_allowlist)

    return await personal_data(ctx.session, ctx.current_user.id, ctx.services.clock(), readable)


@routes.post("/api/v1/me/erase", access=USER, body=EraseBody, status=202, reads_only=True)
async def erase_me(ctx: Ctx) -> Deferred:
    """Erase the signed-in account and its data in every org (GDPR); needs the password. Every sign-in ends."""
    user = ctx.current_user
    await throttle.signing_in(ctx, user.email)  # a guess at the password counts as a sign-in
    services, user_id, stored_hash, password = ctx.services, user.id, user.password_hash, ctx.body.password

    async def complete() -> dict[str, Any]:
        # Checked once the request's transaction is over: no connection or lock waits on argon2.
        if not await services.passwords.verify(stored_hash, password):
            raise Forbidden("wrong_password", "the password does not match this account")
        # Org by org, each in a transaction of its own.
        ctx.after_commit(lambda: erasure.erase_account(services, user_id, "self"))
        return {"user_id": user_id, "status": "erasing"}

    return Deferred(complete)


@routes.post("/api/v1/orgs/{slug}/members/{user_id:int}/erase", permission=perms.ADMIN)
async def erase_member(ctx: Ctx) -> dict[str, Any]:
    """Erase a member's data in this org and remove them (admins, GDPR); their login and other orgs stay."""
    membership, _ = await orgs.get_member(ctx.session, ctx.path["user_id"])
    if membership.is_super_admin:
        raise Forbidden("cannot_erase_super_admin", "the super admin's data is erased with their account only")
    person = await erasure.person_of(ctx.session, membership.user_id)
    done = await erasure.erase_in_org(ctx.session, ctx.current_org, person, ctx.me.user_id, "admin", ctx.services.clock())
    services = ctx.services
    ctx.after_commit(lambda: erasure.delete_files(services, done.file_keys + done.preview_keys))
    return {"erased": done.summary()}
