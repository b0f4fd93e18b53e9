"""Rate limits and the cap on open connections per user, shared by every node when Redis is configured.

Each limit is a GCRA ("generic cell rate algorithm", a token bucket kept as one timestamp per key):
`requests` per `seconds` means a burst of `requests` at once, then one more every
`seconds / requests`, and `seconds` of quiet restore the whole burst. A refusal says how long to
wait. Two implementations, chosen by `FEEDS_REDIS_URL` like the broker: in-process for one node
(`memory.py`), Redis for several (`redis.py`, atomic Lua scripts). If Redis
cannot be reached the Redis limiter lets requests through: an outage must not stop posting.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from feeds_server.config import Settings

# How much a count may exceed its bound through floating-point rounding and still pass.
EPSILON = 1e-6


@dataclass(frozen=True)
class Rate:
    """`requests` per `seconds`, as a burst (see the module docstring)."""

    name: str  # as in metrics and error details: "posts_per_user"
    requests: int
    seconds: float

    @property
    def interval(self) -> float:
        return self.seconds / self.requests


def gcra(tat: float, now: float, rate: Rate) -> tuple[float, float]:
    """(new theoretical arrival time, 0) when a request at `now` is allowed, else (`tat`, seconds to wait)."""
    new_tat = max(tat, now) + rate.interval
    excess = new_tat - now - rate.seconds
    if excess > EPSILON:
        return tat, excess
    return new_tat, 0.0


# What one request spends: each limit with the key it is counted under (a user id, an address).
Checks = Sequence[tuple[Rate, str]]


class Limiter(Protocol):
    async def spend(self, checks: Checks) -> tuple[Rate, float] | None:
        """Count one request against every check, or, if one refuses, against none of them (a refused
        request costs nothing): None when allowed, else the refusing limit and the seconds to wait."""
        ...

    async def open_connection(self, user_id: int, client_id: str, cap: int) -> bool:
        """Register a connection, unless the user already has `cap` open (then False)."""
        ...

    async def close_connection(self, user_id: int, client_id: str) -> None: ...

    async def close(self) -> None: ...


def create_limiter(settings: Settings) -> Limiter:
    """Redis when `FEEDS_REDIS_URL` is set (several nodes share the counts), otherwise in-process."""
    if settings.redis_url:
        from feeds_server.ratelimit.redis import RedisLimiter

        return RedisLimiter(settings.redis_url, settings.redis_prefix)
    from feeds_server.ratelimit.memory import MemoryLimiter

    return MemoryLimiter()
