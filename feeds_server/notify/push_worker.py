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
rounds: a slow push service delays only its own pushes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from feeds_server import limits
from feeds_server.actions.notifications import Mutes, members_and_mutes, muted_now
from feeds_server.domain import push_targets
from feeds_server.domain.preferences import PUSH, Preferences
from feeds_server.notify import dead_letters, push_outbox, vapid
from feeds_server.notify.push import GONE, REFUSED, RETRY, SENT, PushSender, Target
from feeds_server.notify.push_outbox import SKIPPED, Work
from feeds_server.notify.worker import MUTED, NOT_A_MEMBER
from feeds_server.runtime.services import Services
from feeds_server.store.models import Notification
from feeds_server.store.scope import account_session

log = logging.getLogger("feeds_server.notifier")

POLL_SECONDS = 1.0
ROUND_RETRY_SECONDS = 5.0
ONLINE = "online"
MIN_LEASE_SECONDS = 3 * limits.PUSH_TIMEOUT_SECONDS


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


class _Pipeline:
    """Keeps up to PUSH_CONCURRENCY pushes in flight, claiming more as each one finishes, so a push
    service that answers slowly holds only its own pushes' slots (at most PUSH_PER_ORIGIN_CONCURRENCY
    of them), never a whole round of everyone's."""

    def __init__(self, services: Services, sender: PushSender) -> None:
        self.services, self.sender = services, sender
        self.sent_log = push_outbox.SentLog(services.sessions)
        self.sent = 0
        self.busy = 0  # claimed and not yet done
        self.by_origin: dict[str, int] = {}
        self.freed = asyncio.Event()
        self.batches: set[asyncio.Task[None]] = set()
        self.failure: BaseException | None = None
        self.lease_seconds = lease_seconds(services.settings.notifier_lease_seconds)
        self.deferred = False

    async def run(self, burst: bool, stop: asyncio.Event | None) -> None:
        while stop is None or not stop.is_set():
            if burst and self.failure is not None:
                raise self.failure
            free = limits.PUSH_CONCURRENCY - self.busy
            claimed = 0
            if free > 0:
                try:
                    claimed = await self._claim(min(free, limits.PUSH_CLAIM_BATCH))
                except Exception:
                    if burst:
                        raise
                    log.exception("claiming pushes failed; trying again in %.0f s", ROUND_RETRY_SECONDS)
                    await _sleep(ROUND_RETRY_SECONDS, stop)
                    continue
            if claimed and self.busy < limits.PUSH_CONCURRENCY:
                continue
            if self.busy == 0 and not claimed:
                if burst and self.deferred:  # pushes that waited for their origin: due again in a moment
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

    def _release(self, n: int, origin: str | None = None) -> None:
        self.busy -= n
        if origin is not None:
            self.by_origin[origin] -= 1
            if not self.by_origin[origin]:
                del self.by_origin[origin]
        self.freed.set()

    async def _batch(self, ids: list[int], claimed_at: float) -> None:
        """One claim: decide on its pushes, then send each as its origin has room."""
        services, started = self.services, 0
        try:
            async with push_outbox.Lease(services.sessions, services.clock, ids, self.lease_seconds, claimed_at) as lease:
                works = await push_outbox.load(services.sessions, ids, services.clock())
                sends = []
                for work in await _decide(services, works):
                    where = push_targets.origin(work.endpoint or "")
                    if self.by_origin.get(where, 0) >= limits.PUSH_PER_ORIGIN_CONCURRENCY:
                        self.deferred = True
                        await push_outbox.postpone(
                            services.sessions, work, services.clock() + timedelta(seconds=limits.PUSH_ORIGIN_BUSY_SECONDS)
                        )
                        continue
                    self.by_origin[where] = self.by_origin.get(where, 0) + 1
                    started += 1
                    sends.append(self._one(lease, work, where))
                await asyncio.gather(*sends)
        except Exception as exc:  # the database away: the leases bring these pushes back
            log.exception("a claim of %d pushes failed; they are claimed again when their lease runs out", len(ids))
            self.failure = self.failure or exc
        finally:
            self._release(len(ids) - started)

    async def _one(self, lease: push_outbox.Lease, work: Work, where: str) -> None:
        try:
            done = await _process(self.services, self.sender, self.sent_log, lease, work)
            self.sent += done  # not `+= await`: that reads the count before the await
        finally:
            self._release(1, where)


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
    services: Services, sender: PushSender, sent_log: push_outbox.SentLog, lease: push_outbox.Lease, work: Work
) -> int:
    """Send one push; what goes wrong stays within it."""
    try:
        return await _send(services, sender, sent_log, lease, work)
    except Exception:  # its outcome could not be recorded (the database away): its lease brings it back
        log.exception("the outcome of push job %s was not recorded; it is claimed again when its lease runs out", work.id)
        return 0


async def _send(services: Services, sender: PushSender, sent_log: push_outbox.SentLog, lease: push_outbox.Lease, work: Work) -> int:
    if not lease.held():  # another worker may have it by now: let it send
        log.warning("lease of push job %s ran out before sending; it will be claimed again", work.id)
        return 0
    assert work.endpoint is not None
    if not await push_outbox.still_subscribed(services.sessions, work):  # the browser changed hands since it was loaded
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
