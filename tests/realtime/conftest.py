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
