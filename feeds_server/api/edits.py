"""Editing posts and comments, their history, and hiding an earlier text (F-POST-9). Needs the Feeds tab."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from feeds_server import limits
from feeds_server.actions import edits
from feeds_server.actions.reader_marks import mark_for_reader
from feeds_server.api import throttle
from feeds_server.api.context import Ctx
from feeds_server.api.posts import CommentBody, reader
from feeds_server.api.routing import Routes
from feeds_server.api.schemas import Body, Query
from feeds_server.domain import permissions as perms

routes = Routes("edits")
FEED = perms.FEEDS_TAB


class EditBody(CommentBody):
    """The new text, checked as a new message's (F-POST-2, F-POST-3)."""


class HistoryQuery(Query):
    before: int | None = Field(default=None, ge=1, le=2**63 - 1)
    limit: int = Field(default=limits.DEFAULT_PAGE_SIZE, ge=1, le=limits.MAX_PAGE_SIZE)


class VersionBody(Body):
    hidden: bool


def _page(entries: list[dict[str, Any]], limit: int) -> dict[str, Any]:
    earlier = [e for e in entries if not e["current"]]
    more = len(earlier) > limit
    shown = [e for e in entries if e["current"]] + earlier[:limit]
    return {"versions": shown, "next_before": earlier[limit - 1]["version_id"] if more else None}


@routes.patch("/api/v1/orgs/{slug}/posts/{post_id:int}", permission=FEED, checks=(throttle.posting,), body=EditBody)
async def edit_post(ctx: Ctx) -> dict[str, Any]:
    """Edit one's own post or message; the text it replaces is kept in its history."""
    edit = await edits.edit_post(
        ctx.session, reader(ctx), ctx.path["post_id"], ctx.body.body, ctx.current_org.edit_window_seconds, ctx.services.clock()
    )
    await mark_for_reader(ctx.session, ctx.me.user_id, [edit.view])
    return {"post": edit.view}


@routes.patch("/api/v1/orgs/{slug}/comments/{comment_id:int}", permission=FEED, checks=(throttle.posting,), body=EditBody)
async def edit_comment(ctx: Ctx) -> dict[str, Any]:
    """Edit one's own comment; the text it replaces is kept in its history."""
    edit = await edits.edit_comment(
        ctx.session, reader(ctx), ctx.path["comment_id"], ctx.body.body, ctx.current_org.edit_window_seconds, ctx.services.clock()
    )
    await mark_for_reader(ctx.session, ctx.me.user_id, comments=[edit.view])
    return {"comment": edit.view}


@routes.get("/api/v1/orgs/{slug}/posts/{post_id:int}/history", permission=FEED, query=HistoryQuery)
async def post_history(ctx: Ctx) -> dict[str, Any]:
    """A post's texts, newest first (the current one first); pass `next_before` as `before` for more."""
    q: HistoryQuery = ctx.query
    entries = await edits.post_history(ctx.session, reader(ctx), ctx.path["post_id"], q.before, q.limit + 1)
    return _page(entries, q.limit)


@routes.get("/api/v1/orgs/{slug}/comments/{comment_id:int}/history", permission=FEED, query=HistoryQuery)
async def comment_history(ctx: Ctx) -> dict[str, Any]:
    """A comment's texts, newest first (the current one first); pass `next_before` as `before` for more."""
    q: HistoryQuery = ctx.query
    entries = await edits.comment_history(ctx.session, reader(ctx), ctx.path["comment_id"], q.before, q.limit + 1)
    return _page(entries, q.limit)


@routes.patch("/api/v1/orgs/{slug}/versions/{version_id:int}", permission=perms.ADMIN, body=VersionBody)
async def moderate_version(ctx: Ctx) -> dict[str, Any]:
    """Hide an earlier text of a post or comment from everyone but admins, or show it again (admins)."""
    version = await edits.set_version_hidden(ctx.session, reader(ctx), ctx.path["version_id"], ctx.body.hidden, ctx.services.clock())
    return {"version": version}
