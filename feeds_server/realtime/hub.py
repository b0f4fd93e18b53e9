"""The hub: this node's connections, grouped by org and channel, and the one place events reach them.

Per org, events are delivered strictly in sequence order under one lock. An event whose number
skips ahead (a broker message lost, late or out of order) first pulls the missing ones from the
database, and a poller compares each org's last number in the database with what was delivered, so
a crashed publisher or a broker outage delays events but never loses them. Each event is encoded
once per channel and the same bytes go to every connection. Pushing never waits on a client: a
connection whose queue is full is closed as slow.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson
from sqlalchemy import select

from feeds_server import limits
from feeds_server.runtime.metrics import DELIVERIES, DELIVERY_LATENCY, RECOVERED, RECOVERY_FAILED
from feeds_server.domain import permissions as perms
from feeds_server.domain.audience import OrgGraph
from feeds_server.realtime import protocol as proto
from feeds_server.realtime.admission import Admissions
from feeds_server.realtime.broker import Broker
from feeds_server.realtime.counts import CHANNEL as COUNTS_CHANNEL
from feeds_server.realtime.counts import UnreadCounts
from feeds_server.realtime.presence import PresenceKeeper
from feeds_server.realtime.history import (
    events_between, hidden_by_modules, latest_seq, prune_all, publication_data, recover, superseding_key,
)
from feeds_server.runtime.services import Services
from feeds_server.store.events import NewEvent
from feeds_server.store.graph import load_graph
from feeds_server.store.models import Event, Membership, Org, Profile
from feeds_server.store.scope import org_session

log = logging.getLogger("feeds_server.realtime.hub")

TAIL_POLL_SECONDS = 1.0
# A gap the poller sees may be a commit whose publisher is about to deliver it: wait this long
# before reading it from the database, so the live path is not held behind that read.
TAIL_GRACE_SECONDS = 0.05
REVOCATIONS_KEPT_SECONDS = 60.0
PRUNE_EVERY_SECONDS = 3600.0


class Published:
    """A committed event as it travels between nodes.

    Its broker message is a small JSON header, a newline, then the publication's `data` as encoded
    once for clients: a busy batch's payloads (a recipient's notification list runs to ~100 kB) are
    neither encoded again nor escaped into a string. A node that receives one parses the payload
    only if it needs it (side effects, unticked modules); an echo of its own event is not parsed.
    """

    __slots__ = ("org_id", "seq", "type", "channels", "data", "at", "_payload")

    def __init__(
        self, org_id: int, seq: int, type: str, channels: tuple[str, ...], data: bytes, at: float = 0.0, payload: Any = None
    ) -> None:
        self.org_id, self.seq, self.type, self.channels = org_id, seq, type, channels
        self.data = data  # the publication's `data`, encoded once
        self.at = at  # when it was published after commit (epoch seconds), for the delivery latency metric
        self._payload = payload

    @property
    def payload(self) -> Any:
        if self._payload is None:
            self._payload = orjson.loads(self.data).get("payload") or {}
        return self._payload

    @classmethod
    def from_event(cls, event: Event | NewEvent, at: float = 0.0) -> "Published":
        at = at or event.created_at.timestamp()
        return cls(event.org_id, event.seq, event.type, tuple(event.channels or ()), publication_data(event), at, event.payload or {})

    def to_message(self) -> bytes:
        return orjson.dumps({"seq": self.seq, "type": self.type, "channels": self.channels, "at": self.at}) + b"\n" + self.data

    @classmethod
    def from_message(cls, org_id: int, message: bytes) -> "Published":
        head, _, data = message.partition(b"\n")  # orjson never writes a raw newline
        m = orjson.loads(head)
        if not data:  # a node still sending the whole event as one document
            return cls(org_id, int(m["seq"]), m["type"], tuple(m["channels"]), m["data"].encode(), m.get("at", 0.0), m["payload"])
        return cls(org_id, int(m["seq"]), m["type"], tuple(m["channels"]), data, m.get("at", 0.0))


class Sink(Protocol):
    """The endpoint's side of a connection: how queued frames reach the socket."""

    def write_now(self, frame: bytes) -> bool:
        """Write the frame at once if the socket takes it without waiting and nothing is queued."""

    def flush_later(self) -> None:
        """Send what is queued, or the close that was requested, as soon as the socket allows."""


