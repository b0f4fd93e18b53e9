"""`feeds-server export|import` (an org's data, F-OPS-3) and `feeds-server user export|erase` (GDPR).

Each command builds its own services, does its work in its own transactions, and prints what it did.
A refusal (an unknown org or email, users the mapping leaves out) exits non-zero and changes nothing.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import orjson
from sqlalchemy import select

from feeds_server.config import Settings
from feeds_server.domain.orgs import normalize_email
from feeds_server.errors import FeedsError
from feeds_server.runtime.services import Services
from feeds_server.store.models import Org, User
from feeds_server.store.scope import account_session


async def _org_id(services: Services, slug: str) -> int:
    async with services.sessions() as session:
        org_id = (await session.execute(select(Org.id).where(Org.slug == slug))).scalar_one_or_none()
    if org_id is None:
        raise SystemExit(f"no org with the slug {slug!r}")
    return org_id


async def _user_id(services: Services, email: str) -> int:
    async with services.sessions() as session:
        user_id = (await session.execute(select(User.id).where(User.email == normalize_email(email)))).scalar_one_or_none()
    if user_id is None:
        raise SystemExit(f"no account with the email {email!r}")
    return user_id


async def export_org(settings: Settings, slug: str, out: str | None) -> int:
    from feeds_server.actions.org_export import export_org as run

    services = Services.build(settings)
    try:
        org_id = await _org_id(services, slug)
        path = Path(out or f"{slug}-export.zip")
        counts = await run(services, org_id, path)
    finally:
        await services.close()
    print(f"exported {slug} to {path}: " + ", ".join(f"{n} {table}" for table, n in counts.items()))
    return 0


async def import_org(settings: Settings, slug: str, archive: str, mapping_path: str, map_unknown_to: str | None) -> int:
    from feeds_server.actions.org_import import ImportRefused, import_org as run
    from feeds_server.store.archive import ArchiveError

    try:
        mapping = json.loads(Path(mapping_path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise SystemExit(f"{mapping_path}: cannot read the user mapping: {exc}") from None
    if not isinstance(mapping, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in mapping.items()):
        raise SystemExit(f"{mapping_path}: the mapping is a JSON object of source email (or id) to target email")
    services = Services.build(settings)
    try:
        org_id = await _org_id(services, slug)
        try:
            report = await run(services, org_id, Path(archive), mapping, map_unknown_to)
        except ImportRefused as exc:
            raise SystemExit(f"import refused, nothing was imported into {slug}:\n{exc}") from None
        except ArchiveError as exc:
            raise SystemExit(f"import stopped: {exc}; the batches written before stay in {slug}") from None
    finally:
        await services.close()
    print(f"imported {archive} into {slug}: " + ", ".join(f"{n} {table}" for table, n in report.counts.items()))
    for line in report.notes:
        print(f"note: {line}")
    return 0


async def export_user(settings: Settings, email: str, out: str | None) -> int:
    from feeds_server.actions.personal_data import personal_data

    services = Services.build(settings)
    try:
        user_id = await _user_id(services, email)
        async with account_session(services.sessions) as session:
            data = await personal_data(session, user_id, services.clock())
    finally:
        await services.close()
    encoded = orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS)
    if out:
        Path(out).write_bytes(encoded)
        print(f"wrote the data of {email} to {out}")
    else:
        sys.stdout.buffer.write(encoded + b"\n")
    return 0


async def erase_user(settings: Settings, email: str, confirmed: bool) -> int:
    from feeds_server.actions.erasure import erase_account

    if not confirmed:
        raise SystemExit("erasing an account cannot be undone: add --yes to go ahead")
    services = Services.build(settings)
    try:
        user_id = await _user_id(services, email)
        try:
            result = await erase_account(services, user_id, "cli")
        except FeedsError as exc:
            raise SystemExit(exc.message) from None
    finally:
        await services.close()
    for org_id, done in result.orgs.items():
        print(f"org {org_id}: " + ", ".join(f"{k} {v}" for k, v in done.summary().items()))
    print(f"erased the account {user_id} and its data in {len(result.orgs)} org(s)")
    return 0
