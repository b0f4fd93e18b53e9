"""File previews: a file's thumbnail, and an image shown in the viewer (F-POST-7). Needs the Feeds tab.

Both follow the visibility of the file's download (actions/posts.py `visible_attachment`). What they
serve is only ever an image whose bytes were recognised (domain/file_types.py), under a
Content-Security-Policy that allows nothing and sandboxes the document, with `nosniff`: a file that
is not an image, or that the worker could not decode, stays a download (api/posts.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from starlette.responses import Response, StreamingResponse

from feeds_server import limits
from feeds_server.actions import posts
from feeds_server.api.context import Ctx
from feeds_server.api.posts import reader
from feeds_server.api.routing import Routes
from feeds_server.api.uploads import file_store
from feeds_server.domain import file_types
from feeds_server.domain import permissions as perms
from feeds_server.errors import NotFound

routes = Routes("previews")
READY = "ready"
THUMBNAIL_TYPE = "image/webp"
EXTENSIONS = {file_types.PNG: "png", file_types.JPEG: "jpg", file_types.GIF: "gif", file_types.WEBP: "webp"}


def image_headers(media_type: str, filename: str) -> dict[str, str]:
    """An image shown inline and nothing else: no script, no plugin, no sniffing it into HTML."""
    return {
        "Content-Type": media_type,
        "Content-Security-Policy": "default-src 'none'; sandbox",
        "X-Content-Type-Options": "nosniff",
        "Content-Disposition": f'inline; filename="{filename}"',
        "Cache-Control": f"private, max-age={limits.PREVIEW_CACHE_SECONDS}",
    }


@routes.get("/api/v1/orgs/{slug}/attachments/{attachment_id:int}/preview", permission=perms.FEEDS_TAB)
async def preview(ctx: Ctx) -> Response:
    """A file's thumbnail (WebP, at most 320×320), once the worker has made it; 404 until then."""
    attachment = await posts.visible_attachment(ctx.session, reader(ctx), ctx.path["attachment_id"])
    if attachment.preview_state != READY or attachment.preview_key is None:
        raise NotFound("preview_not_found", "this file has no preview (yet)")
    chunks = file_store(ctx.services).read(attachment.preview_key)
    first = await _first(chunks, "preview_not_found")
    return StreamingResponse(_again(first, chunks), headers=image_headers(THUMBNAIL_TYPE, "preview.webp"))


@routes.get("/api/v1/orgs/{slug}/attachments/{attachment_id:int}/image", permission=perms.FEEDS_TAB)
async def image(ctx: Ctx) -> Response:
    """The original image, inline, for the image viewer; 404 for a file that is not an image that can be shown.

    Only a file whose bytes are a PNG, JPEG, GIF or WebP the worker could read; anything else is downloaded."""
    attachment = await posts.visible_attachment(ctx.session, reader(ctx), ctx.path["attachment_id"])
    if attachment.preview_state != READY or attachment.width is None:
        raise NotFound("image_not_found", "this file is not an image that can be shown")
    chunks = file_store(ctx.services).read(attachment.storage_key)
    first = await _first(chunks, "image_not_found")
    media_type = file_types.sniff(first[: file_types.HEAD_BYTES])
    if not file_types.is_image(media_type):
        await chunks.aclose()
        raise NotFound("image_not_found", "this file is not an image that can be shown")
    assert media_type is not None
    headers = image_headers(media_type, f"image.{EXTENSIONS[media_type]}")
    headers["Content-Length"] = str(attachment.size)
    return StreamingResponse(_again(first, chunks), headers=headers)


async def _first(chunks: AsyncIterator[bytes], code: str) -> bytes:
    """The file's first chunk, read before the answer starts: a file gone from the store is a 404,
    not a response that breaks off after its headers."""
    try:
        return await anext(chunks, b"")
    except FileNotFoundError:
        raise NotFound(code, "the file is no longer stored") from None


async def _again(first: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    yield first
    async for chunk in rest:
        yield chunk
