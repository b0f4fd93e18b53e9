"""The org-scoped session layer: the one way to read or write org data.

A session is opened either for one org (`org_session`) or, deliberately, across orgs for account
operations (`account_session`). In an org session every ORM query of an `OrgOwned` model gets
`org_id = :org` added (SELECT, UPDATE and DELETE alike) and every new `OrgOwned` row is stamped with
the org. Any query of an `OrgOwned` model in a session that is neither raises, so a code path that
forgot the org filter fails loudly in tests instead of leaking data.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from sqlalchemy import event, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import ORMExecuteState, Session, with_loader_criteria

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


def _touches_org_data(state: ORMExecuteState) -> bool:
    for mapper in state.all_mappers:
        if issubclass(mapper.class_, OrgOwned):
            return True
    return False


@event.listens_for(Session, "do_orm_execute")
def _scope_orm_execute(state: ORMExecuteState) -> None:
    if not (state.is_select or state.is_update or state.is_delete):
        return
    org_id = state.session.info.get(ORG_KEY)
    if org_id is None and state.execution_options.get("org_lookup"):
        return
    if state.execution_options.get("cross_org"):
        if not state.session.info.get(ACCOUNT_KEY):
            raise UnscopedQuery("a cross-org read needs an account session")
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
