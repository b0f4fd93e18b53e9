"""The push loop of the notifier (`feeds-server notifier`): sends the push outbox.

For each claimed push, at send time: skip it when its notification was read or deleted, when the
person has a live connection in that org (they see it in the app; `last_error` 'online': first held
until that presence would run out, so a push is not lost to the rows of a node that died), when
they are no longer a member of the org ('not a member') or their mutes now hold it back
('muted'), or when their choices no longer want it (turned off, snoozed); hold it when quiet hours began since it was
queued (due again at their end); otherwise send it (notify/push.py) and record it as sent straight
after the push service accepted it. The one window where a push can go out twice is between that
acceptance and that record (a crash there): the retry carries the same Topic, so a push service
that still holds the first replaces it, and the service worker shows both under one tag, so the
browser replaces the notification rather than showing two.

One bad job never stops the loop: a push that cannot be read or built, or whose sending raises an
error nobody planned for, is set aside as a dead letter; a claim that fails as a whole (the
database away) is tried again after a pause. Pushes flow through a pipeline (`_Pipeline`), not in
rounds: a slow push service delays only its own pushes. Most browsers share a few push services
(every Chrome, Edge and Android one, FCM), so the per-origin limit is the common case, not the
exception: the pushes beyond it wait for a slot inside the worker, costing no statement, and the
owner checks and sent records of many pushes share a statement.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from feeds_server import limits
from feeds_server.actions.notifications import Mutes, members_and_mutes, muted_now
from feeds_server.domain import push_targets
from feeds_server.domain.preferences import PUSH, Preferences
from feeds_server.notify import dead_letters, outbox, push_outbox, vapid
from feeds_server.notify.push import GONE, REFUSED, RETRY, SENT, PushSender, Target
from feeds_server.notify.push_outbox import SKIPPED, Work
from feeds_server.notify.worker import MUTED, NOT_A_MEMBER
from feeds_server.runtime.services import Services
from feeds_server.store.models import Notification, PushJob
from feeds_server.store.scope import account_session

log = logging.getLogger("feeds_server.notifier")

POLL_SECONDS = 1.0
ROUND_RETRY_SECONDS = 5.0
ONLINE = "online"
MIN_LEASE_SECONDS = 3 * limits.PUSH_TIMEOUT_SECONDS
# Claim again once a REFILL_SHARE-th of the slots is free (or nearly nothing is claimed): a claim,
# its load and its checks cost a few statements whatever their size, so claiming one push per
# finished push would spend them per push; the pushes still claimed keep the push services busy.
REFILL_SHARE = 4  # of PUSH_CONCURRENCY


async def run(services: Services, burst: bool = False, stop: asyncio.Event | None = None, sender: PushSender | None = None) -> int:
    """Send until stopped; with `burst`, until nothing is due. Returns how many pushes went out.

    A push configuration that cannot work (a bad FEEDS_VAPID_SUBJECT or key) turns pushes off with
    an error in the log, here and not at each push; the notifier's other loops go on."""
    if sender is None:
        try:
            vapid.subject(services.settings)
            vapid.private_key(services.settings)
        except ValueError as exc:
            log.error("web push is off: %s", exc)
            return 0
    own = sender is None
    pipeline = _Pipeline(services, sender or PushSender(services.settings))
    try:
        await pipeline.run(burst, stop)
    finally:
        await pipeline.drain()
        if own:
            await pipeline.sender.close()
    return pipeline.sent


async def _sleep(seconds: float, stop: asyncio.Event | None, wake: asyncio.Event | None = None) -> None:
    waits = [asyncio.ensure_future(e.wait()) for e in (stop, wake) if e is not None]
    try:
        await asyncio.wait(waits or [asyncio.ensure_future(asyncio.sleep(seconds))], timeout=seconds)
    finally:
        for w in waits:
            w.cancel()


def lease_seconds(configured: float) -> float:
    """The lease of claimed pushes: FEEDS_NOTIFIER_LEASE_SECONDS, at least MIN_LEASE_SECONDS. A send
    starts only while a third of the lease is left and may take PUSH_TIMEOUT_SECONDS: a shorter lease
    could run out mid-send, and another worker would send the same push again."""
    if configured < MIN_LEASE_SECONDS:
        log.warning(
            "FEEDS_NOTIFIER_LEASE_SECONDS=%g is too short for pushes (each may take %g s): the push loop uses %g s",
            configured, limits.PUSH_TIMEOUT_SECONDS, MIN_LEASE_SECONDS,
        )
        return MIN_LEASE_SECONDS
    return configured


