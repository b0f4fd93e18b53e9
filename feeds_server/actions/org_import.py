"""Importing an org export into another existing org, with a mapping of users (F-OPS-3).

First the whole archive is checked without writing anything: its format and completeness, that every
person it names maps to an existing account of this server (by the mapping, or `map_unknown_to`),
and that the people who become members stay within 10 orgs. Any problem refuses the import with
the full list. Then the archive is read as a stream, one table after the other, and written in
batches, one transaction each, every row with a new id:

- roles, profiles and territories are matched by name (case-insensitive) with the target org's own,
  and created when missing; groups and rules whose names are taken get " (imported)" added;
- names (of roles, profiles, territories, groups, rules, records and files) stored before control
  characters were refused in names are put on one line (domain/names.py), and the report says how many;
- mapped people who are not members yet join with the source member's role and profile; members
  keep theirs; the target org's super admin stays;
- records already known to the target org (same module and CRM id) are kept as they are;
- mention tokens (in earlier texts too), audiences, rule followers and record cards are rewritten
  to the new ids (domain/remap.py); files are copied into this server's storage and checked against
  their SHA-256, and each image or PDF gets a preview job, as on upload, so the worker makes its
  thumbnail again (archives carry none);
- earlier texts of posts and comments, reactions, saved items and pins come along; pins on the org
  feed only while it has free places (5), the newest first;
- every notification setting comes along (a channel choice this server does not know is dropped, and
  told), but when the next digest falls due, which this org's zone decides; follows keep the fields
  they care about and the rule that made them; mutes land on the new record, group or post, and
  dormancy notices keep a follower from being told again of a record they were told of;
- unticked feed modules of the source are unticked in the target too; the target's edit window
  stays (the report says when the source's was another).

An archive of an earlier format version (store/archive.py) imports too: what it lacks is left out.

Old-to-new ids are kept in a small database file beside the import, not in memory. Each batch's
transaction appends an `org.import_batch` event; the last appends `org.imported` on the `org`
channel, which tells connected clients to reload their feeds, and writes the audit log. Integrations,
webhooks, invitations, the event history and the audit log of the source are not imported.
"""

from __future__ import annotations

import hashlib
import sqlite3
import tempfile
from collections.abc import AsyncIterator, Iterable, Iterator
from contextlib import asynccontextmanager
from itertools import groupby
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Table, func, insert, null, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from feeds_server import limits
from feeds_server.actions import audit
from feeds_server.actions.orgs import join_org
from feeds_server.actions.posts import insert_attachments
from feeds_server.domain import names
from feeds_server.domain import permissions as perms
from feeds_server.domain.audience import ORG, SOURCE_GROUP, SOURCE_USER, group_channel, user_channel
from feeds_server.domain.file_types import HEAD_BYTES, PREVIEW_NONE, PREVIEW_PENDING, previewable, sniff
from feeds_server.domain.orgs import normalize_email
from feeds_server.domain.preferences import check_channels
from feeds_server.domain.remap import remap_channels, remap_followers, remap_reason, remap_record_ref, remap_text
from feeds_server.errors import FeedsError
from feeds_server.runtime.services import Services
from feeds_server.store.archive import TABLES, ArchiveError, ArchiveReader
from feeds_server.store.base import UTCDateTime
from feeds_server.store.bulk import insert_many, insert_returning_ids
from feeds_server.store.events import append_event, take_committed_events
from feeds_server.store.files import LocalFileStore, TempFile
from feeds_server.store.models import (
    AutoFollowRule,
    Comment,
    DormancyNotice,
    Follow,
    Group,
    GroupSource,
    ItemVersion,
    Membership,
    Mention,
    Mute,
    Notification,
    NotificationSettings,
    Org,
    Pin,
    Post,
    PostAudience,
    Profile,
    Reaction,
    Record,
    Role,
    SavedItem,
    Territory,
    TerritoryMember,
    User,
)
from feeds_server.store.scope import CROSS_ORG, allow_cross_org, set_org

BATCH = 500
IMPORTED_SUFFIX = " (imported)"
# The tables of people and structure: small, gathered, and written in one transaction.
STRUCTURE = ("role", "profile", "territory", "territory_member", "notification_settings", "group")


