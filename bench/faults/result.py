"""What a fault scenario reports: the `Result` it prints, and the counts every scenario takes the same way."""

from __future__ import annotations

import asyncio
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from bench.faults.clients import StreamClient, tally
from bench.faults.cluster import Cluster


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
        status = "OK" if self.ok else "FAILED" if not self.correct else "OK, BOUND MISSED"
        print(f"== {self.scenario}: {status}")
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