@dataclass(eq=False, slots=True)
class Connection:
    """One client's outbound side. Frames go straight to the socket when it takes them at once;
    otherwise they queue in `outbox` and the endpoint sends them coalesced, in order."""

    client_id: str
    user_id: int
    org_id: int
    auth_token_id: int
    profile_id: int
    role_id: int | None
    channels: set[str] = field(default_factory=set)
    outbox: deque[bytes] = field(default_factory=deque)
    sink: Sink | None = None
    close_request: proto.Disconnect | None = None
    # While connecting: publications held per channel until the connect reply is queued.
    held: dict[str, list[tuple[int, bytes]]] | None = None
    # Publications at or below these offsets were already sent by recovery.
    floor: dict[str, int] = field(default_factory=dict)
    last_pong: float = field(default_factory=time.monotonic)
    ping_slot: int = -1
    queued_at: float = 0.0  # when the oldest frame in `outbox` was queued
    checked_at: float = 0.0  # time.monotonic() when its sign-in was read from the database

    def push(self, frame: bytes) -> None:
        if self.close_request is not None:
            return
        sink = self.sink
        if sink is not None and not self.outbox and sink.write_now(frame):
            return
        if not self.outbox:
            self.queued_at = time.monotonic()
        elif len(self.outbox) >= limits.WS_SEND_QUEUE_FRAMES or time.monotonic() - self.queued_at > limits.WS_SEND_STALL_SECONDS:
            self.request_close(proto.DISCONNECT_SLOW)
            return
        self.outbox.append(frame)
        if sink is not None:
            sink.flush_later()

    def push_publication(self, channel: str, offset: int, frame: bytes) -> None:
        if self.held is not None:
            self.held.setdefault(channel, []).append((offset, frame))
        elif not self.floor or offset > self.floor.get(channel, 0):
            self.push(frame)

    def request_close(self, disconnect: proto.Disconnect) -> None:
        if self.close_request is None:
            self.close_request = disconnect
            if self.sink is not None:
                self.sink.flush_later()


class Pinger:
    """One timer for every connection of the node instead of a task each: connections sit in
    `slots` buckets, one bucket is visited per tick, so each is pinged once per interval and one
    silent for an interval plus the pong timeout is closed."""

    def __init__(self, interval: float, timeout: float) -> None:
        self.interval, self.timeout = interval, timeout
        self.slots: list[set[Connection]] = [set() for _ in range(max(1, min(100, int(interval * 4))))]
        self.cursor = 0

    def add(self, conn: Connection) -> None:
        # The bucket visited last: the first ping comes one interval after connecting.
        conn.ping_slot = (self.cursor - 1) % len(self.slots)
        conn.last_pong = time.monotonic()
        self.slots[conn.ping_slot].add(conn)

    def remove(self, conn: Connection) -> None:
        if conn.ping_slot >= 0:
            self.slots[conn.ping_slot].discard(conn)

    def tick(self) -> None:
        bucket = self.slots[self.cursor]
        self.cursor = (self.cursor + 1) % len(self.slots)
        deadline = time.monotonic() - self.interval - self.timeout
        for conn in list(bucket):
            if conn.last_pong < deadline:
                conn.request_close(proto.DISCONNECT_NO_PONG)
            else:
                conn.push(proto.PING)

    async def run(self) -> None:
        step = self.interval / len(self.slots)
        while True:
            await asyncio.sleep(step)
            try:
                self.tick()
            except Exception:  # one connection's failure must not stop the pings of all the others
                log.exception("a ping tick failed")


