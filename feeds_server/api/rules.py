"""Auto-follow rules (F-FOLLOW-4 … F-FOLLOW-7): created by me, shared with me, preview before saving."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from feeds_server import limits
from feeds_server.actions import rules
from feeds_server.api.context import Ctx
from feeds_server.api.routing import Routes
from feeds_server.api.schemas import Body, Description, Id, Name, Text
from feeds_server.domain import permissions as perms
from feeds_server.domain.records import Followers

routes = Routes("rules")
FEED = perms.FEEDS_TAB
FieldName = Annotated[Text, Field(min_length=1, max_length=limits.MAX_FIELD_NAME_CHARS)]
# The fields the rule's follows care about (absent or null: every field).
FollowFields = Annotated[list[FieldName] | None, Field(min_length=1, max_length=limits.MAX_FOLLOW_FIELDS)]


class FollowersIn(Body):
    creator: bool = True
    record_creator: bool = False
    owner_superior_role: bool = False
    users: list[Id] = Field(default_factory=list, max_length=500)
    roles: list[Id] = Field(default_factory=list, max_length=500)
    groups: list[Id] = Field(default_factory=list, max_length=500)
    territories: list[Id] = Field(default_factory=list, max_length=500)

    def to_domain(self) -> Followers:
        return Followers.from_json(self.model_dump())


class RuleIn(Body):
    name: Name
    module: Text = Field(min_length=1, max_length=limits.MAX_MODULE_CHARS)
    criteria: dict[str, Any]
    followers: FollowersIn = Field(default_factory=FollowersIn)
    description: Description = ""
    fields: FollowFields = None


class RulePatch(Body):
    name: Name | None = None
    criteria: dict[str, Any] | None = None
    followers: FollowersIn | None = None
    description: Description | None = None
    fields: FollowFields = None  # given as null: every field again; absent: unchanged


class PreviewIn(Body):
    module: Text = Field(min_length=1, max_length=limits.MAX_MODULE_CHARS)
    criteria: dict[str, Any]
    followers: FollowersIn = Field(default_factory=FollowersIn)


@routes.get("/api/v1/orgs/{slug}/rules", permission=FEED)
async def list_rules(ctx: Ctx) -> dict[str, Any]:
    """Rules the caller created, and rules that name them as a follower (read-only for them)."""
    me = ctx.me
    return {
        "created_by_me": [rules.rule_view(r) for r in await rules.created_by(ctx.session, me.user_id)],
        "shared_with_me": [rules.rule_view(r) for r in await rules.shared_with(ctx.session, me.user_id, me.membership.role_id)],
    }


@routes.post("/api/v1/orgs/{slug}/rules", permission=FEED, body=RuleIn, status=201, idempotent=True)
async def create_rule(ctx: Ctx) -> dict[str, Any]:
    """Create a rule (at most 5 per module per creator). Followers other than the creator: admins only."""
    b: RuleIn = ctx.body
    rule = await rules.create_rule(
        ctx.session, ctx.me.user_id, ctx.me.is_admin, b.name, b.module, b.criteria, b.followers.to_domain(), b.description, ctx.services.clock(),
        fields=b.fields,
    )
    return {"rule": rules.rule_view(rule)}


@routes.post("/api/v1/orgs/{slug}/rules/preview", permission=FEED, body=PreviewIn)
async def preview(ctx: Ctx) -> dict[str, Any]:
    """Before saving: which current records match, and who would follow each."""
    b: PreviewIn = ctx.body
    followers = b.followers.to_domain()
    followers.check_allowed(ctx.me.is_admin)
    return await rules.preview(ctx.session, ctx.me.user_id, b.module, b.criteria, followers)


@routes.patch("/api/v1/orgs/{slug}/rules/{rule_id:int}", permission=FEED, body=RulePatch)
async def update_rule(ctx: Ctx) -> dict[str, Any]:
    """Edit one's own rule."""
    b: RulePatch = ctx.body
    me = ctx.me
    rule = await rules.own_rule(ctx.session, ctx.path["rule_id"], me.user_id, me.membership.role_id)
    rule = await rules.update_rule(
        ctx.session, rule, me.is_admin, b.name, b.criteria, b.followers.to_domain() if b.followers else None, b.description, ctx.services.clock(),
        fields=b.fields if "fields" in b.model_fields_set else rules.KEEP,
    )
    return {"rule": rules.rule_view(rule)}


@routes.delete("/api/v1/orgs/{slug}/rules/{rule_id:int}", permission=FEED, status=204)
async def delete_rule(ctx: Ctx) -> None:
    """Delete one's own rule."""
    me = ctx.me
    await rules.delete_rule(ctx.session, await rules.own_rule(ctx.session, ctx.path["rule_id"], me.user_id, me.membership.role_id))
