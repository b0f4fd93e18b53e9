"""What a handler gets: the request, its transaction, the caller and the org in scope."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request

from feeds_server.actions.posts import StoredFile
from feeds_server.domain import permissions as perms
from feeds_server.errors import Forbidden
from feeds_server.runtime.services import Services
from feeds_server.store.models import AuthToken, Integration, Membership, Org, User


@dataclass(frozen=True)
class Member:
    """The caller as a member of the org in scope."""

    user: User
    membership: Membership
    permissions: frozenset[str]

    @property
    def user_id(self) -> int:
        return self.user.id

    @property
    def is_admin(self) -> bool:
        return perms.ADMIN in self.permissions

    @property
    def is_super_admin(self) -> bool:
        return perms.SUPER_ADMIN in self.permissions

    def require(self, permission: str) -> None:
        if permission not in self.permissions:
            raise Forbidden(f"{permission}_required", f"this needs the {permission!r} permission")


@dataclass(frozen=True)
class Deferred:
    """A handler's result that is written after the request's own transaction, by a writer that
    commits many requests together (actions/post_writer.py). The request's transaction only reads;
    the handler's checks ran in it. If `complete` fails, the request's rollback steps run."""

    complete: Callable[[], Awaitable[Any]]


@dataclass
class Ctx:
    request: Request
    services: Services
    # The request's session; None until first used when it is opened on demand (`open_on_demand`).
    opened_session: AsyncSession | None
    path: dict[str, Any]
    body: Any = None
    query: Any = None
    # The files of an upload (an endpoint with `files`), already in storage (api/uploads.py).
    files: tuple[StoredFile, ...] = ()
    user: User | None = None
    token: AuthToken | None = None
    org: Org | None = None
    member: Member | None = None
    integration: Integration | None = None
    # (key, fingerprint) when the request carries an Idempotency-Key (store/idempotency.py).
    idempotency: tuple[str, str] | None = None
    _after_commit: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    _on_rollback: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    # A plain function of the context, not a closure over it: a reference cycle would leave every
    # request's objects to the garbage collector, whose pauses then grow with the request rate.
    _open_session: Callable[[Ctx], AsyncSession] | None = None

    @property
    def session(self) -> AsyncSession:
        if self.opened_session is None:
            assert self._open_session is not None, "no session for this request"
            self.opened_session = self._open_session(self)
        return self.opened_session

    def open_on_demand(self, open_session: Callable[[Ctx], AsyncSession]) -> None:
        """Open the request's session only if the handler uses it: a plain status post, whose caller
        is read on the driver connection (store/callers.py) and whose write is deferred, needs none,
        and opening and closing one costs about as much CPU as a query."""
        self._open_session = open_session

    def after_commit(self, action: Callable[[], Awaitable[None]]) -> None:
        """Run `action` once the request's transaction has committed (e.g. send an email)."""
        self._after_commit.append(action)

    def on_rollback(self, action: Callable[[], Awaitable[None]]) -> None:
        """Run `action` if the request's transaction does not commit (e.g. remove stored files)."""
        self._on_rollback.append(action)

    @property
    def me(self) -> Member:
        assert self.member is not None, "endpoint declared without member access"
        return self.member

    @property
    def current_user(self) -> User:
        assert self.user is not None, "endpoint declared without user access"
        return self.user

    @property
    def current_org(self) -> Org:
        assert self.org is not None, "endpoint has no org in its path"
        return self.org
