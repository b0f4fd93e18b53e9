"""The limiter contract, on both backends: the in-process one and Redis (shared by nodes)."""

from __future__ import annotations

import asyncio

import pytest

from feeds_server.ratelimit import redis as ratelimit_redis
from feeds_server.ratelimit.limiter import Rate, gcra
from feeds_server.ratelimit.memory import MemoryLimiter
from tests.ops.conftest import prefix


async def hit(limiter, rate: Rate, key: str) -> float:  # type: ignore[no-untyped-def]
    """One request spending one limit: 0 when allowed, else the seconds to wait."""
    refused = await limiter.spend([(rate, key)])
    return 0.0 if refused is None else refused[1]


async def test_burst_of_n_is_allowed_and_the_next_is_refused_with_the_wait(limiter):
    rate = Rate("posts_per_user", 5, 10)
    for _ in range(5):
        assert await hit(limiter, rate, "u1") == 0
    wait = await hit(limiter, rate, "u1")
    assert 1.9 <= wait <= 2.0  # one request every 10/5 s


async def test_keys_and_limits_are_counted_apart(limiter):
    one = Rate("posts_per_user", 1, 60)
    other = Rate("uploads_per_user", 1, 60)
    assert await hit(limiter, one, "u1") == 0
    assert await hit(limiter, one, "u1") > 0
    assert await hit(limiter, one, "u2") == 0
    assert await hit(limiter, other, "u1") == 0


async def test_the_whole_burst_is_back_after_the_window(limiter):
    rate = Rate("signins_per_ip", 3, 1)
    for _ in range(3):
        assert await hit(limiter, rate, "10.0.0.1") == 0
    assert await hit(limiter, rate, "10.0.0.1") > 0
    await asyncio.sleep(1.05)
    for _ in range(3):
        assert await hit(limiter, rate, "10.0.0.1") == 0
    assert await hit(limiter, rate, "10.0.0.1") > 0


async def test_a_refused_request_does_not_cost_anything(limiter):
    rate = Rate("posts_per_ip", 2, 1)
    assert await hit(limiter, rate, "a") == 0
    assert await hit(limiter, rate, "a") == 0
    for _ in range(5):
        assert await hit(limiter, rate, "a") > 0
    await asyncio.sleep(0.55)  # one interval: exactly one more request
    assert await hit(limiter, rate, "a") == 0
    assert await hit(limiter, rate, "a") > 0


async def test_a_request_refused_by_one_limit_costs_nothing_against_the_others(limiter):
    per_user = Rate("posts_per_user", 2, 60)
    per_ip = Rate("posts_per_ip", 1, 60)
    assert await limiter.spend([(per_user, "u1"), (per_ip, "10.0.0.1")]) is None
    refused = await limiter.spend([(per_user, "u1"), (per_ip, "10.0.0.1")])
    assert refused is not None and refused[0] == per_ip and 59 < refused[1] <= 60
    assert await limiter.spend([(per_user, "u1"), (per_ip, "10.0.0.2")]) is None  # u1's 2nd: still there
    assert (await limiter.spend([(per_user, "u1"), (per_ip, "10.0.0.3")]))[0] == per_user


async def test_connection_cap_counts_open_connections_of_a_user(limiter):
    assert await limiter.open_connection(7, "c1", 2)
    assert await limiter.open_connection(7, "c2", 2)
    assert not await limiter.open_connection(7, "c3", 2)
    assert await limiter.open_connection(8, "d1", 2)  # another user
    await limiter.close_connection(7, "c1")
    assert await limiter.open_connection(7, "c3", 2)
    assert not await limiter.open_connection(7, "c4", 2)


def test_gcra_tolerates_rounding_at_the_boundary():
    rate = Rate("x", 7, 60)  # 60/7 is not exact in binary
    tat, now = 0.0, 1000.0
    for _ in range(7):
        tat, wait = gcra(tat, now, rate)
        assert wait == 0
    assert gcra(tat, now, rate)[1] > 0


def test_memory_limiter_forgets_full_buckets_when_it_grows(monkeypatch):
    from feeds_server.ratelimit import memory as ratelimit_memory

    monkeypatch.setattr(ratelimit_memory, "SWEEP_AT", 10)
    clock = [0.0]
    limiter = MemoryLimiter(clock=lambda: clock[0])
    rate = Rate("x", 1, 1)
    for i in range(10):
        asyncio.run(hit(limiter, rate, str(i)))
    clock[0] = 5.0
    asyncio.run(hit(limiter, rate, "late"))
    assert len(limiter._tats) == 1


async def test_redis_connections_of_a_dead_node_expire(redis_url, monkeypatch):
    """A node that dies without closing its connections: they stop counting after the TTL, while a
    live node's renewed connections go on counting."""
    monkeypatch.setattr(ratelimit_redis, "CONNECTION_TTL_SECONDS", 1)
    p = prefix()
    dead = ratelimit_redis.RedisLimiter(redis_url, p)
    alive = ratelimit_redis.RedisLimiter(redis_url, p)
    other = ratelimit_redis.RedisLimiter(redis_url, p)
    try:
        assert await dead.open_connection(5, "gone", 1)
        await dead.close()  # stops renewing, leaves its entry behind, as a crash would
        assert not await alive.open_connection(5, "new", 1)
        await asyncio.sleep(1.1)
        assert await alive.open_connection(5, "new", 1)
        await asyncio.sleep(1.5)  # renewed every TTL/3 by `alive`
        assert not await other.open_connection(5, "third", 1)
    finally:
        await alive.close()
        await other.close()


async def test_redis_unreachable_lets_requests_through():
    """An outage of Redis must not stop posting or connecting: the limiter fails open."""
    from tests.server import free_port

    limiter = ratelimit_redis.RedisLimiter(f"redis://127.0.0.1:{free_port()}/0", prefix())
    try:
        assert await hit(limiter, Rate("posts_per_user", 1, 60), "u") == 0
        assert await hit(limiter, Rate("posts_per_user", 1, 60), "u") == 0
        assert await limiter.open_connection(1, "c", 1)
    finally:
        await limiter.close()


def test_settings_read_rates_from_the_environment(monkeypatch):
    from feeds_server.config import Settings

    monkeypatch.setenv("FEEDS_RATE_POSTS_PER_USER", "5/30")
    assert Settings.from_env().rate_posts_per_user == (5, 30)
    monkeypatch.setenv("FEEDS_RATE_POSTS_PER_USER", "5 per 30")
    with pytest.raises(SystemExit):
        Settings.from_env()


def test_the_former_per_email_sign_in_setting_stops_the_node_with_its_replacements(monkeypatch):
    """A setting that let a stranger lock an owner out is not silently ignored."""
    from feeds_server.config import Settings

    monkeypatch.setenv("FEEDS_RATE_SIGNINS_PER_EMAIL", "10/900")
    with pytest.raises(SystemExit, match="FEEDS_RATE_SIGNINS_PER_ACCOUNT_ADDRESS"):
        Settings.from_env()


def test_read_timeouts_are_positive_seconds(monkeypatch):
    from feeds_server.config import Settings

    monkeypatch.setenv("FEEDS_BODY_TIMEOUT", "2.5")
    assert Settings.from_env().body_timeout == 2.5
    for bad in ("0", "-1", "soon"):
        monkeypatch.setenv("FEEDS_BODY_TIMEOUT", bad)
        with pytest.raises(SystemExit, match="FEEDS_BODY_TIMEOUT"):
            Settings.from_env()
