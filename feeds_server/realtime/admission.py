"""Who may connect: the sign-in, membership, profile and Feeds tab behind connection tokens, read
for many connects at once.

When a crowd reconnects (a node restart, a network blip), thousands of `connect` commands arrive
within seconds, most for the same org. Each waits here for the others of its org, then one query
reads every sign-in of the batch. A batch goes `WINDOW` seconds after its first connect, but never
while a read for the org is in flight and never sooner than `SPACING` seconds after the org's last
read: a lone connect waits 2 ms, and a crowd is read at most 50 times a second per org, in batches
of whatever arrived meanwhile (at 1,000 connects a second the reads would otherwise hold two or
three connects each). Every connect is still checked against the database, at a moment after it
arrived. A revocation committed after that moment reaches the node as a control message; the hub
closes a connection whose check predates such a message (`Hub.revoked_since`), so the wait opens
no gap.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import bindparam, select

from feeds_server.domain import permissions as perms
from feeds_server.runtime.services import Services
from feeds_server.store.driver import driver_connection
from feeds_server.store.models import AuthToken, Membership, Profile
from feeds_server.store.scope import driver_sees_org, org_on

WINDOW = 0.002  # seconds a connect waits for others of its org
SPACING = 0.02  # seconds from one read of an org's batch to the next
BATCH_MAX = 500


@dataclass(frozen=True, slots=True)
class Admitted:
    role_id: int | None
    profile_id: int
    checked_at: float  # time.monotonic() when the database read started


# Built once: building a statement costs more than running it.
_MEMBERS = (
    select(AuthToken.id, AuthToken.user_id, AuthToken.revoked_at, AuthToken.expires_at, Membership.role_id,
           Membership.profile_id, Membership.is_super_admin, Profile.permissions)
    .join(Membership, Membership.user_id == AuthToken.user_id)
    .join(Profile, Profile.id == Membership.profile_id)
    .where(AuthToken.id.in_(bindparam("auth_ids", expanding=True)),
           Membership.org_id == bindparam("org_id"), Profile.org_id == bindparam("org_id"))
)


# The same read on PostgreSQL, sent straight to the driver (store/driver.py): in a reconnecting
# crowd, SQLAlchemy's checkout, the expanding IN list compiled for each batch size and its result
# rows cost the server more than the query.
_MEMBERS_SQL = (
    "SELECT a.id, a.user_id, a.revoked_at, a.expires_at, m.role_id, m.profile_id, m.is_super_admin, p.permissions"
    " FROM auth_tokens a JOIN memberships m ON m.user_id = a.user_id JOIN profiles p ON p.id = m.profile_id"
    " WHERE a.id = ANY($1::bigint[]) AND m.org_id = $2 AND p.org_id = $2"
)


@dataclass(eq=False)
class _Batch:
    waiting: list[tuple[int, int, asyncio.Future[Admitted | None]]] = field(default_factory=list)


class Admissions:
    """Batches the connect checks of one node, per org."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self._open: dict[int, _Batch] = {}
        self._reading: dict[int, int] = {}  # org → reads in flight
        self._last_read: dict[int, float] = {}  # org → loop time its last read started, within SPACING
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False

    async def check(self, org_id: int, user_id: int, auth_token_id: int) -> Admitted | None:
        """(role, profile) of a live sign-in of a member of the org with the Feeds tab, else None."""
        loop = asyncio.get_running_loop()
        batch = self._open.get(org_id)
        if batch is None:
            batch = self._open[org_id] = _Batch()
            if not self._reading.get(org_id):
                self._schedule(org_id, batch)  # else when the read in flight ends
        done: asyncio.Future[Admitted | None] = loop.create_future()
        batch.waiting.append((user_id, auth_token_id, done))
        if len(batch.waiting) >= BATCH_MAX:
            self._close(org_id, batch)
        return await done

    def _schedule(self, org_id: int, batch: _Batch) -> None:
        loop = asyncio.get_running_loop()
        at = loop.time() + WINDOW
        last = self._last_read.get(org_id)
        if last is not None:
            if last + SPACING > at:
                at = last + SPACING
            else:
                del self._last_read[org_id]  # long ago: forget it
        loop.call_at(at, self._close, org_id, batch)

    def _close(self, org_id: int, batch: _Batch) -> None:
        if self._open.get(org_id) is not batch:
            return  # already closed when full
        del self._open[org_id]
        self._last_read[org_id] = asyncio.get_running_loop().time()
        self._reading[org_id] = self._reading.get(org_id, 0) + 1
        task = asyncio.get_running_loop().create_task(self._read(org_id, batch))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _read(self, org_id: int, batch: _Batch) -> None:
        failure: BaseException = ConnectionError("the connect check was cancelled")
        try:
            await self._read_batch(org_id, batch)
        except Exception as exc:  # the database's error, for this batch's connects only
            failure = exc
        finally:
            _fail(batch, failure)
            left = self._reading.pop(org_id, 1) - 1
            if left:
                self._reading[org_id] = left
            elif org_id in self._open:  # what arrived during the read
                if self._closed:
                    _fail(self._open.pop(org_id), ConnectionError("the node is shutting down"))
                else:
                    self._schedule(org_id, self._open[org_id])

    async def _read_batch(self, org_id: int, batch: _Batch) -> None:
        checked_at = time.monotonic()
        rows = await _read_members(self.services, org_id, sorted({auth for _, auth, _ in batch.waiting}))
        now = self.services.clock()
        for user_id, auth_id, done in batch.waiting:
            if not done.done():
                done.set_result(_admitted(rows.get(auth_id), user_id, now, checked_at))

    async def close(self) -> None:
        self._closed = True
        for task in list(self._tasks):
            task.cancel()


def _fail(batch: _Batch, failure: BaseException) -> None:
    """Answer every connect of the batch still waiting with `failure`."""
    for _, _, done in batch.waiting:
        if not done.done():
            done.set_exception(failure)


async def _read_members(services: Services, org_id: int, auth_ids: list[int]) -> dict[int, Any]:
    """The batch's sign-ins with their membership and profile in the org, by sign-in id (rows that
    read by column name). Outside a transaction, the org named on the connection: no BEGIN and
    COMMIT round trips."""
    engine = services.engine
    if engine.dialect.name == "postgresql":
        async with driver_connection(engine) as conn:
            await driver_sees_org(conn, org_id)
            return {r["id"]: r for r in await conn.driver.fetch(_MEMBERS_SQL, auth_ids, org_id)}
    async with engine.connect() as db:
        await db.execution_options(isolation_level="AUTOCOMMIT")
        await org_on(db, org_id)
        result = await db.execute(_MEMBERS, {"auth_ids": auth_ids, "org_id": org_id})
        return {r.id: r._mapping for r in result.all()}


def _admitted(row: Any, user_id: int, now: Any, checked_at: float) -> Admitted | None:
    if row is None or row["user_id"] != user_id or row["revoked_at"] is not None or row["expires_at"] <= now:
        return None
    if perms.FEEDS_TAB not in perms.effective_permissions(row["permissions"], row["is_super_admin"]):
        return None
    return Admitted(row["role_id"], row["profile_id"], checked_at)
