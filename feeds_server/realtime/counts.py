"""`$counts`: every connection's server-side subscription to its person's unread counts in each of
their orgs, so the client of one org learns when another org's count changes.

A publication is `{"org": slug, "unread": n, "at": ms}` and nothing else: no content of the org
crosses. `at` is when the count was read (milliseconds since the epoch): two nodes may publish one
person's counts and the broker does not keep their order, so a client keeps the latest `at` per org
and ignores an older publication. After
a commit that created, merged or read notifications, the counts of the people concerned are read
again (one query for what queued meanwhile, realtime/counts → actions/unread_counts.py) and sent
through the broker to each person's own channel there, which every node holding one of that
person's connections subscribes to, whatever the org of the connection. The counts are absolute,
so a lost or repeated publication does no harm; there is no history: a client reads
`GET /api/v1/me` when it (re)connects. A connect costs no query: the connect reply lists `$counts`
with the other subscriptions and the node keeps a set of connections per person. Joining and leaving
never wait on the broker (it changes its subscriptions in the background), so a stalled Redis cannot
hold a disconnect up.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Protocol

import orjson

from feeds_server.actions.unread_counts import unread_of
from feeds_server.domain.numbers import is_digits
from feeds_server.realtime import protocol as proto
from feeds_server.realtime.broker import Broker
from feeds_server.runtime.services import Services
from feeds_server.store.events import NewEvent
from feeds_server.store.scope import account_session

log = logging.getLogger("feeds_server.realtime")

CHANNEL = "$counts"
# Events after which the person on the event's `u:` channel may have another unread count.
COUNTED_EVENTS = frozenset({"notifications.created", "notifications.read"})
# People waiting for their counts to be read; beyond this a burst is dropped (absolute counts: the
# next change of each person sends theirs, and a client reads them all on reconnect).
MAX_PENDING = 100_000


class Reached(Protocol):
    user_id: int

    def push(self, frame: bytes) -> None: ...


class UnreadCounts:
    """One per node: the connections by person, and the counts to publish after commits."""

    def __init__(self, services: Services, broker: Broker) -> None:
        self.services, self.broker = services, broker
        self._by_user: dict[int, set[Reached]] = {}
        self._pending: set[tuple[int, int]] = set()  # (org id, user id)
        self._wake = asyncio.Event()

    # --- connections on this node ---------------------------------------------------------------
    async def joined(self, conn: Reached) -> None:
        conns = self._by_user.setdefault(conn.user_id, set())
        conns.add(conn)
        if len(conns) == 1:
            await self.broker.subscribe_user(conn.user_id)

    async def left(self, conn: Reached) -> None:
        conns = self._by_user.get(conn.user_id)
        if conns is None or conn not in conns:
            return
        conns.discard(conn)
        if not conns:
            del self._by_user[conn.user_id]
            await self.broker.unsubscribe_user(conn.user_id)

    async def deliver(self, user_id: int, data: bytes) -> None:
        """A broker message for a person: the same frame to each of their connections here."""
        conns = self._by_user.get(user_id)
        if not conns:
            return
        frame = proto.encode_publication_push(CHANNEL, data)
        for conn in list(conns):
            conn.push(frame)

    # --- publishing after commits ---------------------------------------------------------------
    def note(self, events: Iterable[NewEvent]) -> None:
        """Queue the people whose notifications these committed events changed."""
        for ev in events:
            if ev.type not in COUNTED_EVENTS:
                continue
            for channel in ev.channels:
                kind, _, ref = channel.partition(":")
                if kind == "u" and is_digits(ref) and len(self._pending) < MAX_PENDING:
                    self._pending.add((ev.org_id, int(ref)))
                    self._wake.set()

    async def publish_pending(self) -> int:
        """Read the queued people's counts and publish them; returns how many were published."""
        people, self._pending = self._pending, set()
        if not people:
            return 0
        at = int(self.services.clock().timestamp() * 1000)  # before the read: a later read has a later `at`
        async with account_session(self.services.sessions) as session:
            counts = await unread_of(session, people)
        messages = [(c.user_id, orjson.dumps({"org": c.org_slug, "unread": c.unread, "at": at})) for c in counts]
        if messages:
            await self.broker.publish_to_users(messages)
        return len(messages)

    async def run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                await self.publish_pending()
            except Exception:  # the database may be briefly away: these counts wait for the next change
                log.exception("publishing unread counts failed")


def counts_sink(services: Services, broker: Broker) -> Callable[[list[NewEvent]], Awaitable[None]]:
    """An event sink for a process without a hub (the notifier): the counts its commits changed are
    published at once, on the same broker channels as the nodes'."""
    counts = UnreadCounts(services, broker)

    async def sink(events: list[NewEvent]) -> None:
        counts.note(events)
        try:
            await counts.publish_pending()
        except Exception:  # a count is never worth failing the worker's round for
            log.exception("publishing unread counts failed")

    return sink
