"""A digest email: what happened in one period on a person's records and in their groups.

Composed when it is sent, for every digest of a claim together with a fixed number of queries
(about ten, whatever the number of digests): the people and their settings, each org's role tree
and groups, their mutes, the record items in their audience, the posts of their groups, the
comments on either, and their dormancy notices, all within the claim's periods. Each person's
share is then picked out in memory: only their period, not their own doing, nothing they muted,
and only what they can see (a record item addressed to them, a post of a group they belong to).

Nothing to tell, the digest turned off since it was queued, or the person snoozed or gone from the
org: the job is skipped, no email. The Message-ID names the person and the period, so a digest
retried after a worker died mid-send carries the same one.
"""

from __future__ import annotations

import html
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.message import Message
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import DBAPIError

from feeds_server import limits
from feeds_server.config import Settings
from feeds_server.domain.audience import (
    SOURCE_GROUP,
    SOURCE_ROLE,
    SOURCE_ROLE_AND_SUBORDINATES,
    SOURCE_USER,
    OrgGraph,
    group_channel,
    user_channel,
)
from feeds_server.domain.names import one_line
from feeds_server.domain.preferences import DIGEST, DIGEST_OFF, EMAIL, Preferences, zone
from feeds_server.notify import outbox
from feeds_server.notify.emails import _message, digest_unsubscribe_token
from feeds_server.runtime.services import Services
from feeds_server.store.models import (
    Comment,
    DormancyNotice,
    EmailJob,
    Group,
    GroupSource,
    Membership,
    Mute,
    NotificationSettings,
    Org,
    Post,
    PostAudience,
    Record,
    Role,
    User,
)
from feeds_server.store.scope import account_session

log = logging.getLogger("feeds_server.notifier")

KIND = "digest"
RECORD_POST, GROUP_POST = "record", "group"

Composed = tuple[Message | None, list[int], list[int]]  # as notify/worker.py: (message, sent job ids, skipped job ids)
ComposeMany = Callable[[Services, list[outbox.Batch]], Awaitable[list[Composed | Exception]]]


@dataclass
class Entry:
    """One record or group of a digest, with its counts."""

    id: int
    name: str
    module: str | None = None
    changes: int = 0  # record items (changes, notes) or group posts
    comments: int = 0

    @property
    def total(self) -> int:
        return self.changes + self.comments


@dataclass
class Dormant:
    id: int
    name: str
    module: str
    last_activity_at: datetime


@dataclass
class Digest:
    """A person's digest for one period, before rendering."""

    records: dict[int, Entry] = field(default_factory=dict)
    groups: dict[int, Entry] = field(default_factory=dict)
    dormant: list[Dormant] = field(default_factory=list)

    def empty(self) -> bool:
        return not self.records and not self.groups and not self.dormant


@dataclass
class _Job:
    batch: outbox.Batch
    job_id: int
    org: Org
    user: User
    role_id: int | None
    start: datetime
    end: datetime
    frequency: str
    time_zone: str


async def compose_mixed(services: Services, batches: list[outbox.Batch], others: ComposeMany) -> list[Composed | Exception]:
    """The worker's composing step for a claim that holds digests: digests here, the rest by `others`,
    answers in the claim's order."""
    digests = [b for b in batches if b.kind == KIND]
    rest = [b for b in batches if b.kind != KIND]
    done: dict[int, Composed | Exception] = {}
    if rest:
        done.update(zip((id(b) for b in rest), await others(services, rest)))
    if digests:
        done.update(zip((id(b) for b in digests), await compose_digests(services, digests)))
    return [done[id(b)] for b in batches]


async def compose_digests(services: Services, batches: list[outbox.Batch]) -> list[Composed | Exception]:
    """Every digest of a claim, read together; when that fails (a row that cannot be read), each on
    its own, so only the bad one fails. A database error fails the round."""
    try:
        return await _compose_claim(services, batches)
    except DBAPIError:
        raise
    except Exception as exc:  # noqa: BLE001 - reported per batch by the worker
        if len(batches) == 1:
            return [exc]
        log.warning("the %d digests of a claim could not be read together (%r): reading them one at a time", len(batches), exc)
    return [(await compose_digests(services, [b]))[0] for b in batches]


