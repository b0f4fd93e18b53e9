"""Group commit for new posts: the posts an org receives at the same moment share one transaction.

Every post still commits together with its event (the transaction holds both), and a lone post waits
for nobody: a batch is whatever queued while the previous one was being written. Under load this
saves, per post, a transaction, a round of inserts and a turn on the org's event-sequence row lock,
which is what limits how many posts one org can take per second. If a batch fails, its posts are
written one by one, so one bad post fails alone.

On PostgreSQL, posts without mentions or files (nearly all of them) are written on the driver
connection in one statement with their events (store/post_rows.py); the others (they notify
someone, or have files), and every post on SQLite, through the ORM (actions/posts.py `write_posts`).
A group post notifies only members who chose group posts (off by default): it stays on the driver
path unless someone in the org named that kind in their settings (one index probe per batch).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from feeds_server import limits
from feeds_server.actions.notifications import GROUP_POSTS_CHOSEN_SQL
from feeds_server.actions.posts import GROUP, PRIVATE, NewPost, write_posts
from feeds_server.actions.views import post_views
from feeds_server.runtime.services import Services
from feeds_server.store import idempotency, post_rows
from feeds_server.store.base import utcnow
from feeds_server.store.driver import driver_connection, plain_instance
from feeds_server.store.events import NewEvent, take_committed_events
from feeds_server.store.models import Post
from feeds_server.store.scope import driver_sees_org, set_org

log = logging.getLogger("feeds_server.posts")


@dataclass(frozen=True)
class Remember:
    """Store the response of an idempotent request with its post (store/idempotency.py)."""

    user_id: int
    key: str
    fingerprint: str
    # The response (status, body) for the post's view, as the API renders it.
    render: Callable[[dict[str, Any]], tuple[int, bytes]]


@dataclass
class _Pending:
    item: NewPost
    remember: Remember | None
    done: asyncio.Future[dict[str, Any]]


_Commit = Callable[[int, list[_Pending]], Awaitable[None]]


def writer_for(services: Services) -> PostWriter:
    """The process's one writer, made on first use, so that every post of an org joins the same batches."""
    writer = services.singletons.get(__name__)
    if writer is None:
        writer = services.singletons[__name__] = PostWriter(services)
    return writer