@dataclass(eq=False)
class Room:
    """One org's connections on this node."""

    org_id: int
    epoch: str
    last_seq: int
    disabled_modules: list[str]
    ip_allowlist: list[str] = field(default_factory=list)
    connections: set[Connection] = field(default_factory=set)
    subscribers: dict[str, set[Connection]] = field(default_factory=dict)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    # Who belongs to which group, read once for every connect; any event that may change it, or
    # the org's allow-list, clears it (see CACHE_KEEPING_EVENTS).
    graph: OrgGraph | None = None
    # Superseding events (realtime/history.py) held back to be merged: the last of each item, sent
    # together when the window that began with the last such send closes, or before any other event.
    merging: dict[tuple[Any, ...], Published] = field(default_factory=dict)
    merged_sent_at: float = float("-inf")  # time.monotonic() of the last send of superseding events
    merge_timer: asyncio.TimerHandle | None = None

    def add(self, conn: Connection, channels: Iterable[str]) -> None:
        self.connections.add(conn)
        for ch in channels:
            conn.channels.add(ch)
            self.subscribers.setdefault(ch, set()).add(conn)

    def drop_channel(self, conn: Connection, channel: str) -> None:
        conn.channels.discard(channel)
        subs = self.subscribers.get(channel)
        if subs is not None:
            subs.discard(conn)
            if not subs:
                del self.subscribers[channel]

    def remove(self, conn: Connection) -> None:
        for ch in list(conn.channels):
            self.drop_channel(conn, ch)
        self.connections.discard(conn)


# Events that change neither the org graph nor the org row: the many posts, comments and
# notifications leave the cached graph in place; any other event drops it.
CACHE_KEEPING_EVENTS = frozenset({
    "post.created", "post.deleted", "comment.created", "comment.deleted", "notifications.created",
    "notifications.read", "record.followed", "record.unfollowed",
    "post.saved", "post.unsaved", "post.pinned", "post.unpinned",
    "reaction.changed", "notifications.updated",
    "post.edited", "comment.edited", "version.hidden", "version.unhidden",
})

RecoverRequests = dict[str, tuple[str, int]]  # channel -> (epoch, offset)
MakeReply = Callable[[dict[str, dict[str, Any]]], bytes]