async def _compose_claim(services: Services, batches: list[outbox.Batch]) -> list[Composed | Exception]:
    now = services.clock()
    out: dict[int, Composed | Exception] = {}
    jobs: list[_Job] = []
    async with account_session(services.sessions) as session:
        rows = (
            await session.execute(
                select(EmailJob, User, Org, NotificationSettings, Membership.id, Membership.role_id)
                .join(User, User.id == EmailJob.user_id)
                .join(Org, Org.id == EmailJob.org_id)
                .outerjoin(NotificationSettings, (NotificationSettings.org_id == EmailJob.org_id) & (NotificationSettings.user_id == EmailJob.user_id))
                .outerjoin(Membership, (Membership.org_id == EmailJob.org_id) & (Membership.user_id == EmailJob.user_id))
                .where(EmailJob.id.in_([j for b in batches for j in b.job_ids]))
            )
        ).all()
        by_job = {row[0].id: row for row in rows}
        for batch in batches:
            row = by_job.get(batch.job_ids[0])
            try:
                job = _job(batch, row, now)
            except Exception as exc:  # noqa: BLE001 - a payload that cannot be read fails its own digest
                out[batch.batch_id] = exc
                continue
            if job is None:
                out[batch.batch_id] = (None, [], list(batch.job_ids))
            else:
                jobs.append(job)
        digests = await _collect(session, jobs) if jobs else {}
    for job in jobs:
        digest = digests[job.job_id]
        try:
            message = None if digest.empty() else digest_email(services.settings, job, digest)
        except Exception as exc:  # noqa: BLE001 - reported per batch by the worker
            out[job.batch.batch_id] = exc
            continue
        out[job.batch.batch_id] = (message, [job.job_id], []) if message is not None else (None, [], [job.job_id])
    return [out[b.batch_id] for b in batches]


def _job(batch: outbox.Batch, row: Any, now: datetime) -> _Job | None:
    """The digest to write, or None when it is no longer wanted (skipped)."""
    if row is None:
        return None
    job, user, org, settings, membership, role_id = row
    if membership is None or settings is None or settings.digest == DIGEST_OFF:
        return None
    prefs = Preferences.of(settings, org.time_zone)
    if not prefs.wants(DIGEST, EMAIL) or prefs.snoozed(now):
        return None
    p = job.payload
    start, end = datetime.fromisoformat(p["period_start"]), datetime.fromisoformat(p["period_end"])
    return _Job(batch, job.id, org, user, role_id, start, end, str(p.get("frequency") or settings.digest), prefs.time_zone)