class ImportRefused(Exception):
    """The archive cannot be imported as it is; the message lists every reason. Nothing was written."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(f"- {p}" for p in problems))


@dataclass
class ImportReport:
    counts: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def add(self, table: str, n: int) -> None:
        self.counts[table] = self.counts.get(table, 0) + n


class IdMap:
    """Old id → new id, per kind, in a database file: an org's posts need not fit in memory."""

    def __init__(self, folder: Path) -> None:
        self._db = sqlite3.connect(folder / "ids.db")
        self._db.execute("CREATE TABLE ids (kind TEXT, old INTEGER, new INTEGER, PRIMARY KEY (kind, old)) WITHOUT ROWID")

    def put(self, kind: str, pairs: Iterable[tuple[int, int]]) -> None:
        self._db.executemany("INSERT OR REPLACE INTO ids VALUES (?, ?, ?)", ((kind, old, new) for old, new in pairs))

    def get(self, kind: str, old: int | None) -> int | None:
        if old is None:
            return None
        row = self._db.execute("SELECT new FROM ids WHERE kind = ? AND old = ?", (kind, old)).fetchone()
        return row[0] if row else None

    def pairs(self, kind: str) -> Iterator[list[tuple[int, int]]]:
        """The pairs of one kind, a batch at a time."""
        cursor = self._db.execute("SELECT old, new FROM ids WHERE kind = ? ORDER BY old", (kind,))
        while batch := cursor.fetchmany(BATCH):
            yield batch

    def close(self) -> None:
        self._db.close()


@dataclass
class _Plan:
    """What the check found: whom each source person becomes, and who joins the org."""

    users: dict[int, int]  # source user id -> target user id
    names: dict[int, str]  # target user id -> name
    joining: dict[int, dict[str, Any]]  # target user id -> the source membership they join with
    notes: list[str]


async def import_org(
    services: Services, org_id: int, path: Path, mapping: dict[str, str], map_unknown_to: str | None = None
) -> ImportReport:
    try:
        archive = ArchiveReader(path)
    except ArchiveError as exc:
        raise ImportRefused([str(exc)]) from None
    try:
        plan = await _check(services, org_id, archive, mapping, map_unknown_to)
        with tempfile.TemporaryDirectory(prefix="feeds-import-") as folder:
            ids = IdMap(Path(folder))
            try:
                importer = _Importer(services, org_id, archive, plan, ids)
                await importer.run()
            finally:
                ids.close()
        return importer.report
    finally:
        archive.close()


# --- the check, before anything is written ----------------------------------------------------
async def _check(services: Services, org_id: int, archive: ArchiveReader, mapping: dict[str, str], map_unknown_to: str | None) -> _Plan:
    problems: list[str] = []
    sources: dict[int, tuple[str, str]] = {}  # id -> (email, name)
    members: dict[int, dict[str, Any]] = {}
    seen: dict[str, int] = {}
    end: dict[str, Any] | None = None
    missing_files = set(archive.header.get("missing_files") or [])
    for line in archive.lines():
        table = line["t"]
        if table == "end":
            end = line
        elif table in TABLES:
            seen[table] = seen.get(table, 0) + 1
        elif table != "header":
            problems.append(f"the manifest has rows of a table this server does not know: {table!r}")
            break
        if table == "user":
            sources[line["id"]] = (line["email"], line["name"])
        elif table == "membership":
            members[line["user_id"]] = line
        elif table == "post":
            for a in line["attachments"]:
                if not archive.has_file(a["id"]) and a["id"] not in missing_files:
                    problems.append(f"the file of attachment {a['id']} ({a['filename']}) is not in the archive")
    if end is None:
        problems.append("the archive is cut off: its manifest has no end line")
    elif end["counts"] != seen:
        problems.append(f"the manifest's rows {seen} do not match the counts it ends with {end['counts']}")

    wanted = {key.strip().lower(): email for key, value in mapping.items() if (email := _email(key, value, problems))}
    fallback = _email("--map-unknown-to", map_unknown_to, problems) if map_unknown_to else None
    targets: dict[int, str] = {}
    unmapped = []
    for user_id, (email, name) in sorted(sources.items()):
        target = wanted.get(email.lower()) or wanted.get(str(user_id)) or fallback
        if target is None:
            unmapped.append(f"{email} (id {user_id}, {name}{', member' if user_id in members else ''})")
        else:
            targets[user_id] = target
    if unmapped:
        problems.append("people of the archive the mapping leaves out (map them, or use --map-unknown-to EMAIL):\n    "
                        + "\n    ".join(unmapped))
    known = {e.lower() for e, _ in sources.values()} | {str(i) for i in sources}
    notes = [f"the mapping names {key!r}, who is not in the archive" for key in mapping if key.strip().lower() not in known]

    async with services.sessions() as session:
        allow_cross_org(session)
        accounts = {
            email: (user_id, name)
            for user_id, email, name in await session.execute(select(User.id, User.email, User.name).where(User.email.in_(set(targets.values()))))
        }
        missing = sorted(set(targets.values()) - set(accounts))
        if missing:
            problems.append("target emails with no account on this server: " + ", ".join(missing))
        org = (await session.execute(select(Org).where(Org.id == org_id))).scalar_one()
        source_org = archive.header.get("org") or {}
        if source_org.get("id") == org.id and source_org.get("slug") == org.slug:
            problems.append("this archive was exported from this very org: import it into another one")
        already = set(
            (await session.execute(select(Membership.user_id).where(Membership.org_id == org_id).execution_options(**CROSS_ORG))).scalars()
        )
        joining: dict[int, dict[str, Any]] = {}
        for source_id, member in members.items():
            account = accounts.get(targets.get(source_id, ""))
            if account is not None and account[0] not in already:
                joining.setdefault(account[0], member)
        full = await _at_org_limit(session, list(joining))
        if full:
            names = {uid: email for email, (uid, _) in accounts.items()}
            problems.append(f"these people already belong to {limits.MAX_ORGS_PER_USER} orgs and cannot join: "
                            + ", ".join(names[u] for u in full))
    if problems:
        raise ImportRefused(problems)
    users = {source_id: accounts[email][0] for source_id, email in targets.items()}
    return _Plan(users, {uid: name for uid, name in accounts.values()}, joining, notes)


