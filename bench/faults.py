"""Fault injection: two nodes + a private Redis + PostgreSQL (+ aiosmtpd), faults, and a count.

    flock /tmp/feeds-bench.lock .venv/bin/python bench/faults.py all
    flock /tmp/feeds-bench.lock .venv/bin/python bench/faults.py kill9 --clients 1000

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
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.fault_clients import StreamClient, pct, tally, wait_all  # noqa: E402
from bench.fault_env import Cluster, Poster, world  # noqa: E402
from bench.harness import print_machine, raise_nofile  # noqa: E402


@dataclass
class Result:
    scenario: str
    injected: str
    posted: int = 0
    lost: int = 0
    duplicates: int = 0
    out_of_order: int = 0
    leaks: int = 0
    figures: dict[str, Any] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)  # something went wrong
    missed: list[str] = field(default_factory=list)  # a time or size bound of the scenario was missed

    @property
    def correct(self) -> bool:
        return not (self.lost or self.duplicates or self.out_of_order or self.leaks or self.failures)

    @property
    def ok(self) -> bool:
        return self.correct and not self.missed

    def print(self) -> None:
        print(f"== {self.scenario}: {'OK' if self.ok else 'FAILED'}")
        print(f"   injected: {self.injected}")
        print(f"   events posted {self.posted}, lost {self.lost}, duplicates {self.duplicates}, "
              f"out-of-order {self.out_of_order}, leaks {self.leaks}")
        for k, v in self.figures.items():
            print(f"   {k}: {v}")
        for f in self.failures:
            print(f"   FAILED: {f}")
        for f in self.missed:
            print(f"   MISSED bound: {f}")
        sys.stdout.flush()


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


async def start_clients(
    cluster: Cluster, n: int, timeout: float = 120, tokens: list[str] | None = None
) -> tuple[list[StreamClient], list[asyncio.Task[None]]]:
    tokens = tokens or cluster.tokens
    clients = [StreamClient(cluster.ws_urls, tokens[i % len(tokens)], preferred=i % len(cluster.nodes)) for i in range(n)]
    tasks: list[asyncio.Task[None]] = []
    for i, c in enumerate(clients):
        tasks.append(asyncio.create_task(c.run()))
        if i % 50 == 49:
            await asyncio.sleep(0.05)  # do not open a thousand handshakes in one instant
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not all(c.connected.is_set() for c in clients):
        await asyncio.sleep(0.05)
    missing = sum(not c.connected.is_set() for c in clients)
    if missing:
        codes = sorted({code for c in clients for code in c.close_codes})
        raise RuntimeError(f"{missing} of {n} clients did not connect (close codes {codes})")
    return clients, tasks


async def stop_clients(clients: list[StreamClient], tasks: list[asyncio.Task[None]]) -> None:
    await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def count(result: Result, clients: list[StreamClient], posted: set[int]) -> None:
    t = tally(clients, posted)
    result.posted, result.lost, result.duplicates, result.out_of_order = t.posted, t.lost, t.duplicates, t.out_of_order
    if t.not_recovered:
        result.failures.append(f"{t.not_recovered} subscriptions answered recovered=false")


async def settle_leaks(cluster: Cluster, nodes: list[int], timeout: float = 10) -> tuple[int, list[dict[str, Any]]]:
    """Connections and pool checkouts left on live nodes once every client is gone."""
    deadline = time.monotonic() + timeout
    while True:
        stats = [await cluster.stats(i) for i in nodes]
        left = sum(s["connections"] + (s["pool_checked_out"] or 0) + s["rooms"] for s in stats)
        if left == 0 or time.monotonic() > deadline:
            return left, stats
        await asyncio.sleep(0.2)


# --- scenarios ----------------------------------------------------------------------------------


async def node_loss(cluster: Cluster, n_clients: int, rate: float, seconds: float, sig: signal.Signals) -> Result:
    """Kill (or terminate) node 0 while clients receive a stream; they recover on node 1."""
    name = "kill9" if sig == signal.SIGKILL else "sigterm"
    result = Result(name, f"{'kill -9' if sig == signal.SIGKILL else 'SIGTERM'} of node 0 of 2 with {n_clients} clients "
                          f"(half on each node) receiving {rate:g} posts/s for {seconds:g} s")
    clients, tasks = await start_clients(cluster, n_clients)
    poster = Poster(cluster, first=1)
    stream = asyncio.create_task(poster.stream(rate, seconds))
    await asyncio.sleep(seconds / 3)
    victim = cluster.nodes[0]
    on_victim = [c for c in clients if c.node == victim.ws_url]
    t_fault = time.monotonic()
    assert victim.proc is not None
    victim.proc.send_signal(sig)
    exit_code = await asyncio.to_thread(victim.proc.wait, 30)
    exit_s = time.monotonic() - t_fault
    await stream
    waited = await wait_all(clients, poster.posted, 60)
    count(result, clients, poster.posted)
    catch_up = [c.recovered_at[0] - t_fault for c in on_victim if c.recovered_at]
    codes: dict[int, int] = {}
    for c in on_victim:
        for code in c.close_codes:
            codes[code] = codes.get(code, 0) + 1
    result.figures.update({
        "clients on the node that went": len(on_victim),
        "moved to the other node": sum(c.node != victim.ws_url for c in on_victim),
        "close codes seen": codes,
        "node exit": f"code {exit_code} after {ms(exit_s)}",
        "catch-up (fault -> recovered) p50 / p99 / max": f"{ms(pct(catch_up, 50))} / {ms(pct(catch_up, 99))} / {ms(max(catch_up, default=0))}",
        "post failures during the fault": poster.failed,
        "all caught up": f"{waited:.1f} s after the last post",
    })
    if len(catch_up) != len(on_victim):
        result.failures.append(f"{len(on_victim) - len(catch_up)} clients never recovered")
    if sig == signal.SIGTERM and exit_s > 15:
        result.missed.append("node took over 15 s to exit on SIGTERM")
    await stop_clients(clients, tasks)
    await poster.close()
    result.leaks, _ = await settle_leaks(cluster, [1])
    return result


SCENARIOS = ["kill9", "sigterm", "redis-restart", "redis-freeze", "slow-reader", "churn", "slow-query", "restart-both", "notifier"]


async def run(names: list[str], args: argparse.Namespace) -> list[Result]:
    results: list[Result] = []
    for name in names:
        if name == "notifier":
            from bench.fault_notifier import notifier_faults

            results.append(await notifier_faults(args.mentions))
            results[-1].print()
            continue
        with world() as cluster:
            await cluster.setup(args.members)
            if name in ("kill9", "sigterm"):
                sig = signal.SIGKILL if name == "kill9" else signal.SIGTERM
                res = await node_loss(cluster, args.clients, args.rate, args.seconds, sig)
            else:
                from bench import fault_more

                res = await getattr(fault_more, name.replace("-", "_"))(cluster, args)
            res.print()
            results.append(res)
    return results


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
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
