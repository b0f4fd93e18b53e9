"""`feeds-server previews --backfill [--org SLUG]`: thumbnails for the files stored before previews
existed (actions/preview_backfill.py). The running notifier makes them; the command only queues."""

from __future__ import annotations

from feeds_server.actions.preview_backfill import backfill_previews
from feeds_server.config import Settings
from feeds_server.runtime.services import Services


async def backfill(settings: Settings, org_slug: str | None) -> int:
    services = Services.build(settings)
    try:
        try:
            done = await backfill_previews(services, org_slug)
        except LookupError as exc:
            raise SystemExit(str(exc)) from None
    finally:
        await services.close()
    print(
        f"{done.queued} preview job(s) queued, {done.not_previewable} file(s) with nothing to preview, "
        f"{done.missing_files} file(s) missing from the store, in {len(done.orgs)} org(s)"
    )
    return 0
