"""The preview outbox as the worker drains it: a thumbnail for each image and PDF posted.

A post's transaction writes a `preview_jobs` row for each image or PDF among its files (recognised
by their bytes, actions/posts.py). The worker claims due jobs with a lease, as the email and webhook
outboxes do (notify/outbox.py): on PostgreSQL with `FOR UPDATE SKIP LOCKED`, so several workers
share the work; a worker that dies leaves its jobs leased, and another takes them once the lease
runs out. Each file is decoded in a child process (notify/preview_render.py) killed past
`PREVIEW_TIMEOUT_SECONDS`, `PREVIEW_CONCURRENCY` at a time.

What can happen to a job:
- made: the thumbnail is stored under a new key (store/files.py), the attachment gets its sizes and
  `preview_state = "ready"`, and an `attachment.previewed` event goes to the post's audience, in
  one transaction;
- refused: a decompression bomb, a broken file, one that takes too long: set aside at once as a
  dead letter (`refused: …`, notify/dead_letters.py), the attachment `failed`, the event sent too
  so open pages stop waiting; the other jobs go on;
- could not run (the file store or the child process failed): tried again with backoff
  (domain/retry.py), up to `PREVIEW_MAX_ATTEMPTS`, then set aside (`gave_up: …`).
"""

from __future__ import annotations

import asyncio
import logging
import sys
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from feeds_server import limits
from feeds_server.actions.posts import post_channels
from feeds_server.actions.views import attachment_view
from feeds_server.domain import retry
from feeds_server.notify import dead_letters
from feeds_server.runtime.services import Services
from feeds_server.store.events import append_event, take_committed_events
from feeds_server.store.files import LocalFileStore
from feeds_server.store.models import Attachment, PreviewJob
from feeds_server.store.scope import account_session, org_session

log = logging.getLogger("feeds_server.previews")

PENDING, WORKING, DONE, FAILED = "pending", "working", "done", dead_letters.FAILED
READY = "ready"
EVENT = "attachment.previewed"
POLL_SECONDS = 1.0
ROUND_RETRY_SECONDS = 5.0
RENDERER = "feeds_server.notify.preview_render"
MAX_ERROR_CHARS = 500  # preview_jobs.last_error


@dataclass(frozen=True)
class Claimed:
    job_id: int
    org_id: int
    attachment_id: int
    attempts: int  # this claim's attempt: the job is ours while its row still says so


class FileRefused(Exception):
    """The file itself is the problem: no retry makes a thumbnail of it."""


class CouldNotRun(Exception):
    """Something other than the file failed: the job is tried again later."""


@dataclass(frozen=True)
class Thumbnail:
    facts: dict[str, Any]  # preview_width, preview_height, width, height, page_count
    data: bytes


async def make_previews(
    services: Services, burst: bool = False, stop: asyncio.Event | None = None, timeout: float = limits.PREVIEW_TIMEOUT_SECONDS
) -> int:
    """Make due thumbnails until stopped (with `burst`, until none is due); returns how many were made."""
    gate = asyncio.Semaphore(limits.PREVIEW_CONCURRENCY)
    made = 0
    while stop is None or not stop.is_set():
        try:
            jobs = await claim(services, services.clock())
        except Exception:
            if burst:
                raise
            log.exception("claiming preview jobs failed; trying again in %.0f s", ROUND_RETRY_SECONDS)
            await _pause(ROUND_RETRY_SECONDS, stop)
            continue
        if not jobs:
            if burst:
                break
            await _pause(POLL_SECONDS, stop)
            continue
        results = await asyncio.gather(*(_guarded(services, gate, job, timeout) for job in jobs), return_exceptions=True)
        for job, result in zip(jobs, results):
            if isinstance(result, BaseException):  # its outcome was not recorded: its lease brings it back
                log.error("the outcome of preview job %s was not recorded: %r", job.job_id, result, exc_info=result)
        made += sum(r for r in results if isinstance(r, int))
    return made


async def _pause(seconds: float, stop: asyncio.Event | None) -> None:
    try:
        await asyncio.wait_for(stop.wait() if stop else asyncio.sleep(seconds), timeout=seconds)
    except TimeoutError:
        pass


def _due(now: datetime) -> Any:
    """Pending and due, or leased to a worker whose lease ran out (it died while working)."""
    return or_(
        (PreviewJob.status == PENDING) & (PreviewJob.next_attempt_at <= now),
        (PreviewJob.status == WORKING) & (PreviewJob.leased_until < now),
    )


