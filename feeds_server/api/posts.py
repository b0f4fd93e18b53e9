"""Posts, private messages, comments and attachments (F-POST-1 … F-POST-8). Needs the Feeds tab."""

from __future__ import annotations

from dataclasses import replace
from typing import Any
from urllib.parse import quote

import orjson
from pydantic import Field
from starlette.responses import Response, StreamingResponse

from feeds_server import limits
from feeds_server.actions import posts
from feeds_server.actions.posts import Reader
from feeds_server.actions.reader_marks import mark_for_reader
from feeds_server.actions.feed_reasons import add_reasons
from feeds_server.actions.views import post_views
from feeds_server.actions.post_writer import Remember, writer_for
from feeds_server.api import throttle
from feeds_server.api.context import Ctx, Deferred
from feeds_server.api.routing import Routes
from feeds_server.api.schemas import Body, Id, Query, Text
from feeds_server.api.uploads import file_store
from feeds_server.domain import names
from feeds_server.domain import permissions as perms

routes = Routes("posts")
FEED = perms.FEEDS_TAB

# Text fields allow well past the limit so the error that names the limit (F-POST-2) is the one given.
class CreatePostBody(Body):
    body: Text = Field(max_length=4 * (limits.MAX_POST_CHARS + 1))
    group_id: Id | None = None
    recipient_id: Id | None = None
    private: bool = False


class CommentBody(Body):
    body: Text = Field(max_length=4 * (limits.MAX_POST_CHARS + 1))


class CommentsQuery(Query):
    after: int | None = Field(default=None, ge=1, le=2**63 - 1)
    limit: int = Field(default=limits.DEFAULT_PAGE_SIZE, ge=1, le=limits.MAX_PAGE_SIZE)


def reader(ctx: Ctx) -> Reader:
    me = ctx.me
    return Reader(me.user_id, me.membership.role_id, me.is_admin)


@routes.post(
    "/api/v1/orgs/{slug}/posts", permission=FEED, checks=(throttle.posting,), body=CreatePostBody, files=True,
    status=201, idempotent=True, reads_only=True,
)
async def create_post(ctx: Ctx) -> Deferred:
    """Post to the org, to a group, or privately. JSON, or multipart with a `message` part and up to 5 `files`."""
    body: CreatePostBody = ctx.body
    draft = posts.Draft(body.body, body.group_id, body.recipient_id, body.private, ctx.files)
    item = await posts.check_post(lambda: ctx.session, reader(ctx), draft, ctx.services.clock())
    return _written(ctx, item)


def _written(ctx: Ctx, item: posts.NewPost) -> Deferred:
    """The checked post, handed to the org's writer, which commits it with whatever else is queued;
    a retried request's answer is stored in the same transaction."""
    remember = None
    if ctx.idempotency is not None:
        key, print_ = ctx.idempotency
        remember = Remember(ctx.me.user_id, key, print_, lambda view: (201, orjson.dumps({"post": view}, option=orjson.OPT_NON_STR_KEYS)))
        ctx.idempotency = None  # stored by the writer, not by the pipeline
    org_id = ctx.current_org.id
    item = replace(item, author_name=ctx.me.user.name)

    async def complete() -> dict[str, Any]:
        return {"post": await writer_for(ctx.services).write(org_id, item, remember)}

    return Deferred(complete)


@routes.get("/api/v1/orgs/{slug}/posts/{post_id:int}", permission=FEED)
async def get_post(ctx: Ctx) -> dict[str, Any]:
    """One post with its latest comments, if the caller may see it."""
    post, _ = await posts.visible_post(ctx.session, reader(ctx), ctx.path["post_id"])
    view = (await post_views(ctx.session, [post]))[0]
    await mark_for_reader(ctx.session, ctx.me.user_id, [view])
    await add_reasons(ctx.session, ctx.me.user_id, ctx.me.membership.role_id, [view])
    return {"post": view}


@routes.delete("/api/v1/orgs/{slug}/posts/{post_id:int}", permission=FEED, status=204)
async def delete_post(ctx: Ctx) -> None:
    """Delete one's own post (admins may delete any: moderation). Reaches connected clients live."""
    keys = await posts.delete_post(ctx.session, reader(ctx), ctx.path["post_id"])
    store = file_store(ctx.services)

    async def remove_files() -> None:
        for key in keys:
            await store.delete(key)

    ctx.after_commit(remove_files)


@routes.post(
    "/api/v1/orgs/{slug}/posts/{post_id:int}/comments", permission=FEED, checks=(throttle.posting,), body=CommentBody,
    status=201, idempotent=True,
)
async def add_comment(ctx: Ctx) -> dict[str, Any]:
    """Comment on a post or record update, or reply to a private message."""
    view = await posts.add_comment(ctx.session, reader(ctx), ctx.path["post_id"], ctx.body.body, ctx.services.clock())
    return {"comment": view}


@routes.get("/api/v1/orgs/{slug}/posts/{post_id:int}/comments", permission=FEED, query=CommentsQuery)
async def list_comments(ctx: Ctx) -> dict[str, Any]:
    """Comments, oldest first; pass the last id seen as `after` for the next page."""
    q: CommentsQuery = ctx.query
    items = await posts.list_comments(ctx.session, reader(ctx), ctx.path["post_id"], q.after, q.limit + 1)
    await mark_for_reader(ctx.session, ctx.me.user_id, comments=items[: q.limit])
    return {"comments": items[: q.limit], "next_after": items[q.limit - 1]["id"] if len(items) > q.limit else None}


@routes.delete("/api/v1/orgs/{slug}/comments/{comment_id:int}", permission=FEED, status=204)
async def delete_comment(ctx: Ctx) -> None:
    """Delete one's own comment (admins may delete any: moderation)."""
    await posts.delete_comment(ctx.session, reader(ctx), ctx.path["comment_id"])


@routes.get("/api/v1/orgs/{slug}/attachments/{attachment_id:int}", permission=FEED)
async def download(ctx: Ctx) -> Response:
    """Download a file, if the caller can see its post. Always an attachment, never rendered inline."""
    attachment = await posts.visible_attachment(ctx.session, reader(ctx), ctx.path["attachment_id"])
    store = file_store(ctx.services)
    # A name stored before control characters were refused must not break the header (domain/names.py).
    quoted = names.one_line(attachment.filename).replace("\\", "_").replace('"', "_")

    headers = {
        "Content-Disposition": f"attachment; filename=\"{quoted.encode('ascii', 'replace').decode()}\"; filename*=UTF-8''{quote(attachment.filename)}",
        "X-Content-Type-Options": "nosniff",
        "Content-Length": str(attachment.size),
        "Cache-Control": "private, no-store",
    }
    return StreamingResponse(store.read(attachment.storage_key), media_type=attachment.content_type, headers=headers)

