"""The process-wide objects a request or worker needs, built once from the settings."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from feeds_server.config import Settings
from feeds_server.notify.mailer import Mailer, create_mailer
from feeds_server.secrets.passwords import Passwords
from feeds_server.store.base import utcnow
from feeds_server.store.db import create_engine, session_factory
from feeds_server.store.events import NewEvent

EventSink = Callable[[list[NewEvent]], Awaitable[None]]
ControlSink = Callable[[dict[str, Any]], Awaitable[None]]


@dataclass
class Services:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    passwords: Passwords
    mailer: Mailer
    # Called after each commit with the events it wrote (real-time delivery subscribes here).
    event_sinks: list[EventSink] = field(default_factory=list)
    # Called with control messages that are not org events (a sign-out closes that sign-in's sockets).
    control_sinks: list[ControlSink] = field(default_factory=list)
    # The time, as every rule with a deadline sees it (tests move it to check boundaries).
    clock: Callable[[], datetime] = utcnow
    # Objects the layers above make on first use and keep, one per process, under their own key
    # (actions/post_writer.py `writer_for` keeps the group-commit writer here): this module imports none of them.
    singletons: dict[str, Any] = field(default_factory=dict, init=False, repr=False)
    _read_sessions: Any = field(default=None, init=False, repr=False)

    @property
    def read_sessions(self) -> async_sessionmaker[AsyncSession]:
        """Sessions for requests whose transaction only reads (api/routing.py, `reads_only`). On
        PostgreSQL each statement runs on its own (no BEGIN and COMMIT round trips): under READ
        COMMITTED every statement of a transaction takes its own snapshot anyway. SQLite keeps
        its transaction, which costs no round trip."""
        if self._read_sessions is None:
            if self.settings.is_sqlite:
                self._read_sessions = self.sessions
            else:
                autocommit = self.engine.execution_options(isolation_level="AUTOCOMMIT")
                self._read_sessions = async_sessionmaker(**{**self.sessions.kw, "bind": autocommit})
        return self._read_sessions

    @classmethod
    def build(cls, settings: Settings) -> "Services":
        engine = create_engine(settings)
        return cls(
            settings=settings,
            engine=engine,
            sessions=session_factory(engine),
            passwords=Passwords(settings),
            mailer=create_mailer(settings),
        )

    async def publish(self, events: list[NewEvent]) -> None:
        for sink in self.event_sinks:
            await sink(events)

    async def control(self, message: dict[str, Any]) -> None:
        for sink in self.control_sinks:
            await sink(message)

    async def close(self) -> None:
        await self.engine.dispose()