async def claim(services: Services, now: datetime, max_jobs: int = limits.PREVIEW_CLAIM_BATCH) -> list[Claimed]:
    """Lease up to `max_jobs` due jobs to this worker. A job claimed more often than its attempts
    allow (workers died on it) is set aside instead, and the post's readers told."""
    async with account_session(services.sessions) as session:
        rows = (
            await session.execute(
                select(PreviewJob).where(_due(now)).order_by(PreviewJob.next_attempt_at, PreviewJob.id).limit(max_jobs)
                .with_for_update(skip_locked=True)
            )
        ).scalars().all()
        claimed, given_up = [], []
        for job in rows:
            if job.attempts >= limits.PREVIEW_MAX_ATTEMPTS:
                job.status, job.leased_until, job.next_attempt_at = FAILED, None, now
                reason = f"after {job.attempts} attempts: {job.last_error or 'the worker stopped'}"
                job.last_error = dead_letters.reason_text(dead_letters.GAVE_UP, reason)[:MAX_ERROR_CHARS]
                given_up.append(Claimed(job.id, job.org_id, job.attachment_id, job.attempts))
                continue
            job.status, job.leased_until = WORKING, now + timedelta(seconds=limits.PREVIEW_LEASE_SECONDS)
            job.attempts += 1
            claimed.append(Claimed(job.id, job.org_id, job.attachment_id, job.attempts))
        if given_up:
            await session.execute(update(Attachment).where(Attachment.id.in_([j.attachment_id for j in given_up])).values(preview_state=FAILED))
    for job in given_up:
        # Open pages stop waiting, as for any other dead letter (`_set_aside`).
        async with org_session(services.sessions, job.org_id) as session:
            await _announce(session, job)
        await services.publish(take_committed_events(session))
    return claimed


async def _guarded(services: Services, gate: asyncio.Semaphore, job: Claimed, timeout: float) -> int:
    async with gate:
        return await process(services, job, timeout)


async def process(services: Services, job: Claimed, timeout: float = limits.PREVIEW_TIMEOUT_SECONDS) -> int:
    """Make one job's thumbnail and record the outcome; 1 when a thumbnail was made."""
    store = LocalFileStore(services.settings.files_dir)
    async with org_session(services.sessions, job.org_id) as session:
        key = (await session.execute(select(Attachment.storage_key).where(Attachment.id == job.attachment_id))).scalar_one_or_none()
    if key is None:  # the post went, and its job with it (foreign keys cascade)
        return 0
    try:
        thumbnail = await render(await _read(store, key), timeout)
    except FileRefused as exc:
        log.warning("preview of attachment %s (org %s) refused: %s", job.attachment_id, job.org_id, exc)
        await _set_aside(services, job, dead_letters.reason_text(dead_letters.REFUSED, str(exc)))
        return 0
    except CouldNotRun as exc:
        await _retry_later(services, job, str(exc))
        return 0
    except Exception as exc:  # a bug: set aside with what happened, the other jobs go on
        log.error("preview job %s set aside as a dead letter: %r", job.job_id, exc, exc_info=exc)
        await _set_aside(services, job, dead_letters.unexpected("render", exc))
        return 0
    thumb_key = await _store(store, thumbnail.data)
    if not await _record(services, job, thumbnail, thumb_key):
        await store.delete(thumb_key)  # the post was deleted meanwhile, or another worker took the job
        return 0
    return 1


async def _read(store: LocalFileStore, key: str) -> bytes:
    data = bytearray()
    try:
        async for chunk in store.read(key):
            data += chunk
            if len(data) > limits.MAX_FILE_BYTES:
                raise FileRefused(f"larger than {limits.MAX_FILE_BYTES} bytes")
    except FileNotFoundError:
        raise FileRefused("the stored file is missing") from None
    except OSError as exc:
        raise CouldNotRun(f"reading the file: {exc!r}") from exc
    return bytes(data)


