"""Previews for files stored before the worker made them: `feeds-server previews --backfill`.

Attachments written before previews existed, or whose preview was never asked for, have no
`preview_state`. Each one is read from the file store (its first bytes only), and an image or PDF
gets a preview job as an upload does (actions/posts.py `insert_attachments`); any other file is
marked `PREVIEW_NONE`, so a second run reads only what is new. The files of a page are read with no
session open, and its changes are one short transaction: a backfill never holds a lock for long.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import insert, select, update

from feeds_server.domain.file_types import HEAD_BYTES, PREVIEW_NONE, PREVIEW_PENDING, previewable, sniff
from feeds_server.runtime.services import Services
from feeds_server.store.files import LocalFileStore
from feeds_server.store.models import Attachment, Org, PreviewJob
from feeds_server.store.scope import account_session, org_session

PAGE = 200


@dataclass
class Backfill:
    queued: int = 0
    not_previewable: int = 0
    missing_files: int = 0
    orgs: list[str] = field(default_factory=list)


async def backfill_previews(services: Services, org_slug: str | None = None) -> Backfill:
    """Queue a preview job for every image or PDF without one, in one org or in all of them."""
    async with account_session(services.sessions) as session:
        stmt = select(Org.id, Org.slug).order_by(Org.id)
        orgs = (await session.execute(stmt if org_slug is None else stmt.where(Org.slug == org_slug))).all()
    if org_slug is not None and not orgs:
        raise LookupError(f"no org {org_slug!r}")
    done = Backfill(orgs=[slug for _, slug in orgs])
    store = LocalFileStore(services.settings.files_dir)
    for org_id, _ in orgs:
        last = 0
        while True:
            async with org_session(services.sessions, org_id) as session:
                page = (await session.execute(
                    select(Attachment.id, Attachment.storage_key)
                    .where(Attachment.preview_state.is_(None), Attachment.id > last)
                    .order_by(Attachment.id).limit(PAGE)
                )).all()
            if not page:
                break
            last = page[-1].id
            # The files are read with no session open; the page's changes are then one short transaction.
            pending, none = [], []
            for attachment_id, key in page:
                kind = await _kind(store, key)
                if kind is None:
                    done.missing_files += 1  # left as it is: the file may come back (a restore), and a later run sees it
                else:
                    (pending if previewable(kind) else none).append(attachment_id)
            now = services.clock()
            async with org_session(services.sessions, org_id) as session:
                unseen = Attachment.preview_state.is_(None)  # an upload or a second run may have been first
                if none:
                    await session.execute(update(Attachment).where(Attachment.id.in_(none), unseen).values(preview_state=PREVIEW_NONE))
                if pending:
                    taken = list((await session.execute(
                        update(Attachment).where(Attachment.id.in_(pending), unseen).values(preview_state=PREVIEW_PENDING).returning(Attachment.id)
                    )).scalars())
                    if taken:
                        await session.execute(insert(PreviewJob), [
                            {"org_id": org_id, "attachment_id": aid, "status": "pending", "attempts": 0, "next_attempt_at": now, "created_at": now}
                            for aid in taken
                        ])
                    done.queued += len(taken)
            done.not_previewable += len(none)
    return done


async def _kind(store: LocalFileStore, key: str) -> str | None:
    """The file's type from its first bytes ("" when it is none of the previewable ones), or None
    when the file cannot be read from the store."""
    try:
        chunks = store.read(key)
        head = b""
        async for chunk in chunks:
            head += chunk
            if len(head) >= HEAD_BYTES:
                break
        await chunks.aclose()
    except OSError:  # gone, or unreadable: one file never stops the run
        return None
    return sniff(head[:HEAD_BYTES]) or ""
