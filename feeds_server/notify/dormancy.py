"""Dormancy notices: a person who asked is told when a record they own or follow has gone quiet.

A record crosses a person's threshold (`dormant_days`, 1–180) when its last activity is that many
days old. The crossing is named by the record's `last_activity_at`: a `dormancy_notices` row per
record, person and crossing makes the notice once, not every day, however many workers look; new
activity on the record moves `last_activity_at`, so the next quiet spell is a new crossing. Only
crossings at or after `dormant_since` (when the person turned dormancy on or changed its days) are
told: turning it on does not report every record that has been quiet for years. A row without it
(written by an import, say) starts when this step first sees it.

The notifier runs `notify_dormant` every few minutes. One query finds the people who asked (an index
of the rows that set it); then per org, one range scan of those people's follows by last activity
(the follows' own index, as the dormant-records list uses) less the crossings already told. Each
new notice becomes a `record_dormant` notification with the reason the person follows the record,
unless they muted it or turned every channel of that kind off (the notice is still recorded, so the
digest lists it and it is not looked at again); email and push go through the same outboxes as
every other kind.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, case, exists, literal, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from feeds_server import limits
from feeds_server.actions.notifications import announce, load_mutes, load_preferences, org_of, queue_deliveries, reaches
from feeds_server.domain import reasons
from feeds_server.domain.preferences import RECORD_DORMANT, Preferences
from feeds_server.domain.records import OWNER, RULE
from feeds_server.runtime.services import Services
from feeds_server.store.events import take_committed_events
from feeds_server.store.models import AutoFollowRule, DormancyNotice, Follow, Membership, Notification, NotificationSettings, Record
from feeds_server.store.scope import account_session, org_session

log = logging.getLogger("feeds_server.notifier")


# People per follows query: the query binds three values per person, well under the backends' limits.
PEOPLE_PER_QUERY = 500


async def notify_dormant(services: Services, now: datetime | None = None) -> int:
    """Record and notify every crossing due at `now`; how many notices were recorded."""
    now = now or services.clock()
    table = NotificationSettings.__table__
    async with account_session(services.sessions) as session:
        await session.execute(
            update(table).where(table.c.dormant_days.is_not(None), table.c.dormant_since.is_(None)).values(dormant_since=now)
        )
        stmt = select(table.c.org_id, table.c.user_id, table.c.dormant_days, table.c.dormant_since).where(table.c.dormant_days.is_not(None))
        rows = (await session.execute(stmt)).all()
    by_org: dict[int, dict[int, tuple[int, datetime]]] = defaultdict(dict)
    for org_id, user_id, days, since in rows:
        if limits.MIN_DORMANT_DAYS <= days <= limits.MAX_DORMANT_DAYS:
            by_org[org_id][user_id] = (days, since)
    told = 0
    for org_id, people in sorted(by_org.items()):
        try:
            told += await _org(services, org_id, people, now)
        except Exception:  # one org's trouble does not stop the others; it is tried again next time
            log.exception("dormancy notices of org %s failed", org_id)
    return told


async def _org(services: Services, org_id: int, people: dict[int, tuple[int, datetime]], now: datetime) -> int:
    async with org_session(services.sessions, org_id) as session:
        crossings = await _crossings(session, people, now)
        if not crossings:
            return 0
        fresh = await _record_notices(session, org_id, crossings, now)
        if fresh:
            await _notify(session, [c for c in crossings if (c["record_id"], c["user_id"]) in fresh], now)
    await services.publish(take_committed_events(session))
    return len(fresh)


async def _crossings(session: AsyncSession, people: dict[int, tuple[int, datetime]], now: datetime) -> list[dict[str, Any]]:
    """Follows of these people past their threshold, crossed since they asked (`dormant_since`) and
    not told yet, oldest first."""
    by_days: dict[int, list[tuple[int, datetime]]] = defaultdict(list)
    for user_id, (days, since) in people.items():
        by_days[days].append((user_id, since))
    told = (
        select(DormancyNotice.record_id)
        .where(
            DormancyNotice.org_id == Follow.org_id, DormancyNotice.record_id == Follow.record_id,
            DormancyNotice.user_id == Follow.user_id, DormancyNotice.last_activity_at == Follow.last_activity_at,
        )
    )
    out: list[dict[str, Any]] = []
    left = limits.DORMANCY_NOTICES_PER_STEP
    when = Follow.last_activity_at.type
    for days, group in sorted(by_days.items()):
        group.sort()
        for i in range(0, len(group), PEOPLE_PER_QUERY):
            if left <= 0:
                return out
            chunk = group[i:i + PEOPLE_PER_QUERY]
            # A record crosses at last activity + days; crossings before the person asked are not told.
            earliest = case({u: literal(since - timedelta(days=days), when) for u, since in chunk}, value=Follow.user_id)
            stmt = (
                select(Follow.user_id, Follow.record_id, Follow.source, Follow.rule_id, Follow.last_activity_at, Record.module, Record.crm_id, Record.name)
                .join(Record, and_(Record.org_id == Follow.org_id, Record.id == Follow.record_id))
                .join(Membership, and_(Membership.org_id == Follow.org_id, Membership.user_id == Follow.user_id))
                .where(
                    Follow.user_id.in_([u for u, _ in chunk]), Follow.last_activity_at <= now - timedelta(days=days),
                    Follow.last_activity_at >= earliest, Record.deleted_at.is_(None), ~exists(told),
                )
                .order_by(Follow.last_activity_at, Follow.record_id)
                .limit(left)
            )
            for row in await session.execute(stmt):
                out.append({**row._asdict(), "days": days})
            left = limits.DORMANCY_NOTICES_PER_STEP - len(out)
    return out


async def _record_notices(session: AsyncSession, org_id: int, crossings: list[dict[str, Any]], now: datetime) -> set[tuple[int, int]]:
    """Insert the notices; those this transaction wrote (a crossing another worker recorded first is not ours)."""
    table = DormancyNotice.__table__
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    values = [
        {"org_id": org_id, "record_id": c["record_id"], "user_id": c["user_id"], "last_activity_at": c["last_activity_at"], "created_at": now}
        for c in crossings
    ]
    stmt = dialect.insert(table).values(values).on_conflict_do_nothing().returning(table.c.record_id, table.c.user_id)
    return {(r, u) for r, u in await session.execute(stmt)}


def _reason(c: dict[str, Any], rule_names: dict[int, str]) -> dict[str, Any]:
    refs = {"record_id": c["record_id"], "record_name": c["name"]}
    if c["source"] == OWNER:
        return reasons.reason(reasons.OWNER, **refs)
    if c["source"] == RULE:
        return reasons.reason(reasons.FOLLOWER_RULE, **refs, rule_id=c["rule_id"], rule_name=rule_names.get(c["rule_id"]))
    return reasons.reason(reasons.FOLLOWER_MANUAL, **refs)  # MANUAL, or a source this version does not know


async def _notify(session: AsyncSession, crossings: list[dict[str, Any]], now: datetime) -> None:
    org = await org_of(session)
    users = {c["user_id"] for c in crossings}
    prefs = await _preferences(session, users, org.time_zone)
    mutes = await load_mutes(session, users)
    wanted = [c for c in crossings if c["user_id"] in prefs and reaches(prefs[c["user_id"]], RECORD_DORMANT) and not mutes.muted(c["user_id"], "record", c["record_id"])]
    if not wanted:
        return
    rules = {c["rule_id"] for c in wanted if c["rule_id"] is not None}
    rule_names = dict((await session.execute(select(AutoFollowRule.id, AutoFollowRule.name).where(AutoFollowRule.id.in_(rules)))).all()) if rules else {}
    notes = [
        Notification(
            user_id=c["user_id"], kind=RECORD_DORMANT, actor_id=None, post_id=None, comment_id=None, record_id=c["record_id"],
            data={
                "record": {"module": c["module"], "id": c["record_id"], "crm_id": c["crm_id"], "name": c["name"]},
                "days": c["days"], "last_activity_at": c["last_activity_at"].isoformat(),
            },
            reason=_reason(c, rule_names), created_at=now,
        )
        for c in wanted
    ]
    session.add_all(notes)
    await session.flush()
    await queue_deliveries(session, notes, prefs, now, org=org)
    announce(session, notes)


async def _preferences(session: AsyncSession, users: set[int], org_time_zone: str) -> dict[int, Preferences]:
    """Everyone's choices; when one person's cannot be read, the others' still are (that person is
    left out: their notice is recorded, not notified), so one bad row does not stop the org's notices."""
    try:
        return await load_preferences(session, users, org_time_zone)
    except DBAPIError:
        raise
    except Exception:  # noqa: BLE001 - read again one by one below
        log.warning("notification settings of %d people could not be read together: reading them one at a time", len(users))
    out: dict[int, Preferences] = {}
    for user_id in sorted(users):
        try:
            out.update(await load_preferences(session, [user_id], org_time_zone))
        except DBAPIError:
            raise
        except Exception:  # noqa: BLE001 - logged; the others go on
            log.exception("notification settings of user %s cannot be read: no dormancy notification", user_id)
    return out
