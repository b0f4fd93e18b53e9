"""Fault injection: two nodes + a private Redis + PostgreSQL (+ aiosmtpd), faults, and a count.

    flock /tmp/feeds-bench.lock .venv/bin/python -m bench.faults all
    flock /tmp/feeds-bench.lock .venv/bin/python -m bench.faults kill9 --clients 1000
    .venv/bin/python -m bench.faults slow-reader redis-freeze redis-restart restart-both --small

Scenarios (one or more, or `all`): kill9, sigterm, redis-restart, redis-freeze, slow-reader,
churn, slow-query, restart-both, notifier. Each prints what was injected, events posted, events
lost, duplicates, out-of-order, leaks (all must be 0) and the figures of that scenario; the exit
status is 1 when any of those counts is not 0 or a scenario's bound was missed.

--small runs each scenario at the size of the fast tests (tests/faults/test_faults_fast.py; the
slowest ones, slow-reader, redis-freeze, redis-restart and restart-both at that size, run only
here): under a minute each, and only the counts decide the exit status (missed time bounds are
printed, as the tests do not check them). Size options given with --small still apply.
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


# --small: the sizes of tests/faults/test_faults_fast.py, then what a scenario's test used on top.
SMALL = {"clients": 60, "members": 5, "seconds": 6.0, "freeze": 2.0, "cycles": 1000, "slow_queries": 100, "mentions": 300}
SMALL_BY_SCENARIO: dict[str, dict[str, float]] = {
    "redis-restart": {"seconds": 3.0},
    "redis-freeze": {"seconds": 3.0},
    "slow-reader": {"clients": 50, "seconds": 12.0},
    "restart-both": {"clients": 100},
}


def sized(name: str, args: argparse.Namespace) -> argparse.Namespace:
    """The arguments for one scenario: with --small, its test's sizes where no option was given."""
    if not args.small:
        return args
    given = vars(args)
    return argparse.Namespace(**{**given, **{k: v for k, v in SMALL_BY_SCENARIO.get(name, {}).items() if given[k] == SMALL[k]}})


async def run(names: list[str], args: argparse.Namespace) -> list[Result]:
    results: list[Result] = []
    for name in names:
        args_of = sized(name, args)
        if name == "notifier":
            from bench.faults.notifier import notifier_faults

            small = {"kill_count": 2, "down": 1.0, "soft": 10} if args.small else {}
            results.append(await notifier_faults(args.mentions, **small))
            results[-1].print()
            continue
        with world() as cluster:
            await cluster.setup(args.members)
            if name in ("kill9", "sigterm"):
                sig = signal.SIGKILL if name == "kill9" else signal.SIGTERM
                res = await scenarios.node_loss(cluster, args_of.clients, args_of.rate, args_of.seconds, sig)
            else:
                res = await getattr(scenarios, name.replace("-", "_"))(cluster, args_of)
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
    p.add_argument("--lead", type=float, default=3.0, help="seconds of posts before a Redis fault or a restart of both nodes")
    p.add_argument("--after", type=float, default=5.0, help="seconds of posts after both nodes are back (restart-both)")
    p.add_argument("--redis-down", type=float, default=2.0, help="seconds Redis stays down (redis-restart)")
    p.add_argument("--small", action="store_true", help="the sizes of the fast tests; only the counts decide the exit status")
    args = p.parse_args(argv)
    if args.small:
        p.set_defaults(**SMALL)
        args = p.parse_args(argv)
    names = SCENARIOS if "all" in args.scenarios else args.scenarios
    raise_nofile()
    print_machine()
    results = asyncio.run(run(names, args))
    return 0 if all(r.correct if args.small else r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
