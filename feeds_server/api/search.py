"""Search over what the caller may see. Needs the Feeds tab."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from feeds_server import limits
from feeds_server.actions.feed_reasons import add_reasons
from feeds_server.actions.reader_marks import mark_for_reader
from feeds_server.actions.search import search
from feeds_server.api.context import Ctx
from feeds_server.api.routing import Routes
from feeds_server.api.schemas import Query
from feeds_server.domain import permissions as perms

routes = Routes("search")


class SearchQuery(Query):
    q: str = Field(min_length=1, max_length=4 * limits.MAX_SEARCH_QUERY_CHARS)
    cursor: str | None = Field(default=None, max_length=200)
    limit: int = Field(default=limits.DEFAULT_PAGE_SIZE, ge=1, le=limits.MAX_PAGE_SIZE)


# Not `reads_only`: the search statement's planner settings are local to the request's transaction
# (store/search.py), so nothing a cancelled or failed request set can outlive it on a pooled connection.
@routes.get("/api/v1/orgs/{slug}/search", permission=perms.FEEDS_TAB, query=SearchQuery)
async def search_items(ctx: Ctx) -> dict[str, Any]:
    """Search what the caller may see (posts, messages, record updates, comments): words, "phrases", filters; best first."""
    me = ctx.me
    q = ctx.query
    page = await search(ctx.session, ctx.current_org, me.user_id, me.membership.role_id, q.q, q.cursor, q.limit)
    await mark_for_reader(ctx.session, me.user_id, [i["post"] for i in page["items"]], [i["comment"] for i in page["items"] if i["comment"]])
    await add_reasons(ctx.session, me.user_id, me.membership.role_id, [i["post"] for i in page["items"]])
    return page