class Hub:
    def __init__(self, services: Services, broker: Broker) -> None:
        self.services = services
        self.broker = broker
        self.rooms: dict[int, Room] = {}
        self._rooms_lock = asyncio.Lock()
        self._outgoing: asyncio.Queue[tuple[int | None, bytes]] = asyncio.Queue(maxsize=100_000)
        self._tasks: list[asyncio.Task[None]] = []
        self.pinger = Pinger(services.settings.ws_ping_interval, services.settings.ws_pong_timeout)
        self.admissions = Admissions(services)
        # Control messages of the last minute, by what they revoke, with when they arrived: a
        # connect whose database check started before one of them is closed on joining.
        self._revoked: dict[tuple[Any, ...], float] = {}
        self._allowlist_reads: dict[int, asyncio.Future[list[str] | None]] = {}
        self._merge_flushes: set[asyncio.Task[None]] = set()
        # Each person's connections here, for their unread counts in every org (`$counts`).
        self.counts = UnreadCounts(services, broker)
        # Who is connected here, written to the database for the notifier (pushes go to people away).
        node = services.settings.node_name or f"{services.settings.host}:{services.settings.port}"
        self.presence = PresenceKeeper(services.sessions, node, services.clock)

    # --- lifecycle -------------------------------------------------------------------------
    async def start(self) -> None:
        await self.broker.start(self._on_message, self.catch_up_all, self.counts.deliver)
        self._tasks = [
            asyncio.create_task(self._publisher(), name="hub-publisher"),
            asyncio.create_task(self._tail_poller(), name="hub-tail-poller"),
            asyncio.create_task(self._pruner(), name="hub-history-pruner"),
            asyncio.create_task(self.pinger.run(), name="hub-pinger"),
            asyncio.create_task(self.counts.run(), name="hub-unread-counts"),
            asyncio.create_task(self.presence.run(), name="hub-presence"),
        ]

    async def stop(self, disconnect: proto.Disconnect = proto.DISCONNECT_SHUTDOWN) -> None:
        for room in list(self.rooms.values()):
            for conn in list(room.connections):
                conn.request_close(disconnect)
        await self.admissions.close()
        for room in list(self.rooms.values()):
            if room.merge_timer is not None:
                room.merge_timer.cancel()
        tasks = [*self._tasks, *self._merge_flushes]
        for task in tasks:
            task.cancel()
        for task in tasks:
            try:
                await task
            except (asyncio.CancelledError, Exception):  # noqa: BLE001
                pass
        await self.presence.close()
        await self.broker.close()

    @property
    def connection_count(self) -> int:
        return sum(len(r.connections) for r in self.rooms.values())

    # --- publishing (called after commit) --------------------------------------------------
    async def publish(self, events: list[NewEvent]) -> None:
        """Event sink: deliver to this node now, and hand to the broker for the others."""
        self.counts.note(events)
        now = time.time()
        for event in events:
            pub = Published.from_event(event, now)
            room = self.rooms.get(pub.org_id)
            if room is not None:
                await self._accept(room, pub)
            try:
                self._outgoing.put_nowait((pub.org_id, pub.to_message()))
            except asyncio.QueueFull:
                log.warning("broker queue full; other nodes will catch up from the database")

    async def control(self, message: dict[str, Any]) -> None:
        """Send a control message (sign-out, ...) to every node, this one included."""
        encoded = orjson.dumps(message)
        await self._on_message(None, encoded)
        try:
            self._outgoing.put_nowait((None, encoded))
        except asyncio.QueueFull:
            log.warning("broker queue full; control message dropped")

    async def _publisher(self) -> None:
        # Requests never wait on the broker: a frozen Redis delays other nodes, not this one.
        # What queued while the previous batch was out goes in one publish (one Redis round trip).
        queue = self._outgoing
        while True:
            batch = [await queue.get()]
            while len(batch) < limits.BROKER_PUBLISH_BATCH and not queue.empty():
                batch.append(queue.get_nowait())
            try:
                await self.broker.publish(batch)
            except Exception:  # the events are committed: nodes catch up from the database
                log.exception("publishing %d messages failed", len(batch))

    # --- receiving -------------------------------------------------------------------------
    async def _on_message(self, org_id: int | None, message: bytes) -> None:
        if org_id is None:
            self._on_control(orjson.loads(message))
            return
        room = self.rooms.get(org_id)
        if room is None:
            return
        await self._accept(room, Published.from_message(org_id, message))

    def _on_control(self, message: dict[str, Any]) -> None:
        kind = message.get("control")
        key = _revocation_key(message)
        if key is not None:
            now = time.monotonic()
            self._revoked[key] = now
            if len(self._revoked) > 1000 or next(iter(self._revoked.values())) < now - REVOCATIONS_KEPT_SECONDS:
                self._revoked = {k: t for k, t in self._revoked.items() if t >= now - REVOCATIONS_KEPT_SECONDS}
        for room in list(self.rooms.values()):
            for conn in list(room.connections):
                if kind == "auth_revoked" and conn.auth_token_id == message.get("auth_token_id"):
                    conn.request_close(proto.DISCONNECT_INVALID_TOKEN)
                elif kind == "user_removed" and conn.user_id == message.get("user_id") and conn.org_id == message.get("org_id"):
                    conn.request_close(proto.DISCONNECT_FORCE_NO_RECONNECT)
                elif kind == "org_deleted" and conn.org_id == message.get("org_id"):
                    conn.request_close(proto.DISCONNECT_FORCE_NO_RECONNECT)

    async def _accept(self, room: Room, pub: Published) -> None:
        async with room.lock:
            if pub.seq <= room.last_seq:
                return  # already delivered (a broker echo or a duplicate)
            if pub.seq > room.last_seq + 1:
                await self._fill(room, pub.seq - 1)
            await self._deliver(room, pub)

    async def _fill(self, room: Room, upto: int) -> None:
        """Deliver, from the database, every event after the room's position up to `upto`."""
        async with org_session(self.services.sessions, room.org_id) as session:
            events = await events_between(session, room.last_seq, upto)
        for event in events:
            try:
                await self._deliver(room, Published.from_event(event))
            except Exception:  # one event that cannot be delivered must not hold back the org's next ones
                log.exception("event %s of org %s could not be delivered; passed over", event.seq, room.org_id)
                room.last_seq = max(room.last_seq, event.seq)
        room.last_seq = max(room.last_seq, upto)

    async def catch_up_all(self) -> None:
        """After a broker reconnect or on the poller's tick: fill every room from the database."""
        if not self.rooms:
            return
        async with self.services.sessions() as session:
            rows = (await session.execute(select(Org.id, Org.event_seq).where(Org.id.in_(list(self.rooms))))).all()
        if any(org_id in self.rooms and top > self.rooms[org_id].last_seq for org_id, top in rows):
            await asyncio.sleep(TAIL_GRACE_SECONDS)
        failed: list[int] = []
        for org_id, top in rows:
            room = self.rooms.get(org_id)
            if room is not None and top > room.last_seq:
                try:
                    async with room.lock:
                        if top > room.last_seq:
                            await self._fill(room, top)
                except Exception:  # one org's failure must not keep the other orgs behind
                    if not failed:
                        log.exception("catch-up of org %s from the database failed", org_id)
                    failed.append(org_id)
        if len(failed) > 1:
            log.error("catch-up from the database failed for %d orgs: %s", len(failed), failed[:20])

    async def _tail_poller(self) -> None:
        while True:
            await asyncio.sleep(TAIL_POLL_SECONDS)
            try:
                await self.catch_up_all()
            except Exception:  # the database may be briefly unreachable; try again next tick
                log.exception("catch-up from the database failed")

    async def _pruner(self) -> None:
        """Every node prunes now and then; pruning is idempotent, so several nodes doing it is harmless."""
        while True:
            await asyncio.sleep(PRUNE_EVERY_SECONDS)
            try:
                await prune_all(self.services)
            except Exception:
                log.exception("pruning real-time history failed")

    # --- delivery --------------------------------------------------------------------------
    async def _deliver(self, room: Room, pub: Published) -> None:
        room.last_seq = pub.seq
        if pub.type not in CACHE_KEEPING_EVENTS:
            room.graph = None
        key = superseding_key(pub.type, pub.payload)
        if key is not None:
            if self._hold_for_merge(room, key, pub):
                return
        elif room.merging:
            self._send_merged(room)  # before any later event: the offsets a client gets only grow
        await self._apply_side_effects(room, pub)
        if room.disabled_modules and hidden_by_modules(pub.type, pub.payload, room.disabled_modules):
            return
        self._send(room, pub)

    # --- merging superseding events ----------------------------------------------------------
    # A burst of reactions on an item reaches clients as one publication per window
    # (limits.REACTION_MERGE_SECONDS), its last: each event carries the item's absolute counts, so
    # the ones passed over are never needed. The first change after a quiet window goes out at once;
    # changes within the window wait for its end, the last of each item replacing the earlier ones.
    # Held events are sent before any later event of the org, so the offsets a client receives only
    # grow and never pass a held event: a client that disconnects meanwhile recovers it from the
    # database (realtime/history.py merges there too).

    def _hold_for_merge(self, room: Room, key: tuple[Any, ...], pub: Published) -> bool:
        """True if the event is held, to be sent merged; False if it goes out now."""
        now = time.monotonic()
        window = limits.REACTION_MERGE_SECONDS
        if not room.merging and now - room.merged_sent_at >= window:
            room.merged_sent_at = now
            return False
        room.merging[key] = pub
        if room.merge_timer is None:
            delay = max(0.0, room.merged_sent_at + window - now)
            room.merge_timer = asyncio.get_running_loop().call_later(delay, self._merge_window_closed, room)
        return True

    def _merge_window_closed(self, room: Room) -> None:
        task = asyncio.ensure_future(self._flush_merged(room))
        self._merge_flushes.add(task)
        task.add_done_callback(self._merge_flushes.discard)

    async def _flush_merged(self, room: Room) -> None:
        async with room.lock:
            room.merge_timer = None
            self._send_merged(room)

    def _send_merged(self, room: Room) -> None:
        """Send the held events in sequence order (under the room's lock)."""
        if room.merge_timer is not None:
            room.merge_timer.cancel()
            room.merge_timer = None
        held = sorted(room.merging.values(), key=lambda p: p.seq)
        room.merging.clear()
        room.merged_sent_at = time.monotonic()
        for pub in held:
            if room.disabled_modules and hidden_by_modules(pub.type, pub.payload, room.disabled_modules):
                continue
            try:
                self._send(room, pub)
            except Exception:  # one event that cannot be sent must not hold back the others
                log.exception("event %s of org %s could not be delivered; passed over", pub.seq, room.org_id)

    def _send(self, room: Room, pub: Published) -> None:
        """Push the publication to every connection subscribed to one of its channels."""
        delivered = 0
        for channel in pub.channels:
            conns = room.subscribers.get(channel)
            if not conns:
                continue
            frame = proto.encode_publication_push(channel, pub.data, pub.seq)
            for conn in list(conns):
                conn.push_publication(channel, pub.seq, frame)
            delivered += len(conns)
        if delivered:
            DELIVERIES.inc(delivered)
            DELIVERY_LATENCY.observe(time.time() - pub.at)

    async def _apply_side_effects(self, room: Room, pub: Published) -> None:
        """Events that change who may see what: re-check the affected connections."""
        if pub.type == "feed_modules.updated":
            room.disabled_modules = list(pub.payload.get("disabled_modules") or [])
        elif pub.type == "member.removed":
            user_id = pub.payload.get("user_id")
            for conn in [c for c in room.connections if c.user_id == user_id]:
                conn.request_close(proto.DISCONNECT_FORCE_NO_RECONNECT)
        elif pub.type in {"member.updated", "profile.updated", "profile.deleted", "role.updated", "role.deleted",
                          "group.created", "group.updated", "group.deleted"}:
            await self._resubscribe(room)

    async def _resubscribe(self, room: Room) -> None:
        """Recompute every connection's channels; add and drop subscriptions live."""
        if not room.connections:
            return
        graph = await self._org_facts(room)
        async with org_session(self.services.sessions, room.org_id) as session:
            rows = (
                await session.execute(
                    select(Membership.user_id, Membership.role_id, Membership.profile_id, Membership.is_super_admin, Profile.permissions)
                    .join(Profile, Profile.id == Membership.profile_id)
                    .where(Membership.user_id.in_({c.user_id for c in room.connections}))
                )
            ).all()
        members = {r.user_id: r for r in rows}
        for conn in list(room.connections):
            m = members.get(conn.user_id)
            if m is None or perms.FEEDS_TAB not in perms.effective_permissions(m.permissions or [], m.is_super_admin):
                conn.request_close(proto.DISCONNECT_PERMISSION_DENIED)
                continue
            conn.role_id, conn.profile_id = m.role_id, m.profile_id
            wanted = set(graph.reader_channels(conn.user_id, conn.role_id))
            for channel in sorted(conn.channels - wanted):
                room.drop_channel(conn, channel)
                conn.push(proto.encode_unsubscribe_push(channel, proto.UNSUBSCRIBE_SERVER, "no longer allowed"))
            for channel in sorted(wanted - conn.channels):
                room.add(conn, [channel])
                conn.floor[channel] = room.last_seq
                conn.push(proto.encode_subscribe_push(channel, epoch=room.epoch, offset=room.last_seq))

    # --- connections -----------------------------------------------------------------------
    async def _room(self, org_id: int) -> Room:
        room = self.rooms.get(org_id)
        if room is not None:  # a crowd reconnecting finds it here, without queueing on the lock
            return room
        async with self._rooms_lock:
            room = self.rooms.get(org_id)
            if room is not None:
                return room
            # The graph with the org row: read after `event_seq`, so an event that changes it comes
            # after the room's position and clears it again. Every first connect needs it.
            async with org_session(self.services.sessions, org_id) as session:
                org = (await session.execute(select(Org).where(Org.id == org_id))).scalar_one()
                graph = await load_graph(session)
            room = Room(org_id, org.rt_epoch, org.event_seq, list(org.disabled_modules or []), list(org.ip_allowlist or []))
            room.graph = graph
            self.rooms[org_id] = room
            await self.broker.subscribe(org_id)
            return room

    async def _org_facts(self, room: Room) -> OrgGraph:
        """The room's graph, and its allow-list, read again if an event may have changed them.
        Called under the room's lock, so no event slips between reading and using them."""
        if room.graph is None:
            async with org_session(self.services.sessions, room.org_id) as session:
                allow = (await session.execute(select(Org.ip_allowlist).where(Org.id == room.org_id))).scalar_one()
                room.graph = await load_graph(session)
            room.ip_allowlist = list(allow or [])
        return room.graph

    async def ip_allowlist(self, org_id: int) -> list[str] | None:
        """The org's IP allow-list (F-SEC-4), None if there is no such org; kept while the org has
        connections on this node, so that a reconnecting crowd does not read it once each."""
        room = self.rooms.get(org_id)
        if room is None:
            # One read for every connect of a crowd arriving before the org's room exists.
            reading = self._allowlist_reads.get(org_id)
            if reading is None:
                reading = asyncio.ensure_future(self._read_allowlist(org_id))
                self._allowlist_reads[org_id] = reading
                reading.add_done_callback(lambda _: self._allowlist_reads.pop(org_id, None))
            return await asyncio.shield(reading)
        if room.graph is None:
            async with room.lock:
                await self._org_facts(room)
        return room.ip_allowlist

    async def _read_allowlist(self, org_id: int) -> list[str] | None:
        async with self.services.sessions() as session:
            row = (await session.execute(select(Org.ip_allowlist).where(Org.id == org_id))).first()
        return None if row is None else list(row[0] or [])

    def revoked_since(self, conn: Connection) -> proto.Disconnect | None:
        """The disconnect for a revocation that arrived after the connection's sign-in was read."""
        if not self._revoked:
            return None
        for key, disconnect in ((("auth", conn.auth_token_id), proto.DISCONNECT_INVALID_TOKEN),
                                (("user", conn.user_id, conn.org_id), proto.DISCONNECT_FORCE_NO_RECONNECT),
                                (("org", conn.org_id), proto.DISCONNECT_FORCE_NO_RECONNECT)):
            at = self._revoked.get(key)
            if at is not None and at >= conn.checked_at:
                return disconnect
        return None

    async def connect(self, conn: Connection, recover_requests: RecoverRequests, make_reply: MakeReply) -> None:
        """Subscribe a connection to what its user may see, recover what it asked for, and queue
        the connect reply first.

        Channels come from the room's graph under the room's lock: a membership change is either
        already in the graph or delivered after the connection joined, and then re-checks it. Live
        publications arriving meanwhile are held and released after the reply, without repeating
        what recovery already sent.
        """
        db_top = 0
        while True:
            room = await self._room(conn.org_id)
            if recover_requests and not db_top:
                async with self.services.sessions() as session:
                    db_top = await latest_seq(session, conn.org_id)
            async with room.lock:
                if db_top > room.last_seq:
                    await self._fill(room, db_top)  # so a client's position from another node is never "ahead"
                channels = (await self._org_facts(room)).reader_channels(conn.user_id, conn.role_id)
                if self.rooms.get(conn.org_id) is not room:
                    continue  # the org's last connection left meanwhile and closed this room: join the open one
                conn.held = {}
                room.add(conn, channels)
                self.presence.joined(conn)
                revoked = self.revoked_since(conn)
                if revoked is not None:
                    conn.request_close(revoked)
                top = room.last_seq
                epoch, hidden = room.epoch, list(room.disabled_modules)
            break
        results: dict[str, dict[str, Any]] = {ch: _position(epoch, top) for ch in channels}
        if recover_requests:
            async with org_session(self.services.sessions, conn.org_id) as session:
                for channel in channels:
                    results[channel] = await _subscribe_result(session, conn.org_id, channel, epoch, top, hidden, recover_requests.get(channel))
        async with room.lock:
            for channel, result in results.items():
                conn.floor[channel] = result["offset"]
            conn.push(make_reply({**results, COUNTS_CHANNEL: {}}))
            held, conn.held = conn.held or {}, None
            for channel, pubs in held.items():
                for offset, frame in sorted(pubs, key=lambda x: x[0]):
                    conn.push_publication(channel, offset, frame)
        self.pinger.add(conn)
        await self.counts.joined(conn)  # after the reply: a count never comes before it

    async def disconnect(self, conn: Connection) -> None:
        # What is local first: nothing that waits on the broker may keep a closed connection around.
        self.pinger.remove(conn)
        self.presence.left(conn)
        async with self._rooms_lock:
            room = self.rooms.get(conn.org_id)  # under the lock: never close a room opened meanwhile
            if room is not None:
                room.remove(conn)
                if not room.connections:
                    del self.rooms[conn.org_id]
                    if room.merge_timer is not None:  # nobody is left to send held events to
                        room.merge_timer.cancel()
                        room.merge_timer = None
                    room.merging.clear()
                    await self.broker.unsubscribe(conn.org_id)  # does not wait on the broker
        await self.counts.left(conn)


