"""Fault injection: two nodes + a private Redis + PostgreSQL (+ aiosmtpd), faults, and a count.

    flock /tmp/feeds-bench.lock .venv/bin/python -m bench.faults all
    flock /tmp/feeds-bench.lock .venv/bin/python -m bench.faults kill9 --clients 1000

Scenarios (one or more, or `all`): kill9, sigterm, redis-restart, redis-freeze, slow-reader,
churn, slow-query, restart-both, notifier. Each prints what was injected, events posted, events
lost, duplicates, out-of-order, leaks (all must be 0) and the figures of that scenario; the exit
status is 1 when any of those counts is not 0 or a scenario's bound was missed.
Only loopback traffic; every loop is bounded in count and time.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

from bench.faults import scenarios
from bench.faults.cluster import world
from bench.faults.result import Result
from bench.harness import print_machine, raise_nofile

SCENARIOS = ["kill9", "sigterm", "redis-restart", "redis-freeze", "slow-reader", "churn", "slow-query", "restart-both", "notifier"]


async def run(names: list[str], args: argparse.Namespace) -> list[Result]:
    results: list[Result] = []
    for name in names:
        if name == "notifier":
            from bench.faults.notifier import notifier_faults

            results.append(await notifier_faults(args.mentions))
            results[-1].print()
            continue
        with world() as cluster:
            await cluster.setup(args.members)
            if name in ("kill9", "sigterm"):
                sig = signal.SIGKILL if name == "kill9" else signal.SIGTERM
                res = await scenarios.node_loss(cluster, args.clients, args.rate, args.seconds, sig)
            else:
                res = await getattr(scenarios, name.replace("-", "_"))(cluster, args)
            res.print()
            results.append(res)
    return results


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.faults", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("scenarios", nargs="+", choices=[*SCENARIOS, "all"])
    p.add_argument("--clients", type=int, default=1000, help="WebSocket clients (default 1000)")
    p.add_argument("--members", type=int, default=20, help="org members whose tokens the clients share")
    p.add_argument("--rate", type=float, default=10.0, help="posts per second during a fault")
    p.add_argument("--seconds", type=float, default=15.0, help="length of the post stream around a fault")
    p.add_argument("--freeze", type=float, default=10.0, help="seconds Redis stays frozen (SIGSTOP)")
    p.add_argument("--cycles", type=int, default=100_000, help="connect/close cycles (churn)")
    p.add_argument("--slow-queries", type=int, default=1000, help="clients closing during a slow query")
    p.add_argument("--mentions", type=int, default=10_000, help="mentions emailed in the notifier scenario")
    args = p.parse_args(argv)
    names = SCENARIOS if "all" in args.scenarios else args.scenarios
    raise_nofile()
    print_machine()
    results = asyncio.run(run(names, args))
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