def _email(key: str, value: str, problems: list[str]) -> str | None:
    """A target email as accounts store it, or None (and the problem noted)."""
    try:
        return normalize_email(value)
    except FeedsError:
        problems.append(f"the target of {key!r} is not an email address: {value!r}")
        return None


async def _at_org_limit(session: AsyncSession, user_ids: list[int]) -> list[int]:
    if not user_ids:
        return []
    stmt = (
        select(Membership.user_id, func.count())
        .where(Membership.user_id.in_(user_ids))
        .group_by(Membership.user_id)
        .execution_options(**CROSS_ORG)
    )
    return sorted(u for u, n in (await session.execute(stmt)).all() if n >= limits.MAX_ORGS_PER_USER)


# --- the import ---------------------------------------------------------------------------------
class _Importer:
    def __init__(self, services: Services, org_id: int, archive: ArchiveReader, plan: _Plan, ids: IdMap) -> None:
        self.services, self.org_id, self.archive, self.plan, self.ids = services, org_id, archive, plan, ids
        self.report = ImportReport(notes=list(plan.notes))
        self.files = LocalFileStore(services.settings.files_dir)
        self.now = services.clock()
        self.ids.put("user", plan.users.items())
        self._structure_written = False
        self._renamed: dict[str, int] = {}
        self._org_pin_room: int | None = None  # free places on the target's org feed, read at the first pin

    def name(self, kind: str, raw: str) -> str:
        """`raw`, or `raw` on one line when it holds control characters or line breaks (counted for the report)."""
        if names.first_forbidden(raw) is None:
            return raw
        self._renamed[kind] = self._renamed.get(kind, 0) + 1
        return names.one_line(raw) or kind

    def lookup(self, kind: str, old: int) -> int | None:
        return self.ids.get(kind, old)

    @asynccontextmanager
    async def _transaction(self, table: str | None) -> AsyncIterator[AsyncSession]:
        """One batch of `table`: its rows and its event commit together, then the events are published."""
        async with self.services.sessions() as session:
            set_org(session, self.org_id)
            async with session.begin():
                yield session
                if table is not None:
                    append_event(session, "org.import_batch", {"table": table, "rows_so_far": self.report.counts.get(table, 0)})
        await self.services.publish(take_committed_events(session))

    async def run(self) -> None:
        """One pass over the manifest: the small tables of people and structure are gathered and
        written together in one transaction, then the large ones stream by in batches."""
        structure: dict[str, list[dict[str, Any]]] = {table: [] for table in STRUCTURE}
        streams = {"record": self._records, "follow": self._follows, "post": self._posts, "comment": self._comments,
                   "item_version": self._versions, "reaction": self._reactions, "saved_item": self._saved_items, "pin": self._pins,
                   "notification": self._notifications, "mute": self._mutes, "dormancy_notice": self._dormancy_notices}
        for table, rows in groupby(self.archive.lines(), key=lambda line: line["t"]):
            if table in structure:
                structure[table].extend(rows)
                continue
            if table not in streams and table != "rule":
                continue  # the header and end lines; people and memberships were settled by the check
            await self._structure(structure)
            if table == "rule":
                async with self._transaction("rule") as session:
                    await self._rules(session, rows)
            else:
                await self._batches(table, streams[table], rows)
        await self._structure(structure)
        self.report.notes += [f"{n} {kind} name(s) held control characters or line breaks: imported on one line"
                              for kind, n in sorted(self._renamed.items())]
        for pairs in self.ids.pairs("last_post"):
            async with self._transaction("record") as session:
                for record_id, old_post in pairs:
                    await session.execute(update(Record).where(Record.id == record_id).values(last_post_id=self.lookup("post", old_post)))
        async with self._transaction(None) as session:
            source = self.archive.header.get("org") or {}
            summary = {"source": {"slug": source.get("slug"), "name": source.get("name")}, "counts": self.report.counts}
            append_event(session, "org.imported", summary, None, [ORG])
            audit.record(session, "org.imported", None, ("org", self.org_id), {"via": "cli", **summary}, self.now)

    async def _batches(self, table: str, write: Any, rows: Iterable[dict[str, Any]]) -> None:
        batch: list[dict[str, Any]] = []
        for row in rows:
            batch.append(row)
            if len(batch) == BATCH:
                await self._write(table, write, batch)
                batch = []
        if batch:
            await self._write(table, write, batch)

    async def _write(self, table: str, write: Any, batch: list[dict[str, Any]]) -> None:
        written: list[str] = []
        try:
            async with self._transaction(table) as session:
                await write(session, batch, written)
        except BaseException:
            for key in written:  # files copied for a batch that did not commit
                await self.files.delete(key)
            raise

    # --- people and structure: one transaction ---------------------------------------------
    async def _structure(self, rows: dict[str, list[dict[str, Any]]]) -> None:
        """Written once, before the first table that refers to it."""
        if self._structure_written:
            return
        self._structure_written = True
        async with self._transaction("structure") as session:
            org = (await session.execute(select(Org).where(Org.id == self.org_id))).scalar_one()
            await self._modules(session, org)
            self._edit_window(org)
            await self._tree(session, Role, "role", rows["role"])
            await self._profiles(session, rows["profile"])
            await self._tree(session, Territory, "territory", rows["territory"])
            await self._memberships(session, org)
            await self._territory_members(session, rows["territory_member"])
            await self._notification_settings(session, rows["notification_settings"])
            await self._groups(session, rows["group"])

    async def _modules(self, session: AsyncSession, org: Org) -> None:
        source = set((self.archive.header.get("org") or {}).get("disabled_modules") or [])
        merged = sorted(set(org.disabled_modules or []) | source)
        if merged != sorted(org.disabled_modules or []):
            org.disabled_modules = merged
            append_event(session, "feed_modules.updated", {"disabled_modules": merged}, None, [ORG])

    def _edit_window(self, org: Org) -> None:
        """The target's edit window stays, as its other settings do; a different one of the source is told."""
        source = self.archive.header.get("org") or {}
        if "edit_window_seconds" not in source or source["edit_window_seconds"] == org.edit_window_seconds:
            return
        self.report.notes.append(f"the source org's edit window was {_window(source['edit_window_seconds'])}; "
                                 f"this org's stays {_window(org.edit_window_seconds)}")

    async def _tree(self, session: AsyncSession, model: type[Role] | type[Territory], kind: str, rows: list[dict[str, Any]]) -> None:
        """Roles or territories: the target org's node of the same name, or a new one under the mapped parent."""
        existing = {name.lower(): node_id for node_id, name in await session.execute(select(model.id, model.name))}
        created: list[tuple[Any, int | None]] = []
        for row in rows:
            name = self.name(kind, row["name"])
            node_id = existing.get(name.lower())
            if node_id is None:
                node = model(name=name, parent_id=None)
                session.add(node)
                await session.flush()
                node_id = existing[name.lower()] = node.id
                created.append((node, row["parent_id"]))
            self.ids.put(kind, [(row["id"], node_id)])
        for node, old_parent in created:
            node.parent_id = self.lookup(kind, old_parent) if old_parent is not None else None
            append_event(session, f"{kind}.created", {"id": node.id, "name": node.name, "parent_id": node.parent_id})
        self.report.add(kind, len(created))
        await session.flush()

    async def _profiles(self, session: AsyncSession, rows: list[dict[str, Any]]) -> None:
        existing = {name.lower(): pid for pid, name in await session.execute(select(Profile.id, Profile.name))}
        created = 0
        for row in rows:
            name = self.name("profile", row["name"])
            profile_id = existing.get(name.lower())
            if profile_id is None:
                profile = Profile(name=name, permissions=sorted(set(row["permissions"] or []) & perms.PROFILE_PERMISSIONS))
                session.add(profile)
                await session.flush()
                profile_id = existing[name.lower()] = profile.id
                append_event(session, "profile.created", {"id": profile.id, "permissions": profile.permissions})
                created += 1
            self.ids.put("profile", [(row["id"], profile_id)])
        self.report.add("profile", created)

    async def _memberships(self, session: AsyncSession, org: Org) -> None:
        fallback = (await session.execute(select(Profile.id).where(Profile.name == perms.STANDARD_PROFILE))).scalar_one_or_none()
        fallback = fallback or (await session.execute(select(Profile.id).order_by(Profile.id))).scalars().first()
        for user_id, member in self.plan.joining.items():
            user = (await session.execute(select(User).where(User.id == user_id))).scalar_one()
            profile_id = self.lookup("profile", member["profile_id"]) or fallback
            role_id = self.lookup("role", member["role_id"]) if member["role_id"] is not None else None
            assert profile_id is not None, "every org has a profile"
            await join_org(session, user, org, profile_id, role_id, self.now)
        self.report.add("membership", len(self.plan.joining))

    async def _territory_members(self, session: AsyncSession, rows: list[dict[str, Any]]) -> None:
        values = []
        for row in rows:
            territory, user = self.lookup("territory", row["territory_id"]), self.lookup("user", row["user_id"])
            if territory is not None and user is not None:
                values.append({"org_id": self.org_id, "territory_id": territory, "user_id": user})
        self.report.add("territory_member", await _insert_new(session, TerritoryMember.__table__, values))

    async def _notification_settings(self, session: AsyncSession, rows: list[dict[str, Any]]) -> None:
        """Every choice the archive holds (an earlier version holds fewer: the rest are the defaults)."""
        values, dropped = [], 0
        for row in rows:
            user = self.lookup("user", row["user_id"])
            if user is None:
                continue
            value: dict[str, Any] = {"org_id": self.org_id, "user_id": user}
            for column in NotificationSettings.__table__.columns:
                if column.key in row and column.key not in _SETTINGS_KEPT_HERE:
                    raw = row[column.key]
                    value[column.key] = _time(raw) if isinstance(column.type, UTCDateTime) else raw
            if "channels" in value:
                try:
                    value["channels"] = check_channels(value["channels"] or {})
                except (ValueError, AttributeError):
                    value["channels"], dropped = {}, dropped + 1
            values.append(value)
        if dropped:
            self.report.notes.append(f"{dropped} person(s)' channel choices were not ones this server knows: they have the defaults")
        self.report.add("notification_settings", await _insert_new(session, NotificationSettings.__table__, values))

    async def _groups(self, session: AsyncSession, rows: list[dict[str, Any]]) -> None:
        taken = {name.lower() for name in (await session.execute(select(Group.name))).scalars()}
        groups: list[tuple[Group, list[list[Any]]]] = []
        for row in rows:
            clean = self.name("group", row["name"])
            name = _free_name(clean, taken, limits.MAX_NAME_CHARS)
            if name != clean:
                self.report.notes.append(f"group {row['name']!r} is imported as {name!r}: the name was taken")
            group = Group(name=name, description=row["description"], created_by_user_id=self.lookup("user", row["created_by_user_id"]),
                          created_at=_time(row["created_at"]))
            session.add(group)
            await session.flush()
            self.ids.put("group", [(row["id"], group.id)])
            groups.append((group, row["sources"]))
        for group, sources in groups:
            refs = {(kind, new) for kind, old in sources if (new := self.lookup(_source_kind(kind), old)) is not None}
            session.add_all(GroupSource(group_id=group.id, kind=kind, ref_id=ref) for kind, ref in sorted(refs))
            # Real time subscribes the group's members to it, as for a group made by hand.
            append_event(session, "group.created", {"group_id": group.id, "name": group.name}, None, [group_channel(group.id)])
        await session.flush()
        self.report.add("group", len(groups))

    # --- records, follows, rules ------------------------------------------------------------
    async def _records(self, session: AsyncSession, batch: list[dict[str, Any]], _files: list[str]) -> None:
        existing = {
            (module, crm_id): record_id
            for record_id, module, crm_id in await session.execute(
                select(Record.id, Record.module, Record.crm_id).where(Record.crm_id.in_({r["crm_id"] for r in batch}))
            )
        }
        new = [r for r in batch if (r["module"], r["crm_id"]) not in existing]
        rows = [
            {"org_id": self.org_id, "module": r["module"], "crm_id": r["crm_id"], "name": r["name"] and self.name("record", r["name"]),
             "owner_id": self.lookup("user", r["owner_id"]), "creator_id": self.lookup("user", r["creator_id"]),
             "territory_id": self.lookup("territory", r["territory_id"]), "fields": r["fields"], "key_fields": r["key_fields"],
             "last_post_id": None, "created_at": _time(r["created_at"]), "last_activity_at": _time(r["last_activity_at"]),
             "deleted_at": _time(r["deleted_at"])}
            for r in new
        ]
        new_ids = await insert_returning_ids(session, Record.__table__, rows)
        self.ids.put("record", [(r["id"], existing[(r["module"], r["crm_id"])]) for r in batch if (r["module"], r["crm_id"]) in existing])
        self.ids.put("record", [(r["id"], i) for r, i in zip(new, new_ids, strict=True)])
        self.ids.put("last_post", [(i, r["last_post_id"]) for r, i in zip(new, new_ids, strict=True) if r["last_post_id"] is not None])
        if len(new) < len(batch):
            self.report.notes.append(f"{len(batch) - len(new)} record(s) were already in the org and kept as they were")
        self.report.add("record", len(new))

    async def _follows(self, session: AsyncSession, batch: list[dict[str, Any]], _files: list[str]) -> None:
        rows = []
        for r in batch:
            record, user = self.lookup("record", r["record_id"]), self.lookup("user", r["user_id"])
            if record is not None and user is not None:
                fields = r.get("fields")
                rows.append({"org_id": self.org_id, "record_id": record, "user_id": user, "module": r["module"], "source": r["source"],
                             "rule_id": self.lookup("rule", r.get("rule_id")), "fields": null() if fields is None else fields,
                             "last_activity_at": _time(r["last_activity_at"]), "created_at": _time(r["created_at"])})
        self.report.add("follow", await _insert_new(session, Follow.__table__, rows))

    async def _rules(self, session: AsyncSession, rules: Iterable[dict[str, Any]]) -> None:
        """Within the limit of 5 per module for each creator (F-FOLLOW-6): a rule past it is left out, and said so."""
        created = 0
        for r in rules:
            creator = self.lookup("user", r["creator_id"])
            if creator is None:
                continue
            mine = select(AutoFollowRule.name).where(AutoFollowRule.creator_id == creator, AutoFollowRule.module == r["module"])
            taken = {n.lower() for n in (await session.execute(mine)).scalars()}
            if len(taken) >= limits.MAX_RULES_PER_MODULE_PER_CREATOR:
                self.report.notes.append(f"rule {r['name']!r} ({r['module']}) left out: its creator has "
                                         f"{limits.MAX_RULES_PER_MODULE_PER_CREATOR} rules of that module already")
                continue
            rule = AutoFollowRule(
                creator_id=creator, name=_free_name(self.name("rule", r["name"]), taken, limits.MAX_NAME_CHARS), description=r["description"], module=r["module"],
                criteria=r["criteria"], followers=remap_followers(r["followers"] or {}, self.lookup), fields=r.get("fields"), version=1,
                created_at=_time(r["created_at"]), updated_at=_time(r["updated_at"]),
            )
            session.add(rule)
            await session.flush()
            self.ids.put("rule", [(r["id"], rule.id)])  # for follows and notifications' reasons
            append_event(session, "rule.created", {"rule_id": rule.id, "module": rule.module}, None, [user_channel(creator)])
            created += 1
        self.report.add("rule", created)

    # --- posts, comments, notifications -----------------------------------------------------
    async def _posts(self, session: AsyncSession, batch: list[dict[str, Any]], files: list[str]) -> None:
        kept = [p for p in batch if p["group_id"] is None or self.lookup("group", p["group_id"]) is not None]
        rows = [
            {"org_id": self.org_id, "kind": p["kind"], "author_id": self.lookup("user", p["author_id"]), "body": remap_text(p["body"], self.lookup),
             "group_id": self.lookup("group", p["group_id"]), "recipient_id": self.lookup("user", p["recipient_id"]), "module": p["module"],
             "data": remap_record_ref(p["data"] or {}, self.lookup, self.plan.names.get), "comment_count": p["comment_count"],
             "created_at": _time(p["created_at"]), "edited_at": _time(p.get("edited_at"))}
            for p in kept
        ]
        new_ids = await insert_returning_ids(session, Post.__table__, rows)
        self.ids.put("post", [(p["id"], i) for p, i in zip(kept, new_ids, strict=True)])
        audience, mentions, attachments = [], [], []
        for p, post_id, row in zip(kept, new_ids, rows, strict=True):
            for channel in remap_channels(p["audience"], self.lookup):
                audience.append({"org_id": self.org_id, "post_id": post_id, "channel": channel, "module": row["module"], "created_at": row["created_at"]})
            mentions += self._mention_rows(p["mentions"], post_id, None)
            for a in p["attachments"]:
                stored = await self._copy_file(a, files)
                if stored is not None:
                    attachments.append({"org_id": self.org_id, "post_id": post_id, **stored})
        for table, values in ((PostAudience.__table__, audience), (Mention.__table__, mentions)):
            if values:
                await session.execute(insert(table), values)
        await insert_attachments(session, self.org_id, attachments)
        self.report.add("post", len(kept))
        self.report.add("attachment", len(attachments))
        self.report.add("preview_job", sum(a["preview_state"] == PREVIEW_PENDING for a in attachments))

    def _mention_rows(self, mentions: list[list[Any]], post_id: int, comment_id: int | None) -> list[dict[str, Any]]:
        refs = {(kind, new) for kind, old in mentions if (new := self.lookup(kind, old)) is not None}
        return [{"org_id": self.org_id, "post_id": post_id, "comment_id": comment_id, "kind": kind, "target_id": target} for kind, target in sorted(refs)]

    async def _copy_file(self, a: dict[str, Any], written: list[str]) -> dict[str, Any] | None:
        """The attachment's bytes into this server's storage under a new key, checked against their hash."""
        if not self.archive.has_file(a["id"]):
            self.report.notes.append(f"attachment {a['filename']!r} had no file in the source: left out")
            return None
        temp: TempFile = await self.files.open_temp()
        digest, size, head = hashlib.sha256(), 0, b""
        try:
            for chunk in self.archive.read_file(a["id"]):
                if len(head) < HEAD_BYTES:
                    head = (head + chunk)[:HEAD_BYTES]
                digest.update(chunk)
                size += len(chunk)
                temp.write(chunk)
            if digest.hexdigest() != a["sha256"] or size != a["size"]:
                raise ArchiveError(f"the file of attachment {a['id']} ({a['filename']}) does not match its SHA-256")
            key = temp.commit()
        except BaseException:
            temp.discard()
            raise
        written.append(key)
        return {"filename": self.name("file", a["filename"]), "content_type": a["content_type"], "size": a["size"], "sha256": a["sha256"],
                "storage_key": key, "created_at": _time(a["created_at"]),
                # What the bytes are decides the preview, as on upload (actions/posts.py).
                "preview_state": PREVIEW_PENDING if previewable(sniff(head)) else PREVIEW_NONE}

    async def _comments(self, session: AsyncSession, batch: list[dict[str, Any]], _files: list[str]) -> None:
        kept = [(c, post) for c in batch if (post := self.lookup("post", c["post_id"])) is not None]
        rows = [
            {"org_id": self.org_id, "post_id": post, "author_id": self.lookup("user", c["author_id"]), "body": remap_text(c["body"], self.lookup),
             "data": c["data"] or {}, "created_at": _time(c["created_at"]), "edited_at": _time(c.get("edited_at"))}
            for c, post in kept
        ]
        new_ids = await insert_returning_ids(session, Comment.__table__, rows)
        self.ids.put("comment", [(c["id"], i) for (c, _), i in zip(kept, new_ids, strict=True)])
        mentions = [m for (c, post), i in zip(kept, new_ids, strict=True) for m in self._mention_rows(c["mentions"], post, i)]
        if mentions:
            await session.execute(insert(Mention.__table__), mentions)
        self.report.add("comment", len(kept))

    def _item(self, row: dict[str, Any]) -> tuple[int, int | None] | None:
        """The new (post, comment) of a row about a post or one of its comments; None when it did not come along."""
        post = self.lookup("post", row["post_id"])
        comment = self.lookup("comment", row["comment_id"])
        if post is None or (row["comment_id"] is not None and comment is None):
            return None
        return post, comment

    async def _versions(self, session: AsyncSession, batch: list[dict[str, Any]], _files: list[str]) -> None:
        """Earlier texts, in their order (the history lists them by id), with who replaced and who hid them."""
        rows = []
        for v in batch:
            item = self._item(v)
            if item is None:
                continue
            rows.append({"org_id": self.org_id, "post_id": item[0], "comment_id": item[1], "body": remap_text(v["body"], self.lookup),
                         "written_at": _time(v["written_at"]), "replaced_at": _time(v["replaced_at"]),
                         "replaced_by_user_id": self.lookup("user", v["replaced_by_user_id"]), "hidden_at": _time(v["hidden_at"]),
                         "hidden_by_user_id": self.lookup("user", v["hidden_by_user_id"])})
        await insert_many(session, ItemVersion.__table__, rows)
        self.report.add("item_version", len(rows))

    async def _reactions(self, session: AsyncSession, batch: list[dict[str, Any]], _files: list[str]) -> None:
        """In their order (counts list emojis first used first); two source people who became one keep one of each emoji."""
        rows = []
        for r in batch:
            item, user = self._item(r), self.lookup("user", r["user_id"])
            if item is not None and user is not None:
                rows.append({"org_id": self.org_id, "post_id": item[0], "comment_id": item[1], "user_id": user, "emoji": r["emoji"],
                             "created_at": _time(r["created_at"])})
        self.report.add("reaction", await _insert_new(session, Reaction.__table__, rows))

    async def _saved_items(self, session: AsyncSession, batch: list[dict[str, Any]], _files: list[str]) -> None:
        rows = []
        for r in batch:
            post, user = self.lookup("post", r["post_id"]), self.lookup("user", r["user_id"])
            if post is not None and user is not None:
                rows.append({"org_id": self.org_id, "user_id": user, "post_id": post, "created_at": _time(r["created_at"])})
        self.report.add("saved_item", await _insert_new(session, SavedItem.__table__, rows))

    async def _pins(self, session: AsyncSession, batch: list[dict[str, Any]], _files: list[str]) -> None:
        """Group pins land in the new groups; org feed pins take the free places of the target's org
        feed, newest first (the archive lists pins so), and the rest are left out and told."""
        if self._org_pin_room is None:
            taken = (await session.execute(select(func.count()).select_from(Pin).where(Pin.group_id.is_(None)))).scalar_one()
            self._org_pin_room = max(limits.MAX_PINS_PER_PLACE - taken, 0)
        rows, left_out = [], 0
        for p in batch:
            post, group = self.lookup("post", p["post_id"]), self.lookup("group", p["group_id"])
            if post is None or (p["group_id"] is not None and group is None):
                continue
            if group is None:
                if self._org_pin_room == 0:
                    left_out += 1
                    continue
                self._org_pin_room -= 1
            rows.append({"org_id": self.org_id, "post_id": post, "group_id": group, "pinned_by_user_id": self.lookup("user", p["pinned_by_user_id"]),
                         "created_at": _time(p["created_at"])})
        if left_out:
            self.report.notes.append(f"{left_out} pin(s) of the org feed left out: it has {limits.MAX_PINS_PER_PLACE} pinned posts already")
        self.report.add("pin", await _insert_new(session, Pin.__table__, rows))

    async def _notifications(self, session: AsyncSession, batch: list[dict[str, Any]], _files: list[str]) -> None:
        rows = []
        for n in batch:
            user, post = self.lookup("user", n["user_id"]), self.lookup("post", n["post_id"])
            if user is None or (n["post_id"] is not None and post is None):
                continue
            rows.append({"org_id": self.org_id, "user_id": user, "kind": n["kind"], "actor_id": self.lookup("user", n["actor_id"]), "post_id": post,
                         "comment_id": self.lookup("comment", n["comment_id"]), "data": remap_record_ref(n["data"] or {}, self.lookup),
                         "reason": remap_reason(n.get("reason"), self.lookup), "record_id": self.lookup("record", n.get("record_id")),
                         "created_at": _time(n["created_at"]), "updated_at": _time(n.get("updated_at")), "read_at": _time(n["read_at"])})
        if rows:
            await session.execute(insert(Notification.__table__), rows)
        self.report.add("notification", len(rows))


    async def _mutes(self, session: AsyncSession, batch: list[dict[str, Any]], _files: list[str]) -> None:
        """On the new record, group or post; a mute of something that did not come along is left out."""
        rows = []
        for m in batch:
            if m["target_kind"] not in _MUTE_KINDS:
                continue
            user, target = self.lookup("user", m["user_id"]), self.lookup(m["target_kind"], m["target_id"])
            if user is not None and target is not None:
                rows.append({"org_id": self.org_id, "user_id": user, "target_kind": m["target_kind"], "target_id": target,
                             "created_at": _time(m["created_at"])})
        self.report.add("mute", await _insert_new(session, Mute.__table__, rows))

    async def _dormancy_notices(self, session: AsyncSession, batch: list[dict[str, Any]], _files: list[str]) -> None:
        rows = []
        for d in batch:
            record, user = self.lookup("record", d["record_id"]), self.lookup("user", d["user_id"])
            if record is not None and user is not None:
                rows.append({"org_id": self.org_id, "record_id": record, "user_id": user,
                             "last_activity_at": _time(d["last_activity_at"]), "created_at": _time(d["created_at"])})
        self.report.add("dormancy_notice", await _insert_new(session, DormancyNotice.__table__, rows))


