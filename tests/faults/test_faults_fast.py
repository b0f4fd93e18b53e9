"""The fast subset of `python -m bench.faults`: the same scenarios, small (docs/reliability.md, "Faults").

Two real nodes (bench/faults/node.py), a redis-server of the test's own on a free port (never the
machine's Redis), a fresh PostgreSQL database, real WebSocket clients that reconnect and recover
as the Centrifuge SDKs do. Every scenario must count 0 lost, 0 duplicates, 0 out-of-order and
0 leaks; its time bounds are checked by the bench command, not here.

The longest scenarios run here shortened (Redis restarted, both nodes restarted) or not at all:
the slow reader needs two phases of several seconds around the 5 s stall bound, and Redis frozen
repeats the restart's lesson with a hang instead of a refusal. Both run at the size these tests
once had with `python -m bench.faults slow-reader redis-freeze redis-restart restart-both --small`;
what closes a slow reader is tested without a cluster in test_slow_client.py.
"""

from __future__ import annotations

import argparse
import shutil
import signal
from collections.abc import Iterator

import pytest

from bench.faults import scenarios
from bench.faults.cluster import Cluster, world
from bench.faults.result import Result
from bench.faults.scenarios import node_loss
from tests.conftest import unavailable


def _args(**kw: float) -> argparse.Namespace:
    base = {"clients": 60, "members": 6, "rate": 10.0, "seconds": 6.0, "freeze": 2.0, "cycles": 1000, "slow_queries": 100,
            "mentions": 300, "lead": 3.0, "after": 5.0, "redis_down": 2.0}
    return argparse.Namespace(**{**base, **kw})


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    """Needs PostgreSQL (bench/harness.py's admin DSN) and the redis-server binary."""
    import subprocess

    from bench.harness import PG_ADMIN_DSN

    if shutil.which("redis-server") is None:
        unavailable("redis-server", "not installed")
    if subprocess.run(["psql", PG_ADMIN_DSN, "-Atc", "select 1"], capture_output=True).returncode != 0:
        unavailable("PostgreSQL", PG_ADMIN_DSN)
    with world() as c:
        yield c


def _clean(result: Result) -> None:
    result.print()
    assert (result.lost, result.duplicates, result.out_of_order, result.leaks) == (0, 0, 0, 0), result
    assert not result.failures, result.failures  # time bounds (result.missed) are the bench's, not the tests'
    assert result.posted > 0 or result.scenario in ("churn", "slow-query")


async def test_kill_9_of_a_node_loses_nothing(cluster):
    await cluster.setup(4)
    _clean(await node_loss(cluster, 60, 10.0, 4.5, signal.SIGKILL))


async def test_sigterm_moves_clients_to_the_other_node(cluster):
    await cluster.setup(4)
    _clean(await node_loss(cluster, 60, 10.0, 4.5, signal.SIGTERM))


async def test_redis_restarted_then_both_nodes_restarted(cluster):
    """One cluster for both: the nodes that re-subscribed after Redis came back are then restarted."""
    await cluster.setup(4)
    _clean(await scenarios.redis_restart(cluster, _args(clients=40, seconds=0.0, lead=1.0, redis_down=1.0)))
    _clean(await scenarios.restart_both(cluster, _args(clients=40, lead=1.0, after=2.0)))


async def test_connect_close_churn_and_closing_during_slow_queries_leak_nothing(cluster):
    await cluster.setup(4)
    _clean(await scenarios.churn(cluster, _args()))
    _clean(await scenarios.slow_query(cluster, _args()))


async def test_notifier_under_smtp_faults_and_worker_kills_sends_each_email_once():
    import subprocess

    from bench.faults.notifier import notifier_faults
    from bench.harness import PG_ADMIN_DSN

    if subprocess.run(["psql", PG_ADMIN_DSN, "-Atc", "select 1"], capture_output=True).returncode != 0:
        unavailable("PostgreSQL", PG_ADMIN_DSN)
    _clean(await notifier_faults(300, kill_count=2, down=1.0, soft=10))
