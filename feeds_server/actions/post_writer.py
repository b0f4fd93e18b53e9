"""Group commit for new posts: the posts an org receives at the same moment share one transaction.

Every post still commits together with its event (the transaction holds both), and a lone post waits
for nobody: a batch is whatever queued while the previous one was being written. Under load this
saves, per post, a transaction, a round of inserts and a turn on the org's event-sequence row lock,
which is what limits how many posts one org can take per second. If a batch fails, its posts are
written one by one, so one bad post fails alone.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from feeds_server import limits
from feeds_server.actions.posts import NewPost, write_posts
from feeds_server.store import idempotency
from feeds_server.store.events import take_committed_events
from feeds_server.store.scope import set_org

if TYPE_CHECKING:
    from feeds_server.services import Services

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


class PostWriter:
    """One per process; a queue and a writing task per org while it has posts to write."""

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
        try:
            while queue:
                batch = queue[: limits.POST_BATCH_MAX]
                del queue[: len(batch)]
                try:
                    await self._commit(org_id, batch)
                except Exception as exc:
                    if len(batch) == 1:
                        _fail(batch[0], exc)
                        continue
                    log.info("a batch of %d posts failed; writing them one by one", len(batch), exc_info=True)
                    for one in batch:
                        try:
                            await self._commit(org_id, [one])
                        except Exception as one_exc:  # this post's own failure, for its own request
                            _fail(one, one_exc)
        except BaseException as exc:  # cancelled (shutdown): nobody is left waiting forever
            for pending in [*batch, *queue]:
                _fail(pending, exc)
            queue.clear()
            raise
        finally:
            del self._tasks[org_id]
            self._queues.pop(org_id, None)

    async def _commit(self, org_id: int, batch: list[_Pending]) -> None:
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
        if events:
            try:
                await self.services.publish(events)
            except Exception:  # committed is committed; the hub's tail poller delivers them anyway
                log.exception("publishing new posts failed")
        for pending, view in zip(batch, views):
            if not pending.done.done():
                pending.done.set_result(view)


def _fail(pending: _Pending, exc: BaseException) -> None:
    if not pending.done.done():
        pending.done.set_exception(exc)