# Settings columns the importing org decides: its own id, whom they belong to, and when a digest
# next falls due (planned in this org's zone by notify/digests.py).
_SETTINGS_KEPT_HERE = frozenset({"org_id", "user_id", "digest_due_at"})
_MUTE_KINDS = frozenset({"record", "group", "post"})


def _source_kind(kind: str) -> str:
    """The id space a group source refers to: a user, a group, or a role (with or without subordinates)."""
    return kind if kind in (SOURCE_USER, SOURCE_GROUP) else "role"


def _free_name(name: str, taken: set[str], limit: int) -> str:
    """`name`, or `name (imported)`, `name (imported 2)` … when taken; the name is then taken."""
    candidate, n = name, 1
    while candidate.lower() in taken:
        suffix = IMPORTED_SUFFIX if n == 1 else f" (imported {n})"
        candidate = name[: limit - len(suffix)] + suffix
        n += 1
    taken.add(candidate.lower())
    return candidate


def _window(seconds: int | None) -> str:
    return "unlimited" if seconds is None else "off" if seconds == 0 else f"{seconds} seconds"


def _time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value is not None else None


async def _insert_new(session: AsyncSession, table: Table, rows: list[dict[str, Any]]) -> int:
    """Insert the rows the table does not hold yet (two source people may be one target person)."""
    if not rows:
        return 0
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    result = await session.execute(dialect.insert(table).values(rows).on_conflict_do_nothing())
    return max(result.rowcount or 0, 0)  # type: ignore[attr-defined]
