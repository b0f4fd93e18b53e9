"""A short fuzzing run of every operation of the OpenAPI document: no input makes the server
answer 5xx. The long run is `bench/fuzz.py`; its figures are in docs/reliability.md."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import factory
from tests.abuse import fuzz
from tests.realtime.conftest import node_env
from tests.realtime.helpers import actor_on
from tests.server import ServerProcess


@pytest.fixture
def backend() -> str:
    return "postgres"  # strictest about text (NUL bytes) and types


@pytest.fixture
def node(settings, services, tmp_path: Path) -> Iterator[ServerProcess]:  # type: ignore[no-untyped-def]
    """A node without rate limits: the fuzzer sends hundreds of requests as one user."""
    server = ServerProcess(node_env(settings, FEEDS_RATE_LIMITS="off"), log_path=tmp_path / "node.log").start()
    yield server
    server.stop()


async def test_no_generated_request_gets_a_5xx(node, settings, services):
    owner = await actor_on(node.url, factory.unique("Fuzz"))
    org = await factory.create_org(owner, factory.unique("fuzz"), load_sample_data=True)
    ids = await fuzz.real_ids(node.url, owner.token, org["slug"], owner.id)
    result = await asyncio.to_thread(fuzz.run, node.url, owner.token, org["slug"], 3, 0, ids)
    assert result.operations > 50 and result.examples > 200, result
    assert result.server_errors == [], "\n".join(result.server_errors[:20])
