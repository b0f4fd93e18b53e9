"""The org-scoped session layer: the one way to read or write org data.

A session is opened either for one org (`org_session`) or, deliberately, across orgs for account
operations (`account_session`). In an org session every ORM query of an `OrgOwned` model gets
`org_id = :org` added (SELECT, UPDATE and DELETE alike) and every new `OrgOwned` row is stamped with
the org. Any query of an `OrgOwned` model in a session that is neither raises, so a code path that
forgot the org filter fails loudly in tests instead of leaking data.

On PostgreSQL the database enforces the same scope a second time (row-level security, migration
0004): each transaction names its org with `set_config('feeds.org_id', …, true)`, and only the
deliberately cross-org paths (an account session, a `CROSS_ORG` or `ORG_LOOKUP` statement) set
`feeds.all_orgs`; raw connections name their org with `org_on` or `sees_org`. A session that set
neither sees no org rows.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from sqlalchemy import Connection, event, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, async_sessionmaker
from sqlalchemy.orm import ORMExecuteState, Session, SessionTransaction, with_loader_criteria

from feeds_server.store.base import OrgOwned

T = TypeVar("T", bound=OrgOwned)

ORG_KEY = "org_id"
ACCOUNT_KEY = "account_scope"
# Execution option for the few account-level reads that must span orgs even in a session bound to
# one (counting a user's memberships while they join another org).
CROSS_ORG = {"cross_org": True}
# Execution option for the one read that finds the caller's org and membership from the request
# path, before any org is in scope: that statement names its org itself (by slug).
ORG_LOOKUP = {"org_lookup": True}


# What the database was last told, per session (this transaction) or per pooled connection.
_APPLIED = "rls_scope"
_PENDING = "rls_scope_next"
# Both settings in one statement: moving from the caller lookup to the org clears the other.
_SET_LOCAL = text("SELECT set_config('feeds.org_id', :org, true), set_config('feeds.all_orgs', :all, true)")
_SET_SESSION = text("SELECT set_config('feeds.org_id', :org, false), set_config('feeds.all_orgs', :all, false)")
_SET_SESSION_DRIVER = "SELECT set_config('feeds.org_id', $1, false), set_config('feeds.all_orgs', $2, false)"
Scope = tuple[str, str]
_NO_ORG: Scope = ("", "")
_ALL_ORGS: Scope = ("", "on")


class UnscopedQuery(RuntimeError):
    """An org-owned table was queried with no org in scope: a programming error."""


def set_org(session: AsyncSession, org_id: int) -> None:
    """Bind the session to one org. Done once, before the first org query; never changed after."""
    current = session.info.get(ORG_KEY)
    if current is not None and current != org_id:
        raise UnscopedQuery("a session cannot move from one org to another")
    session.info[ORG_KEY] = org_id


def current_org(session: AsyncSession | Session) -> int | None:
    return session.info.get(ORG_KEY)


@asynccontextmanager
async def org_session(factory: async_sessionmaker[AsyncSession], org_id: int) -> AsyncIterator[AsyncSession]:
    """A session and transaction bound to one org; commits on success."""
    async with factory() as session:
        set_org(session, org_id)
        async with session.begin():
            yield session


@asynccontextmanager
async def account_session(factory: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """A session that may read across orgs, for account-level work (sign-in, "my orgs")."""
    async with factory() as session:
        session.info[ACCOUNT_KEY] = True
        async with session.begin():
            yield session


def allow_cross_org(session: AsyncSession) -> None:
    """Mark an open session as an account session (see `account_session`)."""
    session.info[ACCOUNT_KEY] = True


async def sees_org(conn: AsyncConnection, org_id: int) -> bool:
    """Make a raw AUTOCOMMIT connection see `org_id`'s rows if it does not yet (the caller lookup,
    which finds the org by slug). True when it changed: the read must be made again."""
    if conn.dialect.name != "postgresql" or conn.sync_connection is None:
        return False
    if conn.sync_connection.connection.info.get(_APPLIED) in ((str(org_id), ""), _ALL_ORGS):
        return False
    await org_on(conn, org_id)
    return True


async def driver_sees_org(conn: Any, org_id: int) -> bool:
    """`sees_org` for a connection of the driver pool (store/driver.py `DriverConnection`: the
    asyncpg connection in `.driver`, what its settings hold in `.info`). True when it changed."""
    if conn.info.get(_APPLIED) in ((str(org_id), ""), _ALL_ORGS):
        return False
    await conn.driver.execute(_SET_SESSION_DRIVER, str(org_id), "")
    conn.info[_APPLIED] = (str(org_id), "")
    return True


async def org_on(conn: AsyncConnection, org_id: int) -> None:
    """Bind a raw AUTOCOMMIT connection to one org's rows. No-op on SQLite."""
    await conn.run_sync(_apply_to_connection, (str(org_id), ""))


