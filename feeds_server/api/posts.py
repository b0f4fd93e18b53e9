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
from feeds_server.actions.views import post_views
from feeds_server.actions.post_writer import Remember, writer_for
from feeds_server.api import throttle
from feeds_server.api.context import Ctx, Deferred
from feeds_server.api.idempotency_keys import begin_idempotent
from feeds_server.api.inputs import parse_json_body, read_json
from feeds_server.api.routing import Routes
from feeds_server.api.schemas import Body, Id, Query, Text
from feeds_server.api.uploads import read_upload
from feeds_server.domain import names
from feeds_server.domain import permissions as perms
from feeds_server.store import idempotency
from feeds_server.store.files import LocalFileStore

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


def file_store(ctx: Ctx) -> LocalFileStore:
    return LocalFileStore(ctx.services.settings.files_dir)


@routes.post("/api/v1/orgs/{slug}/posts", permission=FEED, raw_body=True, status=201, idempotent=True, reads_only=True)
async def create_post(ctx: Ctx) -> Response | Deferred:
    """Post to the org, to a group, or privately. JSON, or multipart with a `message` part and up to 5 `files`."""
    await throttle.posting(ctx)
    ctype = ctx.request.headers.get("content-type", "")
    if ctype.startswith("multipart/"):
        return await _create_with_files(ctx)
    raw = await read_json(ctx.request)
    body: CreatePostBody = parse_json_body(raw, CreatePostBody)  # type: ignore[assignment]
    stored = await _idempotent(ctx, body, [])
    if stored is not None:
        return stored
    now = ctx.services.clock()
    to_org = body.group_id is None and body.recipient_id is None and not body.private
    item = posts.prepare_status_post(reader(ctx), body.body, now) if to_org else None
    if item is None:
        item = await posts.prepare_post(ctx.session, reader(ctx), body.body, now, body.group_id, body.recipient_id, body.private)
    return _write(ctx, item)


def _write(ctx: Ctx, item: posts.NewPost) -> Deferred:
    """Hand the checked post to the org's writer, which commits it with whatever else is queued."""
    remember = None
    if ctx.idempotency is not None:
        key, print_ = ctx.idempotency
        remember = Remember(ctx.me.user_id, key, print_, lambda view: (201, orjson.dumps({"post": view}, option=orjson.OPT_NON_STR_KEYS)))
        ctx.idempotency = None  # stored by the writer, in the post's transaction
    org_id = ctx.current_org.id
    item = replace(item, author_name=ctx.me.user.name)

    async def complete() -> dict[str, Any]:
        return {"post": await writer_for(ctx.services).write(org_id, item, remember)}

    return Deferred(complete)


async def _idempotent(ctx: Ctx, body: CreatePostBody, file_digests: list[str]) -> Response | None:
    key = ctx.request.headers.get("idempotency-key")
    if key is None:
        return None
    canonical = orjson.dumps(body.model_dump(mode="json"), option=orjson.OPT_SORT_KEYS)
    return await begin_idempotent(ctx, key, idempotency.fingerprint(ctx.request.url.path, canonical, *file_digests))


async def _create_with_files(ctx: Ctx) -> Response | Deferred:
    await throttle.uploading(ctx)
    upload = await read_upload(ctx.request, file_store(ctx))
    try:
        body: CreatePostBody = parse_json_body(upload.message, CreatePostBody)  # type: ignore[assignment]
        stored = await _idempotent(ctx, body, [f.sha256 for f in upload.files])
        if stored is not None:
            upload.discard()
            return stored
        item = await posts.prepare_post(
            ctx.session, reader(ctx), body.body, ctx.services.clock(), body.group_id, body.recipient_id, body.private, upload.files
        )
        upload.commit()
    except BaseException:
        upload.discard()
        raise
    store = file_store(ctx)

    async def remove_files() -> None:
        for f in upload.files:
            await store.delete(f.storage_key)

    # Files are in place before the database commit refers to them; if that commit fails, they go.
    ctx.on_rollback(remove_files)
    return _write(ctx, item)


@routes.get("/api/v1/orgs/{slug}/posts/{post_id:int}", permission=FEED)
async def get_post(ctx: Ctx) -> dict[str, Any]:
    """One post with its latest comments, if the caller may see it."""
    post, _ = await posts.visible_post(ctx.session, reader(ctx), ctx.path["post_id"])
    return {"post": (await post_views(ctx.session, [post]))[0]}


@routes.delete("/api/v1/orgs/{slug}/posts/{post_id:int}", permission=FEED, status=204)
async def delete_post(ctx: Ctx) -> None:
    """Delete one's own post (admins may delete any: moderation). Reaches connected clients live."""
    keys = await posts.delete_post(ctx.session, reader(ctx), ctx.path["post_id"])
    store = file_store(ctx)

    async def remove_files() -> None:
        for key in keys:
            await store.delete(key)

    ctx.after_commit(remove_files)


@routes.post("/api/v1/orgs/{slug}/posts/{post_id:int}/comments", permission=FEED, body=CommentBody, status=201, idempotent=True)
async def add_comment(ctx: Ctx) -> dict[str, Any]:
    """Comment on a post or record update, or reply to a private message."""
    await throttle.posting(ctx)
    view = await posts.add_comment(ctx.session, reader(ctx), ctx.path["post_id"], ctx.body.body, ctx.services.clock())
    return {"comment": view}


@routes.get("/api/v1/orgs/{slug}/posts/{post_id:int}/comments", permission=FEED, query=CommentsQuery)
async def list_comments(ctx: Ctx) -> dict[str, Any]:
    """Comments, oldest first; pass the last id seen as `after` for the next page."""
    q: CommentsQuery = ctx.query
    items = await posts.list_comments(ctx.session, reader(ctx), ctx.path["post_id"], q.after, q.limit + 1)
    return {"comments": items[: q.limit], "next_after": items[q.limit - 1]["id"] if len(items) > q.limit else None}


@routes.delete("/api/v1/orgs/{slug}/comments/{comment_id:int}", permission=FEED, status=204)
async def delete_comment(ctx: Ctx) -> None:
    """Delete one's own comment (admins may delete any: moderation)."""
    await posts.delete_comment(ctx.session, reader(ctx), ctx.path["comment_id"])


@routes.get("/api/v1/orgs/{slug}/attachments/{attachment_id:int}", permission=FEED)
async def download(ctx: Ctx) -> Response:
    """Download a file, if the caller can see its post. Always an attachment, never rendered inline."""
    attachment = await posts.visible_attachment(ctx.session, reader(ctx), ctx.path["attachment_id"])
    store = file_store(ctx)
    # A name stored before control characters were refused must not break the header (domain/names.py).
    quoted = names.one_line(attachment.filename).replace("\\", "_").replace('"', "_")

    headers = {
        "Content-Disposition": f"attachment; filename=\"{quoted.encode('ascii', 'replace').decode()}\"; filename*=UTF-8''{quote(attachment.filename)}",
        "X-Content-Type-Options": "nosniff",
        "Content-Length": str(attachment.size),
        "Cache-Control": "private, no-store",
    }
    return StreamingResponse(store.read(attachment.storage_key), media_type=attachment.content_type, headers=headers)