def _revocation_key(message: dict[str, Any]) -> tuple[Any, ...] | None:
    kind = message.get("control")
    if kind == "auth_revoked":
        return ("auth", message.get("auth_token_id"))
    if kind == "user_removed":
        return ("user", message.get("user_id"), message.get("org_id"))
    if kind == "org_deleted":
        return ("org", message.get("org_id"))
    return None


def _position(epoch: str, top: int) -> dict[str, Any]:
    return {"recoverable": True, "epoch": epoch, "offset": top, "positioned": True}


async def _subscribe_result(
    session: Any, org_id: int, channel: str, epoch: str, top: int, hidden: list[str], request: tuple[str, int] | None
) -> dict[str, Any]:
    """The SubscribeResult of one server-side channel, recovering when the client asked to."""
    result = _position(epoch, top)
    if request is None:
        return result
    req_epoch, req_offset = request
    result["was_recovering"] = True
    if req_epoch != epoch or req_offset > top:
        result["recovered"] = False
        RECOVERY_FAILED.inc()
        return result
    rec = await recover(session, org_id, channel, req_offset, hidden)
    result["recovered"] = rec.recovered
    (RECOVERED if rec.recovered else RECOVERY_FAILED).inc()
    if rec.recovered:
        result["publications"] = [{"data": orjson.Fragment(data), "offset": off} for off, data in rec.publications]
        if rec.publications:
            result["offset"] = max(top, rec.publications[-1][0])
    return result