class PostWriter:
    """One per process (`writer_for`); a queue and a writing task per org while it has posts to write."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self._queues: dict[int, list[_Pending]] = {}
        self._tasks: dict[int, asyncio.Task[None]] = {}

    async def write(self, org_id: int, item: NewPost, remember: Remember | None = None) -> dict[str, Any]:
        """Write the post with the next batch of its org; returns its view once committed and published."""
        done: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._queues.setdefault(org_id, []).append(_Pending(item, remember, done))
        if org_id not in self._tasks:
            self._tasks[org_id] = asyncio.create_task(self._drain(org_id), name=f"post-writer-{org_id}")
        return await asyncio.shield(done)  # a caller that goes away does not cancel the others' batch

    async def _drain(self, org_id: int) -> None:
        queue = self._queues[org_id]
        batch: list[_Pending] = []
        try:
            while queue:
                batch = queue[: limits.POST_BATCH_MAX]
                del queue[: len(batch)]
                for commit, part in await self._parts(org_id, batch):
                    await self._commit_or_split(commit, org_id, part)
        except BaseException as exc:  # cancelled (shutdown): nobody is left waiting forever
            for pending in [*batch, *queue]:
                _fail(pending, exc)
            queue.clear()
            raise
        finally:
            del self._tasks[org_id]
            self._queues.pop(org_id, None)

    async def _parts(self, org_id: int, batch: list[_Pending]) -> list[tuple[_Commit, list[_Pending]]]:
        """The transactions that write a batch: on PostgreSQL, one on the driver path for the posts
        without mentions or files, one through the ORM for the others; on SQLite, one."""
        if self.services.settings.is_sqlite:
            return [(self._commit_orm, batch)]
        direct = [_plain(p.item) for p in batch]
        if any(ok and p.item.kind == GROUP for ok, p in zip(direct, batch)) and await self._group_posts_chosen(org_id):
            direct = [ok and p.item.kind != GROUP for ok, p in zip(direct, batch)]
        plain = [p for ok, p in zip(direct, batch) if ok]
        other = [p for ok, p in zip(direct, batch) if not ok]
        return [(commit, part) for commit, part in ((self._commit_direct, plain), (self._commit_orm, other)) if part]

    async def _group_posts_chosen(self, org_id: int) -> bool:
        """Whether a group post may notify someone in the org. Read just before the batch is
        written, as the ORM path reads the settings in its own transaction: a choice committed
        meanwhile is missed by either alike."""
        try:
            async with driver_connection(self.services.engine) as conn:
                await driver_sees_org(conn, org_id)
                return bool(await conn.driver.fetchval(GROUP_POSTS_CHOSEN_SQL, org_id))
        except Exception:  # the ORM path notifies whoever chose them, and fails on its own if it must
            log.warning("could not tell whether group posts notify anyone in org %s", org_id, exc_info=True)
            return True

    async def _commit_or_split(self, commit: _Commit, org_id: int, batch: list[_Pending]) -> None:
        try:
            await commit(org_id, batch)
        except Exception as exc:
            if len(batch) == 1:
                _fail(batch[0], exc)
                return
            log.info("a batch of %d posts failed; writing them one by one", len(batch), exc_info=True)
            for one in batch:
                try:
                    await commit(org_id, [one])
                except Exception as one_exc:  # this post's own failure, for its own request
                    _fail(one, one_exc)

    async def _commit_direct(self, org_id: int, batch: list[_Pending]) -> None:
        """Posts without mentions or files: two statements on the driver connection (PostgreSQL)."""
        items = [p.item for p in batch]
        async with driver_connection(self.services.engine) as conn:
            driver = conn.driver
            await driver_sees_org(conn, org_id)
            ids = await post_rows.next_post_ids(driver, len(items))
            views = await self._views(org_id, ids, items)
            rows = [post_rows.PostRow(pid, i.kind, i.author_id, i.body, i.group_id, i.recipient_id, sorted(i.channels), i.now)
                    for pid, i in zip(ids, items)]
            now = utcnow()
            events = [NewEvent(org_id, "post.created", {"post": view}, i.author_id, sorted(i.channels), now) for i, view in zip(items, views)]
            keys = []
            for pending, view in zip(batch, views):
                r = pending.remember
                if r is not None:
                    status, body = r.render(view)
                    keys.append(post_rows.KeyRow(r.user_id, r.key, r.fingerprint, status, body, pending.item.now))
            await write_new_posts(driver, org_id, rows, keys, events)
        await self._publish(events)
        _deliver(batch, views)

    async def _views(self, org_id: int, ids: list[int], items: list[NewPost]) -> list[dict[str, Any]]:
        """The posts as the API renders them. The authors' names came with the requests; a session
        is opened only to read a group's or a recipient's name."""
        posts = [
            plain_instance(Post, (("id", pid), ("org_id", org_id), ("kind", i.kind), ("author_id", i.author_id), ("body", i.body),
                                  ("group_id", i.group_id), ("recipient_id", i.recipient_id), ("module", None), ("data", {}),
                                  ("comment_count", 0), ("created_at", i.now)))
            for pid, i in zip(ids, items)
        ]
        known = {i.author_id: i.author_name for i in items if i.author_name is not None}
        async with self.services.read_sessions() as session:
            set_org(session, org_id)
            return await post_views(session, posts, with_attachments=False, known_users=known, with_reactions=False)

    async def _publish(self, events: list[NewEvent]) -> None:
        if events:
            try:
                await self.services.publish(events)
            except Exception:  # committed is committed; the hub's tail poller delivers them anyway
                log.exception("publishing new posts failed")

    async def _commit_orm(self, org_id: int, batch: list[_Pending]) -> None:
        async with self.services.sessions() as session:
            set_org(session, org_id)
            async with session.begin():
                views = await write_posts(session, [p.item for p in batch])
                for pending, view in zip(batch, views):
                    r = pending.remember
                    if r is not None:
                        status, body = r.render(view)
                        idempotency.remember(session, r.user_id, r.key, r.fingerprint, status, body, pending.item.now)
            events = take_committed_events(session)
        await self._publish(events)
        _deliver(batch, views)


# The driver path's statement; a name here so tests can watch the batches it writes.
write_new_posts = post_rows.write_posts_and_events


def _plain(item: NewPost) -> bool:
    """Mentions and private messages (notifications) and files (attachments) need the ORM path; a
    group post too, when someone chose group posts (`PostWriter._parts`)."""
    return not item.refs and not item.files and item.author_name is not None and item.kind != PRIVATE


def _deliver(batch: list[_Pending], views: list[dict[str, Any]]) -> None:
    for pending, view in zip(batch, views):
        if not pending.done.done():
            pending.done.set_result(view)


def _fail(pending: _Pending, exc: BaseException) -> None:
    if not pending.done.done():
        pending.done.set_exception(exc)