async def render(data: bytes, timeout: float = limits.PREVIEW_TIMEOUT_SECONDS, memory: int = limits.PREVIEW_MEMORY_BYTES) -> Thumbnail:
    """The thumbnail of `data`, made by a child process that is killed after `timeout` seconds."""
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", RENDERER, str(memory),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
    except OSError as exc:
        raise CouldNotRun(f"starting the renderer: {exc!r}") from exc
    try:
        out, err = await asyncio.wait_for(proc.communicate(data), timeout)
    except (TimeoutError, asyncio.TimeoutError):
        raise FileRefused(f"timeout: not done within {timeout:g} s") from None
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    head, _, body = out.partition(b"\n")
    if proc.returncode is not None and proc.returncode < 0:
        # Killed by a signal: the decoder crashed on this file (or hit its memory cap), and would again.
        raise FileRefused(f"the decoder died on it (signal {-proc.returncode})")
    if proc.returncode != 0 or not head:
        tail = err.decode("utf-8", "replace").strip().splitlines()[-1:] or [""]
        raise CouldNotRun(f"the renderer exited with code {proc.returncode}: {tail[0][:300]}")
    answer = orjson.loads(head)
    if not answer.get("ok"):
        raise FileRefused(answer.get("reason") or "refused")
    facts = {k: answer.get(k) for k in ("preview_width", "preview_height", "width", "height", "page_count")}
    return Thumbnail(facts, body)


async def _store(store: LocalFileStore, data: bytes) -> str:
    """Under a new key of its own, never one derived from the original's."""
    temp = await store.open_temp()
    try:
        await asyncio.to_thread(temp.write, data)
        return await asyncio.to_thread(temp.commit)
    except BaseException:
        temp.discard()
        raise


async def _record(services: Services, job: Claimed, thumbnail: Thumbnail, key: str) -> bool:
    """The thumbnail, its sizes, the job done and the event, in one transaction. False when the job
    is no longer ours (its lease ran out and another worker took it) or its attachment is gone."""
    async with org_session(services.sessions, job.org_id) as session:
        if not await _finish_job(session, job, DONE, services.clock()):
            return False
        values = {"preview_state": READY, "preview_key": key, **thumbnail.facts}
        done = await session.execute(update(Attachment).where(Attachment.id == job.attachment_id).values(**values))
        if not done.rowcount:  # type: ignore[attr-defined]
            return False
        await _announce(session, job)
    await services.publish(take_committed_events(session))
    return True


async def _set_aside(services: Services, job: Claimed, reason: str) -> None:
    """A dead letter: the job failed with its reason, the attachment's preview failed, the post's readers told."""
    async with org_session(services.sessions, job.org_id) as session:
        if not await _finish_job(session, job, FAILED, services.clock(), reason):
            return
        await session.execute(update(Attachment).where(Attachment.id == job.attachment_id).values(preview_state=FAILED))
        await _announce(session, job)
    await services.publish(take_committed_events(session))


async def _retry_later(services: Services, job: Claimed, error: str) -> None:
    if job.attempts >= limits.PREVIEW_MAX_ATTEMPTS:
        await _set_aside(services, job, dead_letters.reason_text(dead_letters.GAVE_UP, f"after {job.attempts} attempts: {error}"))
        return
    log.info("preview job %s will be tried again: %s", job.job_id, error)
    delay = retry.backoff_seconds(job.attempts, limits.PREVIEW_RETRY_BASE_SECONDS, limits.PREVIEW_RETRY_MAX_SECONDS)
    async with org_session(services.sessions, job.org_id) as session:
        await session.execute(
            update(PreviewJob)
            .where(PreviewJob.id == job.job_id, PreviewJob.status == WORKING, PreviewJob.attempts == job.attempts)
            .values(status=PENDING, leased_until=None, next_attempt_at=services.clock() + timedelta(seconds=delay), last_error=error[:400])
        )


async def _finish_job(session: AsyncSession, job: Claimed, status: str, now: datetime, error: str | None = None) -> bool:
    """Close the job if this worker's claim still holds it (same status and attempt)."""
    values: dict[str, Any] = {"status": status, "leased_until": None, "last_error": error[:MAX_ERROR_CHARS] if error else None}
    if status == FAILED:
        values["next_attempt_at"] = now  # a dead letter's is when it failed
    stmt = update(PreviewJob).where(PreviewJob.id == job.job_id, PreviewJob.status == WORKING, PreviewJob.attempts == job.attempts)
    result = await session.execute(stmt.values(**values))
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def _announce(session: AsyncSession, job: Claimed) -> None:
    """`attachment.previewed` to the post's audience: open pages show the thumbnail (or stop waiting)."""
    attachment = (await session.execute(select(Attachment).where(Attachment.id == job.attachment_id))).scalar_one_or_none()
    if attachment is None:
        return
    channels = await post_channels(session, attachment.post_id)
    append_event(session, EVENT, {"post_id": attachment.post_id, "attachment": attachment_view(attachment)}, None, channels)