class _Gate:
    """At most PUSH_PER_ORIGIN_CONCURRENCY pushes in flight to one push service origin. The others
    wait in the worker, first come first served, for the slot a finished push hands on: waiting
    costs no statement, and a busy origin never holds another origin's pushes back."""

    def __init__(self) -> None:
        self.active: dict[str, int] = {}
        self.queues: dict[str, deque[asyncio.Future[bool]]] = {}

    def ticket(self, where: str) -> asyncio.Future[bool]:
        """Turns True once a slot of `where` is this push's (at once when one is free), False when withdrawn."""
        ticket: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        if self.active.get(where, 0) < limits.PUSH_PER_ORIGIN_CONCURRENCY and not self.queues.get(where):
            self.active[where] = self.active.get(where, 0) + 1
            ticket.set_result(True)
        else:
            self.queues.setdefault(where, deque()).append(ticket)
        return ticket

    def release(self, where: str) -> None:
        """A push to `where` is done: its slot passes to the first still waiting, or is free again."""
        queue = self.queues.get(where)
        while queue:
            ticket = queue.popleft()
            if not ticket.done():  # a cancelled waiter is passed over
                ticket.set_result(True)
                break
        else:
            self.active[where] -= 1
            if not self.active[where]:
                del self.active[where]
        if queue is not None and not queue:
            del self.queues[where]

    def withdraw(self, where: str, ticket: asyncio.Future[bool]) -> bool:
        """Stop waiting: True when `ticket` had no slot yet (and now never gets one)."""
        if ticket.done():
            return False
        queue = self.queues[where]
        queue.remove(ticket)
        if not queue:
            del self.queues[where]
        ticket.set_result(False)
        return True