async def _collect(session: Any, jobs: list[_Job]) -> dict[int, Digest]:
    """Each job's digest, read for all of them at once."""
    orgs = sorted({j.org.id for j in jobs})
    users = sorted({j.user.id for j in jobs})
    lo, hi = min(j.start for j in jobs), max(j.end for j in jobs)

    role_parents: dict[int, dict[int, int | None]] = {o: {} for o in orgs}
    for org_id, role_id, parent_id in await session.execute(select(Role.org_id, Role.id, Role.parent_id).where(Role.org_id.in_(orgs))):
        role_parents[org_id][role_id] = parent_id
    sources: dict[int, dict[int, list[tuple[str, int]]]] = {o: {} for o in orgs}
    stmt = select(GroupSource.org_id, GroupSource.group_id, GroupSource.kind, GroupSource.ref_id).where(GroupSource.org_id.in_(orgs))
    for org_id, group_id, kind, ref in await session.execute(stmt):
        sources[org_id].setdefault(group_id, []).append((kind, ref))
    graphs = {o: OrgGraph(role_parents[o], {g: tuple(s) for g, s in sources[o].items()}) for o in orgs}
    indexes = {o: _source_index(graphs[o]) for o in orgs}
    groups_of = {(j.org.id, j.user.id): _groups_of(graphs[j.org.id], indexes[j.org.id], j.user.id, j.role_id) for j in jobs}
    all_groups = sorted({g for gs in groups_of.values() for g in gs})

    muted: set[tuple[int, int, str, int]] = set()
    stmt = select(Mute.org_id, Mute.user_id, Mute.target_kind, Mute.target_id).where(Mute.org_id.in_(orgs), Mute.user_id.in_(users))
    for org_id, user_id, kind, target in await session.execute(stmt):
        muted.add((org_id, user_id, kind, target))

    # Record items addressed to the people (their `u:` channel), and posts of their groups, in the periods.
    channels = [user_channel(u) for u in users] + [group_channel(g) for g in all_groups]
    items: list[tuple[int, str, int, int | None, datetime, str, int | None, dict[str, Any]]] = []
    if channels:
        stmt = (
            select(PostAudience.org_id, PostAudience.channel, Post.id, Post.author_id, Post.created_at, Post.kind, Post.group_id, Post.data)
            .join(Post, (Post.org_id == PostAudience.org_id) & (Post.id == PostAudience.post_id))
            .where(
                PostAudience.org_id.in_(orgs), PostAudience.channel.in_(channels),
                PostAudience.created_at >= lo, PostAudience.created_at < hi, Post.kind.in_((RECORD_POST, GROUP_POST)),
            )
        )
        items = list((await session.execute(stmt)).all())

    # Comments of the periods on the same reach: record items addressed to the people and posts of
    # their groups, whenever the post was made (never every comment of the orgs).
    comments: list[tuple[int, str, int, int | None, datetime, str, int | None, dict[str, Any]]] = []
    if channels:
        stmt = (
            select(PostAudience.org_id, PostAudience.channel, Comment.post_id, Comment.author_id, Comment.created_at, Post.kind, Post.group_id, Post.data)
            .join(Comment, (Comment.org_id == PostAudience.org_id) & (Comment.post_id == PostAudience.post_id))
            .join(Post, (Post.org_id == PostAudience.org_id) & (Post.id == PostAudience.post_id))
            .where(
                PostAudience.org_id.in_(orgs), PostAudience.channel.in_(channels),
                Comment.created_at >= lo, Comment.created_at < hi, Post.kind.in_((RECORD_POST, GROUP_POST)),
            )
        )
        comments = list((await session.execute(stmt)).all())

    group_names: dict[tuple[int, int], str] = {}
    if all_groups:
        stmt = select(Group.org_id, Group.id, Group.name).where(Group.org_id.in_(orgs), Group.id.in_(all_groups))
        group_names = {(o, g): name for o, g, name in await session.execute(stmt)}

    stmt = (
        select(DormancyNotice.org_id, DormancyNotice.user_id, DormancyNotice.record_id, DormancyNotice.last_activity_at, DormancyNotice.created_at,
               Record.name, Record.module)
        .join(Record, (Record.org_id == DormancyNotice.org_id) & (Record.id == DormancyNotice.record_id))
        .where(DormancyNotice.org_id.in_(orgs), DormancyNotice.user_id.in_(users), DormancyNotice.created_at >= lo,
               DormancyNotice.created_at < hi, Record.deleted_at.is_(None))
        .order_by(DormancyNotice.last_activity_at, DormancyNotice.record_id)
    )
    notices = list((await session.execute(stmt)).all())

    # Bucketed once, so each person's share is read from their own rows, not from the claim's.
    record_items: dict[tuple[int, str], list[tuple[int | None, datetime, tuple[int, str, str | None]]]] = defaultdict(list)
    group_items: dict[tuple[int, int], list[tuple[int | None, datetime]]] = defaultdict(list)
    for o, channel, _post_id, author, at, kind, group_id, data in items:
        if kind == RECORD_POST:
            rec = _record_of(data)
            if rec is not None:
                record_items[(o, channel)].append((author, at, rec))
        elif group_id is not None and channel == group_channel(group_id):
            group_items[(o, group_id)].append((author, at))
    record_comments: dict[tuple[int, str], list[tuple[int, int | None, datetime, tuple[int, str, str | None]]]] = defaultdict(list)
    group_comments: dict[tuple[int, int], list[tuple[int, int | None, datetime]]] = defaultdict(list)
    for o, channel, post_id, author, at, kind, group_id, data in comments:
        if kind == RECORD_POST:
            rec = _record_of(data)
            if rec is not None:  # looked up by the person's own channel below
                record_comments[(o, channel)].append((post_id, author, at, rec))
        elif group_id is not None and channel == group_channel(group_id):
            group_comments[(o, group_id)].append((post_id, author, at))
    dormant_of: dict[tuple[int, int], list[Any]] = defaultdict(list)
    for row in notices:
        dormant_of[(row[0], row[1])].append(row)

    out: dict[int, Digest] = {}
    for job in jobs:
        org_id, user_id = job.org.id, job.user.id
        me = user_channel(user_id)
        digest = Digest()

        def allowed(at: datetime, author: int | None, kind: str, target: int) -> bool:
            return job.start <= at < job.end and author != user_id and (org_id, user_id, kind, target) not in muted

        for author, at, rec in record_items.get((org_id, me), ()):
            if allowed(at, author, "record", rec[0]):
                _entry(digest.records, rec[0], rec[1], rec[2]).changes += 1
        for post_id, author, at, rec in record_comments.get((org_id, me), ()):
            if allowed(at, author, "record", rec[0]) and (org_id, user_id, "post", post_id) not in muted:
                _entry(digest.records, rec[0], rec[1], rec[2]).comments += 1
        for group_id in sorted(groups_of[(org_id, user_id)]):
            name = group_names.get((org_id, group_id), "")
            for author, at in group_items.get((org_id, group_id), ()):
                if allowed(at, author, "group", group_id):
                    _entry(digest.groups, group_id, name).changes += 1
            for post_id, author, at in group_comments.get((org_id, group_id), ()):
                if allowed(at, author, "group", group_id) and (org_id, user_id, "post", post_id) not in muted:
                    _entry(digest.groups, group_id, name).comments += 1
        for _, _, record_id, last_at, at, name, module in dormant_of.get((org_id, user_id), ()):
            if allowed(at, None, "record", record_id):
                digest.dormant.append(Dormant(record_id, name, module, last_at))
        out[job.job_id] = digest
    return out


