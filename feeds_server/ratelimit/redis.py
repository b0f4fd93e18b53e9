"""Redis rate limiter for several nodes: one key per bucket, one sorted set of open connections per user.

Every decision is one Lua script, atomic in Redis and timed by Redis's own clock, so nodes whose
clocks differ still agree. An open connection is a member of `<prefix>:conns:<user id>` scored with
its expiry; its node renews it every `CONNECTION_TTL_SECONDS / 3`, so the connections of a node that
died without closing them stop counting after `CONNECTION_TTL_SECONDS`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from feeds_server.ratelimit.limiter import EPSILON, Checks, Rate

log = logging.getLogger("feeds_server.ratelimit")

CONNECTION_TTL_SECONDS = 60
RENEW_BATCH = 500

_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
"""

# KEYS the buckets; ARGV[1] epsilon, then each bucket's interval and seconds. All buckets are
# checked before any is spent. Returns {0, "0"} (allowed) or {i, seconds to wait} for KEYS[i].
_SPEND = _NOW + """
local eps = tonumber(ARGV[1])
local tats = {}
for i, key in ipairs(KEYS) do
  local interval, period = tonumber(ARGV[2 * i]), tonumber(ARGV[2 * i + 1])
  local tat = tonumber(redis.call('GET', key)) or now
  if tat < now then tat = now end
  local excess = tat + interval - now - period
  if excess > eps then return {i, tostring(excess)} end
  tats[i] = tat + interval
end
for i, key in ipairs(KEYS) do
  redis.call('SET', key, string.format('%.6f', tats[i]), 'PX', math.ceil((tats[i] - now) * 1000) + 1)
end
return {0, '0'}
"""

# KEYS[1] the user's set; ARGV client id, cap, ttl. Returns 1 (registered) or 0 (over the cap).
_OPEN = _NOW + """
local ttl = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) and redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
redis.call('EXPIRE', KEYS[1], ttl + 1)
return 1
"""

# KEYS the users' sets; ARGV[1] ttl, ARGV[i + 1] the client id of KEYS[i].
_RENEW = _NOW + """
local ttl = tonumber(ARGV[1])
for i, key in ipairs(KEYS) do
  redis.call('ZADD', key, now + ttl, ARGV[i + 1])
  redis.call('EXPIRE', key, ttl + 1)
end
return #KEYS
"""


class RedisLimiter:
    def __init__(self, url: str, prefix: str = "feeds") -> None:
        self.prefix = prefix
        self._redis = aioredis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
        self._spend = self._redis.register_script(_SPEND)
        self._open = self._redis.register_script(_OPEN)
        self._renew = self._redis.register_script(_RENEW)
        self._mine: dict[str, int] = {}  # this node's open connections: client id -> user id
        self._renewer: asyncio.Task[None] | None = None

    def _bucket(self, rate: Rate, key: str) -> str:
        return f"{self.prefix}:rl:{rate.name}:{key}"

    def _conns(self, user_id: int) -> str:
        return f"{self.prefix}:conns:{user_id}"

    async def spend(self, checks: Checks) -> tuple[Rate, float] | None:
        args = [repr(EPSILON)]
        for rate, _ in checks:
            args += [repr(rate.interval), repr(rate.seconds)]
        try:
            index, wait = await self._spend(keys=[self._bucket(rate, key) for rate, key in checks], args=args)
        except (RedisError, OSError) as exc:
            log.warning("rate limit not checked, Redis unreachable: %s", exc)
            return None
        return (checks[int(index) - 1][0], float(wait)) if int(index) else None

    async def open_connection(self, user_id: int, client_id: str, cap: int) -> bool:
        try:
            ok = await self._open(keys=[self._conns(user_id)], args=[client_id, cap, CONNECTION_TTL_SECONDS])
        except (RedisError, OSError) as exc:
            log.warning("connection cap not checked, Redis unreachable: %s", exc)
            ok = 1
        if ok:
            self._mine[client_id] = user_id
            if self._renewer is None:
                self._renewer = asyncio.create_task(self._renew_forever(), name="ratelimit-connection-renewer")
        return bool(ok)

    async def close_connection(self, user_id: int, client_id: str) -> None:
        self._mine.pop(client_id, None)
        try:
            await self._redis.zrem(self._conns(user_id), client_id)
        except (RedisError, OSError) as exc:
            log.warning("connection not released in Redis (it expires by itself): %s", exc)

    async def renew(self) -> None:
        """Push back the expiry of every connection open on this node."""
        items = list(self._mine.items())
        for start in range(0, len(items), RENEW_BATCH):
            chunk = items[start : start + RENEW_BATCH]
            keys = [self._conns(user_id) for _, user_id in chunk]
            await self._renew(keys=keys, args=[CONNECTION_TTL_SECONDS, *(client_id for client_id, _ in chunk)])

    async def _renew_forever(self) -> None:
        while True:
            await asyncio.sleep(CONNECTION_TTL_SECONDS / 3)
            try:
                await self.renew()
            except (RedisError, OSError) as exc:
                log.warning("open connections not renewed in Redis: %s", exc)

    async def close(self) -> None:
        if self._renewer is not None:
            self._renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._renewer
        await self._redis.aclose()
