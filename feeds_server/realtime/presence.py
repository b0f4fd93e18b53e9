"""Who has a live connection on this node, kept in the `presence` table so the notifier pushes only
to people who are away (notify/push_worker.py).

Connecting and leaving only change a dict in memory; a background task writes the changes in one
transaction every PRESENCE_FLUSH_SECONDS (a person's first connection in an org adds a row, their
last one leaving deletes it) and renews every row of the node every PRESENCE_HEARTBEAT_SECONDS with
`live_until` three heartbeats ahead. So a connect never waits on the database, a burst of connects
costs one write, and the rows of a node that died stop counting within three heartbeats. A node
starting clears the rows an earlier run under its name left behind.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import delete, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from feeds_server import limits
from feeds_server.store.models import Presence
from feeds_server.store.scope import account_session

log = logging.getLogger("feeds_server.realtime")

Key = tuple[int, int]  # (org_id, user_id)


class Present(Protocol):
    org_id: int
    user_id: int


class PresenceKeeper:
    """One per node. `joined`/`left` are called by the hub for each connection; `run` writes."""

    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], node: str, clock: Callable[[], datetime],
        flush_seconds: float = limits.PRESENCE_FLUSH_SECONDS, heartbeat_seconds: float = limits.PRESENCE_HEARTBEAT_SECONDS,
    ) -> None:
        self.sessions, self.node, self.clock = sessions, node[:64], clock
        self.flush_seconds, self.heartbeat_seconds = flush_seconds, heartbeat_seconds
        self._conns: dict[Key, set[int]] = {}
        self._new: set[Key] = set()
        self._gone: set[Key] = set()

    def joined(self, conn: Present) -> None:
        key = (conn.org_id, conn.user_id)
        held = self._conns.setdefault(key, set())
        if not held:
            self._new.add(key)
            self._gone.discard(key)
        held.add(id(conn))

    def left(self, conn: Present) -> None:
        key = (conn.org_id, conn.user_id)
        held = self._conns.get(key)
        if held is None or id(conn) not in held:
            return
        held.discard(id(conn))
        if not held:
            del self._conns[key]
            self._gone.add(key)
            self._new.discard(key)

    def live(self) -> set[Key]:
        return set(self._conns)

    async def run(self) -> None:
        """Write changes every flush interval and renew the node's rows every heartbeat, until cancelled."""
        await self._guarded(self._clear_node)
        next_beat = time.monotonic() + self.heartbeat_seconds
        while True:
            await asyncio.sleep(self.flush_seconds)
            beat = time.monotonic() >= next_beat
            if beat:
                next_beat = time.monotonic() + self.heartbeat_seconds
            if beat or self._new or self._gone:
                await self._guarded(lambda: self.flush(renew=beat))

    async def close(self) -> None:
        """On a clean stop: this node's people are no longer here."""
        self._conns.clear()
        self._new.clear()
        self._gone.clear()
        await self._guarded(self._clear_node)

    async def flush(self, renew: bool = False) -> None:
        """Write what changed since the last flush (and renew every row of the node with `renew`)."""
        new, gone = self._new, self._gone
        self._new, self._gone = set(), set()
        now = self.clock()
        until = now + timedelta(seconds=3 * self.heartbeat_seconds)
        try:
            async with account_session(self.sessions) as session:
                if gone:
                    await session.execute(delete(Presence).where(
                        Presence.node == self.node, tuple_(Presence.org_id, Presence.user_id).in_(sorted(gone))
                    ))
                if renew:
                    renewed = await session.execute(update(Presence).where(Presence.node == self.node).values(live_until=until))
                    # Rows written before this flush: `new` ones are not in the table yet (written below).
                    if renewed.rowcount < len(self._conns.keys() - new):  # type: ignore[attr-defined]
                        new = new | self.live()  # rows lost (a long stall let them be cleared): written again
                    # Rows of nodes that stopped without a word: nobody reads them any more.
                    await session.execute(delete(Presence).where(Presence.live_until < now - timedelta(seconds=3 * self.heartbeat_seconds)))
                rows = [{"org_id": o, "user_id": u, "node": self.node, "live_until": until} for o, u in new]
                if rows:
                    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
                    stmt = dialect.insert(Presence)
                    stmt = stmt.on_conflict_do_update(index_elements=["org_id", "user_id", "node"], set_={"live_until": stmt.excluded.live_until})
                    await session.execute(stmt, rows)
        except BaseException:
            # Not written: kept for the next flush, unless the person's state changed meanwhile.
            self._new |= {k for k in new if k in self._conns}
            self._gone |= {k for k in gone if k not in self._conns}
            raise

    async def _clear_node(self) -> None:
        async with account_session(self.sessions) as session:
            await session.execute(delete(Presence).where(Presence.node == self.node))
        if self._conns:
            self._new |= set(self._conns)

    async def _guarded(self, write: Callable[[], object]) -> None:
        try:
            await write()  # type: ignore[misc]
        except asyncio.CancelledError:
            raise
        except Exception:  # the database may be briefly away: the next interval tries again
            log.warning("presence of node %s could not be written", self.node, exc_info=True)
