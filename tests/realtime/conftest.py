"""Real server processes on the test database, for real WebSocket clients."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.server import ServerProcess


def node_env(settings, **extra: str) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {
        "FEEDS_DATABASE_URL": settings.database_url,
        "FEEDS_DATA_DIR": str(settings.data_dir),
        "FEEDS_SECRET_KEY": "test-secret-key",
        "FEEDS_ARGON2_TIME_COST": "1",
        "FEEDS_ARGON2_MEMORY_KIB": "64",
        "FEEDS_ALLOWED_ORIGINS": "http://allowed.example",
        "FEEDS_LOG_LEVEL": "warning",
        **extra,
    }


@pytest.fixture
def node(settings, services, tmp_path: Path) -> Iterator[ServerProcess]:  # type: ignore[no-untyped-def]
    server = ServerProcess(node_env(settings), log_path=tmp_path / "node.log").start()
    yield server
    server.stop()


@pytest.fixture
def redis_url() -> str:
    """Redis for several nodes; skipped locally (failed under CI) when it is not running."""
    import redis

    from tests.conftest import REDIS_URL, unavailable

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
    except Exception as exc:  # noqa: BLE001 - any failure means "unavailable"
        unavailable("Redis", repr(exc))
    return REDIS_URL


@pytest.fixture
def cluster(settings, services, redis_url: str, tmp_path: Path) -> Iterator[tuple[ServerProcess, ServerProcess]]:  # type: ignore[no-untyped-def]
    """Two nodes sharing events through Redis (a prefix of their own keeps test runs apart)."""
    import uuid

    env = node_env(settings, FEEDS_REDIS_URL=redis_url, FEEDS_REDIS_PREFIX=f"test-{uuid.uuid4().hex[:8]}")
    a = ServerProcess(env, log_path=tmp_path / "node-a.log").start()
    b = ServerProcess(env, log_path=tmp_path / "node-b.log").start()
    yield a, b
    a.stop()
    b.stop()