Sources = dict[int, tuple[set[int], set[int], set[int], set[int]]]  # group -> (users, roles, role subtrees, groups)


def _groups_of(graph: OrgGraph, index: Sources, user_id: int, role_id: int | None) -> set[int]:
    """The groups a person belongs to, as `OrgGraph.in_group` decides, with each group's sources
    indexed once per org (`_source_index`): a claim asks for many people of the same org."""
    ancestry = graph.role_ancestry(role_id)
    direct = {g for g, (users, roles, subtrees, _) in index.items() if user_id in users or role_id in roles or ancestry & subtrees}
    found, changed = set(direct), True
    while changed:  # a group that includes a group the person is in (nested, possibly in a loop)
        changed = False
        for g, (_, _, _, nested) in index.items():
            if g not in found and nested & found:
                found.add(g)
                changed = True
    return found


def _source_index(graph: OrgGraph) -> Sources:
    slots = {SOURCE_USER: 0, SOURCE_ROLE: 1, SOURCE_ROLE_AND_SUBORDINATES: 2, SOURCE_GROUP: 3}
    index: Sources = {}
    for gid, sources in graph.group_sources.items():
        entry: tuple[set[int], set[int], set[int], set[int]] = (set(), set(), set(), set())
        for kind, ref in sources:
            if kind in slots:
                entry[slots[kind]].add(ref)
        index[gid] = entry
    return index


def _record_of(data: Any) -> tuple[int, str, str | None] | None:
    """(id, name, module) of the record a record item is about (its business card)."""
    card = data.get("record") if isinstance(data, dict) else None
    if not isinstance(card, dict) or not isinstance(card.get("id"), int):
        return None
    return card["id"], str(card.get("name") or ""), card.get("module")


def _entry(entries: dict[int, Entry], key: int, name: str, module: str | None = None) -> Entry:
    entry = entries.get(key)
    if entry is None:
        entry = entries[key] = Entry(key, name, module)
    return entry


def _top(entries: Iterable[Entry]) -> list[Entry]:
    """Busiest first, then by name: what the digest lists before "and N more"."""
    return sorted(entries, key=lambda e: (-e.total, e.name.lower(), e.id))


def _counts(entry: Entry, what: str) -> str:
    parts = []
    if entry.changes:
        parts.append(f"{entry.changes} {what}{'' if entry.changes == 1 else 's'}")
    if entry.comments:
        parts.append(f"{entry.comments} comment{'' if entry.comments == 1 else 's'}")
    return ", ".join(parts)


