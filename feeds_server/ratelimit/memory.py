"""In-process rate limiter: the default for a single node."""

from __future__ import annotations

import time
from collections.abc import Callable

from feeds_server.ratelimit.limiter import Checks, Rate, gcra

# Keys whose bucket is full again are dropped once the table grows past this.
SWEEP_AT = 100_000


class MemoryLimiter:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._tats: dict[tuple[str, str], float] = {}
        self._connections: dict[int, set[str]] = {}

    async def spend(self, checks: Checks) -> tuple[Rate, float] | None:
        now = self.clock()
        spent = []
        for rate, key in checks:
            slot = (rate.name, key)
            tat, wait = gcra(self._tats.get(slot, 0.0), now, rate)
            if wait:
                return rate, wait
            spent.append((slot, tat))
        self._tats.update(spent)
        if len(self._tats) > SWEEP_AT:
            self._tats = {k: v for k, v in self._tats.items() if v > now}
        return None

    async def open_connection(self, user_id: int, client_id: str, cap: int) -> bool:
        open_ = self._connections.setdefault(user_id, set())
        if len(open_) >= cap:
            return False
        open_.add(client_id)
        return True

    async def close_connection(self, user_id: int, client_id: str) -> None:
        open_ = self._connections.get(user_id)
        if open_ is not None:
            open_.discard(client_id)
            if not open_:
                del self._connections[user_id]

    async def close(self) -> None:
        self._tats.clear()
        self._connections.clear()
