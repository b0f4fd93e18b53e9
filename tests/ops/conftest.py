"""Operations: rate limits over both limiter backends, metrics, graceful shutdown of real nodes."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from feeds_server.api.app import create_app
from feeds_server.config import Settings
from feeds_server.ratelimit.limiter import Limiter
from feeds_server.ratelimit.memory import MemoryLimiter
from feeds_server.runtime.services import Services
from tests.realtime.conftest import node_env, redis_url  # noqa: F401 - fixtures shared with tests/realtime
from tests.server import ServerProcess


@pytest.fixture(params=["memory", "redis"])
def limiter_backend(request: pytest.FixtureRequest) -> str:
    if request.param == "redis":
        request.getfixturevalue("redis_url")
    return request.param


def prefix() -> str:
    """Keys of one test apart from every other run sharing the Redis."""
    return f"test-{uuid.uuid4().hex[:10]}"


@pytest.fixture
async def limiter(limiter_backend: str, request: pytest.FixtureRequest) -> AsyncIterator[Limiter]:
    if limiter_backend == "memory":
        yield MemoryLimiter()
        return
    from feeds_server.ratelimit.redis import RedisLimiter

    redis_limiter = RedisLimiter(request.getfixturevalue("redis_url"), prefix())
    yield redis_limiter
    await redis_limiter.close()


@pytest.fixture
async def limited_client(settings: Settings, limiter_backend: str, request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    """Returns `make(**settings)`: an in-process app with those settings and the chosen limiter
    backend, and an HTTP client for it. The balancer at 127.0.0.1 is trusted, so tests pick the
    client's address with `X-Forwarded-For`."""
    built: list[tuple[Services, httpx.AsyncClient]] = []

    async def make(**overrides: object) -> httpx.AsyncClient:
        redis = request.getfixturevalue("redis_url") if limiter_backend == "redis" else ""
        s = replace(settings, redis_url=redis, redis_prefix=prefix(), trusted_proxies=("127.0.0.1/32",), **overrides)
        services = Services.build(s)
        app = create_app(services=services)
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")
        built.append((services, client))
        return client

    yield make
    for services, client in built:
        await client.aclose()
        state = client._transport.app.state  # type: ignore[attr-defined]
        await state.limiter.close()
        await state.hub.broker.close()
        await services.engine.dispose()


@pytest.fixture
def start_node(settings, services, tmp_path: Path) -> Iterator:  # type: ignore[no-untyped-def]
    """Starts `feeds-server serve` processes on the test database with extra settings; stops them after."""
    started: list[ServerProcess] = []

    def start(**extra: str) -> ServerProcess:
        node = ServerProcess(node_env(settings, **extra), log_path=tmp_path / f"node-{len(started)}.log").start()
        started.append(node)
        return node

    yield start
    for node in started:
        node.stop()