def message_id(org_id: int, user_id: int, period_end: datetime) -> str:
    """Stable per person and period: a retry after a worker died mid-send carries the same one."""
    return f"<digest.{org_id}.{user_id}.{period_end.astimezone(timezone.utc).strftime('%Y%m%dT%H%M%SZ')}@feeds.local>"


def digest_email(settings: Settings, job: _Job, digest: Digest) -> Message:
    """Plain text and HTML (every stored name escaped and on one line), at most
    `limits.DIGEST_MAX_ENTRIES` records, groups and dormant records each."""
    e = html.escape
    org, user = job.org, job.user
    org_name = one_line(org.name)
    base = f"{settings.public_url}/#/org/{org.slug}"
    tz = zone(job.time_zone, org.time_zone)
    start_local = job.start.astimezone(tz)
    since = start_local.strftime("%a %d %b %H:%M")
    word = "weekly" if job.frequency == "weekly" else "daily"
    summary = []
    if digest.records:
        summary.append(f"{len(digest.records)} record{'' if len(digest.records) == 1 else 's'}")
    if digest.groups:
        summary.append(f"{len(digest.groups)} group{'' if len(digest.groups) == 1 else 's'}")
    if digest.dormant:
        summary.append(f"{len(digest.dormant)} dormant")
    subject = f"Your {word} digest for {org_name}: {', '.join(summary)}"
    text: list[str] = [f"What happened in {org_name} since {since}:\n"]
    body: list[str] = [f"<p>What happened in <strong>{e(org_name)}</strong> since {e(since)}:</p>"]

    def section(title: str, entries: Sequence[Entry], what: str, path: str) -> None:
        if not entries:
            return
        listed = _top(entries)[: limits.DIGEST_MAX_ENTRIES]
        text.append(f"{title}:")
        body.append(f"<h3>{e(title)}</h3><ul>")
        for entry in listed:
            label = one_line(entry.name) or f"#{entry.id}"
            if entry.module:
                label = f"{label} ({one_line(entry.module)})"
            link = f"{base}/{path}/{entry.id}"
            text.append(f"- {label}: {_counts(entry, what)}  {link}")
            body.append(f'<li><a href="{e(link)}">{e(label)}</a>: {e(_counts(entry, what))}</li>')
        more = len(entries) - len(listed)
        if more:
            text.append(f"  and {more} more")
            body.append(f"<li>and {more} more</li>")
        text.append("")
        body.append("</ul>")

    section("Records", list(digest.records.values()), "change", "record")
    section("Groups", list(digest.groups.values()), "post", "group")
    if digest.dormant:
        listed = digest.dormant[: limits.DIGEST_MAX_ENTRIES]
        text.append("Gone quiet:")
        body.append("<h3>Gone quiet</h3><ul>")
        for d in listed:
            label = f"{one_line(d.name) or f'#{d.id}'} ({one_line(d.module)})"
            quiet_since = d.last_activity_at.astimezone(tz).strftime("%d %b %Y")
            link = f"{base}/record/{d.id}"
            text.append(f"- {label}: no activity since {quiet_since}  {link}")
            body.append(f'<li><a href="{e(link)}">{e(label)}</a>: no activity since {e(quiet_since)}</li>')
        if len(digest.dormant) > len(listed):
            text.append(f"  and {len(digest.dormant) - len(listed)} more")
            body.append(f"<li>and {len(digest.dormant) - len(listed)} more</li>")
        text.append("")
        body.append("</ul>")
    prefs_link = f"{base}/notifications/settings"
    unsubscribe_url = f"{settings.public_url}/api/v1/unsubscribe/digest/{digest_unsubscribe_token(settings.secret_key, org.id, user.id)}"
    text.append(
        f"--\nYou get this {word} digest because you chose it in {org_name}. Change it: {prefs_link}\n"
        f"Stop these digests: {unsubscribe_url}\n"
    )
    body.append(
        f'<hr><p style="color:#666;font-size:small">You get this {word} digest because you chose it in {e(org_name)}. '
        f'<a href="{e(prefs_link)}">Change it</a> · <a href="{e(unsubscribe_url)}">Stop these digests</a></p>'
    )
    msg = _message(settings, user.email, subject, "\n".join(text), "".join(body), message_id(org.id, user.id, job.end))
    msg["List-Unsubscribe"] = f"<{unsubscribe_url}>"  # RFC 8058 one-click: turns the digest off
    msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    return msg