def _wanted(session: Session, cross: bool = False) -> Scope:
    org_id = session.info.get(ORG_KEY)
    if cross:
        return _ALL_ORGS
    if org_id is not None:
        return (str(org_id), "")
    return _ALL_ORGS if session.info.get(ACCOUNT_KEY) else _NO_ORG


def _autocommit(conn: Connection) -> bool:
    return conn.get_execution_options().get("isolation_level") == "AUTOCOMMIT"


def _apply_to_connection(conn: Connection, scope: Scope) -> None:
    """AUTOCOMMIT has no transaction to hold a local setting: set it for the connection, and
    only when it differs from what the pooled connection already holds."""
    if conn.dialect.name != "postgresql":
        return
    info = conn.connection.info
    if info.get(_APPLIED) != scope:
        conn.execute(_SET_SESSION, {"org": scope[0], "all": scope[1]})
        info[_APPLIED] = scope


def _apply(session: Session, conn: Connection, scope: Scope) -> None:
    if _autocommit(conn):
        _apply_to_connection(conn, scope)
    else:
        conn.execute(_SET_LOCAL, {"org": scope[0], "all": scope[1]})
    session.info[_APPLIED] = scope


@event.listens_for(Session, "after_begin")
def _scope_transaction(session: Session, _tx: SessionTransaction, conn: Connection) -> None:
    if conn.dialect.name == "postgresql":
        _apply(session, conn, session.info.get(_PENDING) or _wanted(session))


@event.listens_for(Session, "after_transaction_end")
def _forget_scope(session: Session, tx: SessionTransaction) -> None:
    if tx.parent is None:
        session.info.pop(_APPLIED, None)


def _rescope(session: Session, cross: bool = False) -> None:
    """The scope changed inside the transaction (the org found after the caller lookup)."""
    applied = session.info.get(_APPLIED)
    wanted = _wanted(session, cross)
    if applied is None:
        if not cross or session.get_bind().dialect.name != "postgresql":
            return  # after_begin sets the session's own scope
        # The transaction's first statement is the cross-org one: begin with that scope.
        session.info[_PENDING] = wanted
        try:
            session.connection()
        finally:
            session.info.pop(_PENDING, None)
        return
    if applied != wanted:
        _apply(session, session.connection(), wanted)


def _touches_org_data(state: ORMExecuteState) -> bool:
    for mapper in state.all_mappers:
        if issubclass(mapper.class_, OrgOwned):
            return True
    return False


@event.listens_for(Session, "do_orm_execute")
def _scope_orm_execute(state: ORMExecuteState) -> None:
    org_id = state.session.info.get(ORG_KEY)
    lookup = org_id is None and bool(state.execution_options.get("org_lookup"))
    cross = bool(state.execution_options.get("cross_org"))
    if cross and not state.session.info.get(ACCOUNT_KEY):
        raise UnscopedQuery("a cross-org read needs an account session")
    _rescope(state.session, cross or lookup)
    if not (state.is_select or state.is_update or state.is_delete) or lookup or cross:
        return
    if org_id is None:
        if state.session.info.get(ACCOUNT_KEY) or not _touches_org_data(state):
            return
        raise UnscopedQuery("query of org data without an org in scope")
    state.statement = state.statement.options(
        with_loader_criteria(OrgOwned, lambda cls: cls.org_id == org_id, include_aliases=True)
    )


@event.listens_for(Session, "before_flush")
def _stamp_org(session: Session, _ctx: Any, _instances: Any) -> None:
    _rescope(session)
    org_id = session.info.get(ORG_KEY)
    for obj in list(session.new) + list(session.dirty):
        if not isinstance(obj, OrgOwned):
            continue
        if obj.org_id is None:
            if org_id is None:
                raise UnscopedQuery(f"new {type(obj).__name__} without an org")
            obj.org_id = org_id
        elif org_id is not None and obj.org_id != org_id:
            raise UnscopedQuery(f"{type(obj).__name__} of org {obj.org_id} written in a session of org {org_id}")


async def get_in_org(session: AsyncSession, model: type[T], item_id: int) -> T | None:
    """Fetch by primary key through a query, so the org filter applies.

    `Session.get` may answer from the identity map without querying; org data never uses it.
    """
    return (await session.execute(select(model).where(model.id == item_id))).scalar_one_or_none()  # type: ignore[attr-defined]