class _Pipeline:
    """Keeps up to PUSH_CONCURRENCY pushes claimed, claiming more as each one finishes, so a push
    service that answers slowly holds only its own pushes' slots (at most PUSH_PER_ORIGIN_CONCURRENCY
    in flight), never a whole round of everyone's. A claimed push whose origin is busy waits in the
    worker (`_Gate`) under its claim's lease; one that waited PUSH_ORIGIN_WAIT_SECONDS is given back
    with the others of its claim in one statement, so a push service that stalls cannot keep the
    claim's slots from pushes to other services for longer."""

    def __init__(self, services: Services, sender: PushSender) -> None:
        self.services, self.sender = services, sender
        self.sent_log = push_outbox.SentLog(services.sessions)
        self.owners = push_outbox.Owners(services.sessions)
        self.gate = _Gate()
        self.sent = 0
        self.busy = 0  # claimed and not yet done
        self.freed = asyncio.Event()
        self.closing = asyncio.Event()  # no new waiting: pushes still waiting for a slot are given back
        self.batches: set[asyncio.Task[None]] = set()
        self.failure: BaseException | None = None
        self.lease_seconds = lease_seconds(services.settings.notifier_lease_seconds)
        self.deferred = False

    async def run(self, burst: bool, stop: asyncio.Event | None) -> None:
        while stop is None or not stop.is_set():
            if burst and self.failure is not None:
                raise self.failure
            free, refill = limits.PUSH_CONCURRENCY - self.busy, max(1, limits.PUSH_CONCURRENCY // REFILL_SHARE)
            asked = claimed = 0
            if free >= refill or (free > 0 and self.busy < refill):
                asked = min(free, limits.PUSH_CLAIM_BATCH)
                try:
                    claimed = await self._claim(asked)
                except Exception:
                    if burst:
                        raise
                    log.exception("claiming pushes failed; trying again in %.0f s", ROUND_RETRY_SECONDS)
                    await _sleep(ROUND_RETRY_SECONDS, stop)
                    continue
            if claimed == asked > 0 and self.busy < limits.PUSH_CONCURRENCY:  # more may be due
                continue
            if self.busy == 0 and not claimed:
                if burst and self.deferred:  # pushes given back while their origin was busy: due again in a moment
                    self.deferred = False
                    await _sleep(limits.PUSH_ORIGIN_BUSY_SECONDS, stop)
                    continue
                if burst:
                    break
                await _sleep(POLL_SECONDS, stop)
                continue
            self.freed.clear()
            await _sleep(POLL_SECONDS, stop, self.freed)
        if burst and self.failure is not None:
            raise self.failure

    async def drain(self) -> None:
        self.closing.set()
        if self.batches:
            await asyncio.gather(*self.batches, return_exceptions=True)

    async def _claim(self, limit: int) -> int:
        claimed_at = time.monotonic()
        ids = await push_outbox.claim(self.services.sessions, self.services.clock(), self.lease_seconds, limit)
        if ids:
            self.busy += len(ids)
            task = asyncio.create_task(self._batch(ids, claimed_at))
            self.batches.add(task)
            task.add_done_callback(self.batches.discard)
        return len(ids)

    def _release(self, n: int) -> None:
        self.busy -= n
        self.freed.set()

    async def _batch(self, ids: list[int], claimed_at: float) -> None:
        """One claim: decide on its pushes, then send each as its origin has room."""
        services = self.services
        sends: list[asyncio.Task[None]] = []  # each frees its own slot of `busy`
        tickets: list[tuple[Work, str, asyncio.Future[bool]]] = []
        try:
            async with outbox.Lease(services.sessions, services.clock, ids, self.lease_seconds, claimed_at, table=PushJob) as lease:
                try:
                    try:
                        works = await push_outbox.load(services.sessions, ids, services.clock())
                        for work in await _decide(services, works):
                            where = push_targets.origin(work.endpoint or "")
                            tickets.append((work, where, self.gate.ticket(where)))
                            sends.append(asyncio.create_task(self._one(lease, *tickets[-1])))
                    finally:
                        self._release(len(ids) - len(sends))  # skipped, held, or not reached
                    await self._give_back_late(tickets, claimed_at + limits.PUSH_ORIGIN_WAIT_SECONDS)
                finally:
                    await asyncio.gather(*sends)
        except Exception as exc:  # the database away: the leases bring these pushes back
            log.exception("a claim of %d pushes failed; they are claimed again when their lease runs out", len(ids))
            self.failure = self.failure or exc

    async def _give_back_late(self, tickets: list[tuple[Work, str, asyncio.Future[bool]]], deadline: float) -> None:
        """Wait until each push has a slot of its origin, until `deadline` (monotonic) or until the
        worker stops; then the pushes still waiting are given back together, their attempt not counted."""
        waiting = [ticket for *_, ticket in tickets if not ticket.done()]
        if not waiting:
            return
        all_in = asyncio.ensure_future(asyncio.wait(waiting))
        closing = asyncio.ensure_future(self.closing.wait())
        try:
            await asyncio.wait([all_in, closing], timeout=max(0.0, deadline - time.monotonic()), return_when=asyncio.FIRST_COMPLETED)
        finally:
            all_in.cancel()
            closing.cancel()
        late = [work.id for work, where, ticket in tickets if self.gate.withdraw(where, ticket)]
        if not late:
            return
        stopping = self.closing.is_set()
        if not stopping:
            log.info("%d pushes waited %.0f s for their push service: given back for a moment", len(late), limits.PUSH_ORIGIN_WAIT_SECONDS)
            self.deferred = True
        at = self.services.clock() + timedelta(seconds=0 if stopping else limits.PUSH_ORIGIN_BUSY_SECONDS)
        await push_outbox.give_back(self.services.sessions, late, at)

    async def _one(self, lease: outbox.Lease, work: Work, where: str, ticket: asyncio.Future[bool]) -> None:
        try:
            try:
                if not await ticket:  # given back: it waited too long for its origin
                    return
            except asyncio.CancelledError:
                if ticket.done() and not ticket.cancelled() and ticket.result():
                    self.gate.release(where)
                raise
            try:
                done = await _process(self.services, self.sender, self.sent_log, lease, work, self.owners)
                self.sent += done  # not `+= await`: that reads the count before the await
            finally:
                self.gate.release(where)
        finally:
            self._release(1)


async def _decide(services: Services, works: list[Work | tuple[int, Exception]]) -> list[Work]:
    """Skip or hold what should not go out now (a few statements for the whole claim); the rest to send."""
    now = services.clock()
    skips: dict[str, list[int]] = {}
    to_send: list[Work] = []
    held_back = await _left_or_muted(services, [w for w in works if not isinstance(w, tuple)])
    for work in works:
        if isinstance(work, tuple):
            job_id, exc = work
            log.error("push job %s set aside as a dead letter: it cannot be read: %r", job_id, exc)
            await push_outbox.mark(services.sessions, [job_id], dead_letters.FAILED, now, error=dead_letters.unexpected("read", exc))
            continue
        why = _skip_reason(work)
        if why == ONLINE and work.last_error != ONLINE and work.online_until is not None and work.online_until > now:
            # Seen online: due again when that presence runs out. A node that died leaves its rows
            # until then; a live one has renewed them by that time, and the push is skipped.
            await push_outbox.postpone(services.sessions, work, work.online_until, note=ONLINE)
            continue
        why = why or held_back.get(work.id)
        if why is not None:
            skips.setdefault(why, []).append(work.id)
            continue
        prefs = Preferences.of(work.settings, work.org_time_zone)
        at = prefs.send_at(str(work.payload.get("kind", "")), PUSH, now)
        if at is None:
            skips.setdefault("snoozed" if prefs.snoozed(now) else "turned off", []).append(work.id)
        elif at > now:
            await push_outbox.postpone(services.sessions, work, at)
        else:
            to_send.append(work)
    for why, job_ids in skips.items():
        await push_outbox.mark(services.sessions, job_ids, SKIPPED, now, error=why)
    return to_send


async def _left_or_muted(services: Services, works: list[Work]) -> dict[int, str]:
    """The claimed pushes whose person left the org, or muted what they tell of, since they were
    queued (job id → why); the notifications are read only when someone of the claim has mutes."""
    if not works:
        return {}
    note_ids = {w.notification_id for w in works if w.notification_id is not None}
    notes: dict[int, Any] = {}
    async with account_session(services.sessions) as session:
        members, mutes = await members_and_mutes(session, {(w.org_id, w.user_id) for w in works})
        if mutes and note_ids:
            stmt = select(
                Notification.id, Notification.user_id, Notification.kind, Notification.reason, Notification.post_id,
                Notification.comment_id, Notification.record_id, Notification.data,
            ).where(Notification.id.in_(note_ids))
            notes = {row.id: row for row in await session.execute(stmt)}
    out: dict[int, str] = {}
    for work in works:
        note = notes.get(work.notification_id) if work.notification_id is not None else None
        if (work.org_id, work.user_id) not in members:
            out[work.id] = NOT_A_MEMBER
        elif note is not None and muted_now(mutes.get(work.org_id, Mutes()), note):
            out[work.id] = MUTED
    return out


def _skip_reason(work: Work) -> str | None:
    if work.endpoint is None or work.subscriber_id != work.user_id:
        return "unsubscribed"
    if work.notification_id is not None and not work.notification_found:
        return "deleted"
    if work.read:
        return "read"
    if work.online:
        return ONLINE
    return None


async def _process(
    services: Services, sender: PushSender, sent_log: push_outbox.SentLog, lease: outbox.Lease, work: Work,
    owners: push_outbox.Owners | None = None,
) -> int:
    """Send one push; what goes wrong stays within it."""
    try:
        return await _send(services, sender, sent_log, lease, work, owners)
    except Exception:  # its outcome could not be recorded (the database away): its lease brings it back
        log.exception("the outcome of push job %s was not recorded; it is claimed again when its lease runs out", work.id)
        return 0


async def _send(
    services: Services, sender: PushSender, sent_log: push_outbox.SentLog, lease: outbox.Lease, work: Work,
    owners: push_outbox.Owners | None = None,
) -> int:
    if not lease.held():  # another worker may have it by now: let it send
        log.warning("lease of push job %s ran out before sending; it will be claimed again", work.id)
        return 0
    assert work.endpoint is not None
    if not await (owners or push_outbox.Owners(services.sessions)).still_subscribed(work):  # the browser changed hands since it was loaded
        await push_outbox.mark(services.sessions, [work.id], SKIPPED, services.clock(), error="unsubscribed")
        return 0
    try:
        result = await sender.send(Target(work.endpoint, work.p256dh, work.auth), work.payload)
    except Exception as exc:  # a bug, not an answer: the push service has not accepted it
        log.error("push job %s set aside as a dead letter: %r", work.id, exc, exc_info=exc)
        await push_outbox.mark(services.sessions, [work.id], dead_letters.FAILED, services.clock(), error=dead_letters.unexpected("send", exc))
        return 0
    now = services.clock()
    if result.outcome == SENT:
        await sent_log.record(work, now)
        return 1
    if result.outcome == GONE:
        await push_outbox.remove_subscription(services.sessions, work, result.detail)
    elif result.outcome == RETRY:
        log.info("push job %s will be retried: %s", work.id, result.detail)
        await push_outbox.retry_later(services.sessions, work, now, result.detail, result.retry_after)
    else:
        assert result.outcome == REFUSED
        log.warning("push job %s refused for good: %s", work.id, result.detail)
        await push_outbox.mark(
            services.sessions, [work.id], dead_letters.FAILED, now, error=dead_letters.reason_text(dead_letters.REFUSED, result.detail)
        )
    return 0
