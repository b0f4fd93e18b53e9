"""`feeds-server serve` with a loop-lag probe and a stats endpoint, for the fault runs.

    python bench/faults/node.py         # same environment as `feeds-server serve --no-migrate`

The server itself is unchanged: this wrapper builds the same app and adds, only in this process,

- a probe task that sleeps 10 ms in a loop and records how late each wake-up is (the event loop's
  lag: anything that blocks the loop shows up here);
- `GET /_fault/stats`: the worst lag since the last read (and a histogram), the process's RSS,
  the number of asyncio tasks, database pool checkouts, hub connections and rooms, Redis
  subscriptions wanted by the broker, and disconnects requested by code.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

PROBE_SECONDS = 0.010


class LagProbe:
    def __init__(self) -> None:
        self.max_ms = 0.0
        self.hist: Counter[int] = Counter()  # 10 ms buckets
        self.samples = 0

    async def run(self) -> None:
        while True:
            t = time.perf_counter()
            await asyncio.sleep(PROBE_SECONDS)
            lag_ms = (time.perf_counter() - t - PROBE_SECONDS) * 1000
            self.samples += 1
            self.hist[int(lag_ms // 10)] += 1
            self.max_ms = max(self.max_ms, lag_ms)

    def read(self) -> dict[str, Any]:
        out = {"lag_max_ms": round(self.max_ms, 1), "lag_hist_10ms": dict(sorted(self.hist.items())), "lag_samples": self.samples}
        self.max_ms, self.hist, self.samples = 0.0, Counter(), 0
        return out


DISCONNECTS: Counter[int] = Counter()


def _count_disconnects() -> None:
    from feeds_server.realtime import hub

    original = hub.Connection.request_close

    def request_close(self, disconnect):  # type: ignore[no-untyped-def]
        if self.close_request is None:
            DISCONNECTS[disconnect.code] += 1
        original(self, disconnect)

    hub.Connection.request_close = request_close  # type: ignore[method-assign]


def _rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def main() -> int:
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from feeds_server.cli import main as cli
    from feeds_server.api import app as app_module

    _count_disconnects()
    probe = LagProbe()
    create_app = app_module.create_app

    def create_app_with_probe(*args: Any, **kwargs: Any):  # type: ignore[no-untyped-def]
        app = create_app(*args, **kwargs)
        inner = app.router.lifespan_context

        async def stats(request: Request) -> JSONResponse:
            hub = request.app.state.hub
            services = request.app.state.services
            pool = services.engine.sync_engine.pool
            broker = hub.broker
            return JSONResponse({
                **probe.read(),
                "rss_kib": _rss_kib(),
                "tasks": len(asyncio.all_tasks()),
                "pool_checked_out": pool.checkedout() if hasattr(pool, "checkedout") else None,
                "connections": hub.connection_count,
                "rooms": len(hub.rooms),
                "broker_orgs": len(getattr(broker, "_orgs", ())),
                "disconnects": {str(k): v for k, v in DISCONNECTS.items()},
            })

        app.router.routes.insert(0, Route("/_fault/stats", stats, methods=["GET"]))

        @contextlib.asynccontextmanager
        async def lifespan(a: Any) -> AsyncIterator[None]:
            task = asyncio.create_task(probe.run(), name="fault-lag-probe")
            try:
                async with inner(a):
                    yield
            finally:
                task.cancel()

        app.router.lifespan_context = lifespan
        return app

    app_module.create_app = create_app_with_probe
    return cli.main(["serve", "--no-migrate"])


if __name__ == "__main__":
    # run as a script, the import path starts at this folder, whose module names must not shadow
    # anything the server imports: start it at the project instead
    sys.path[0] = str(Path(__file__).resolve().parents[2])
    sys.exit(main())
