"""Appending events: the only way a change becomes visible to real time, notifications and email.

Actions call `append_event` during their transaction. Just before the transaction commits, the
events are numbered from `orgs.event_seq` and written. Numbering last keeps the row lock on the org
short, and because that lock is held until commit, an org's events get their numbers in commit
order: a reader that has seen `seq = n` has seen every event below it. On PostgreSQL the events
and their channel rows are written by the statement that takes that lock and numbers them, so the
lock is held for one statement and the commit. The group commit of new posts does the same on the
driver connection (store/post_rows.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import event as sa_event
from sqlalchemy import text, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from feeds_server.store.base import utcnow
from feeds_server.store.bulk import insert_rows, int_array, json_bytes, json_text, text_array
from feeds_server.store.models import Event, EventChannel, Org
from feeds_server.store.scope import UnscopedQuery, current_org

PENDING_KEY = "pending_events"
COMMITTED_KEY = "committed_events"


@dataclass(slots=True)
class NewEvent:
    """An event of this transaction: numbered at commit, then handed to the event sinks.

    A plain object rather than an `Event` row: a busy batch queues thousands, and nothing needs them
    tracked by the ORM (they are inserted in bulk).
    """

    org_id: int
    type: str
    payload: dict[str, Any]
    actor_user_id: int | None
    channels: list[str]
    created_at: datetime
    seq: int = 0
    payload_json: bytes | None = None  # the payload as written (PostgreSQL), reused for the publication


def append_event(
    session: AsyncSession,
    type_: str,
    payload: dict[str, Any],
    actor_user_id: int | None = None,
    channels: Iterable[str] = (),
) -> NewEvent:
    """Queue one event of the session's org; it is numbered and written when the transaction commits."""
    org_id = current_org(session)
    if org_id is None:
        raise UnscopedQuery("events belong to an org")
    event = NewEvent(org_id, type_, payload, actor_user_id, sorted(set(channels)), utcnow())
    session.info.setdefault(PENDING_KEY, []).append(event)
    return event


def number_events(events: Sequence[NewEvent], last: int) -> None:
    """Number one org's events in order, the last of them `last` (the org's new `event_seq`)."""
    first = last - len(events) + 1
    for offset, ev in enumerate(events):
        ev.seq = first + offset


@sa_event.listens_for(Session, "before_commit")
def _number_and_write(session: Session) -> None:
    pending: list[NewEvent] = session.info.pop(PENDING_KEY, [])
    if not pending:
        return
    by_org: dict[int, list[NewEvent]] = {}
    for ev in pending:
        by_org.setdefault(ev.org_id, []).append(ev)
    dialect = session.get_bind().dialect.name
    for org_id, events in by_org.items():
        if dialect == "postgresql":
            last = session.execute(_NUMBER_AND_WRITE, _statement_params(org_id, events)).scalar_one()
            number_events(events, last)
            continue
        last = session.execute(
            update(Org).where(Org.id == org_id).values(event_seq=Org.event_seq + len(events)).returning(Org.event_seq)
        ).scalar_one()
        number_events(events, last)
        session.execute(*insert_rows(dialect, Event.__table__, [
            {"org_id": ev.org_id, "seq": ev.seq, "type": ev.type, "actor_user_id": ev.actor_user_id,
             "payload": ev.payload, "channels": ev.channels, "created_at": ev.created_at}
            for ev in events
        ]))
        rows = [{"org_id": ev.org_id, "channel": ch, "seq": ev.seq, "created_at": ev.created_at} for ev in events for ch in ev.channels]
        if rows:
            session.execute(*insert_rows(dialect, EventChannel.__table__, rows))
    session.info.setdefault(COMMITTED_KEY, []).extend(pending)


# PostgreSQL: the org's events numbered and written in one statement, so the org row, locked from
# here until commit, is held for that statement and the commit only (not for a round trip per table).
_NUMBER_AND_WRITE = text("""
WITH seq AS (
    UPDATE orgs SET event_seq = event_seq + :n WHERE id = :org RETURNING event_seq
), new_events AS (
    INSERT INTO events (org_id, seq, type, actor_user_id, payload, channels, created_at)
    SELECT :org, seq.event_seq - :n + e.n, e.type, e.actor_user_id, e.payload, e.channels, e.created_at
    FROM seq, unnest(CAST(CAST(:types AS TEXT) AS VARCHAR[]), CAST(CAST(:actors AS TEXT) AS BIGINT[]), CAST(:payloads AS JSON[]),
                     CAST(:channels AS JSONB[]), CAST(:times AS TIMESTAMPTZ[]))
        WITH ORDINALITY AS e(type, actor_user_id, payload, channels, created_at, n)
), new_channels AS (
    INSERT INTO event_channels (org_id, channel, seq, created_at)
    SELECT :org, c.channel, seq.event_seq - :n + c.n, (CAST(:times AS TIMESTAMPTZ[]))[c.n]
    FROM seq, unnest(CAST(CAST(:c_n AS TEXT) AS INTEGER[]), CAST(CAST(:c_channels AS TEXT) AS VARCHAR[])) AS c(n, channel)
)
SELECT event_seq FROM seq
""")


def _statement_params(org_id: int, events: list[NewEvent]) -> dict[str, Any]:
    channels = [(n, ch) for n, ev in enumerate(events, 1) for ch in ev.channels]
    return {
        "org": org_id, "n": len(events),
        "types": text_array([ev.type for ev in events]), "actors": int_array([ev.actor_user_id for ev in events]),
        "payloads": [_encoded(ev).decode() for ev in events], "channels": [json_text(ev.channels) for ev in events],
        "times": [ev.created_at for ev in events],
        "c_n": int_array([c[0] for c in channels]), "c_channels": text_array([c[1] for c in channels]),
    }


@sa_event.listens_for(Session, "after_rollback")
def _forget(session: Session) -> None:
    session.info.pop(PENDING_KEY, None)
    session.info.pop(COMMITTED_KEY, None)


def take_committed_events(session: AsyncSession) -> list[NewEvent]:
    """Events written by the session's last commit, handed over once (to publish them)."""
    return session.info.pop(COMMITTED_KEY, [])


def _encoded(ev: NewEvent) -> bytes:
    """The event's payload as written, encoded once."""
    if ev.payload_json is None:
        ev.payload_json = json_bytes(ev.payload)
    return ev.payload_json
