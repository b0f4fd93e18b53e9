"""HTTP/1.1 keep-alive load generator, run as its own process by bench/posts.py.

    python bench/loadgen.py < spec.json > result.json

A minimal asyncio client (prebuilt request bytes, a response parser that reads the status line
and Content-Length), so that the load process spends little CPU next to the server on a small
machine. Two modes:

- closed: `concurrency` connections each send the next request as soon as the previous one is
  answered, for `duration` seconds: the maximum throughput.
- open: requests are due at a constant `rate` (one every 1/rate s) for `duration` seconds, on a pool
  of up to `pool` connections; a request that finds no idle connection waits for one, and its
  latency is counted from the moment it was due (no coordinated omission).

Requests are spread round-robin over `ports` (several server processes) and over `requests`
(each a method, path, headers, body). Every loop is bounded by the duration and a request cap.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections import Counter
from typing import Any


def build_request(method: str, path: str, port: int, headers: dict[str, str], body: str | None) -> bytes:
    data = body.encode() if body is not None else b""
    lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{port}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    if body is not None:
        lines += ["Content-Type: application/json", f"Content-Length: {len(data)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + data


class HttpConn(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.waiter: asyncio.Future[int] | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("connection lost"))

    def data_received(self, data: bytes) -> None:
        self.buf += data
        self._parse()

    def _parse(self) -> None:
        if self.waiter is None or self.waiter.done():
            return
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(self.buf[:end]).decode("latin-1")
        lines = head.split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value.strip())
            elif name.strip().lower() == "transfer-encoding":
                raise RuntimeError("chunked responses are not supported by this load generator")
        if len(self.buf) < end + 4 + length:
            return
        del self.buf[: end + 4 + length]
        self.waiter.set_result(status)

    async def request(self, raw: bytes) -> int:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(raw)
        return await self.waiter


async def open_conn(port: int) -> HttpConn:
    _, proto = await asyncio.get_running_loop().create_connection(HttpConn, "127.0.0.1", port)
    return proto  # type: ignore[return-value]


def summarize(lat_ms: list[float], statuses: Counter[int], elapsed: float, done: int) -> dict[str, Any]:
    lat = sorted(lat_ms)

    def p(q: float) -> float:
        return lat[min(len(lat) - 1, int(round(q / 100 * (len(lat) - 1))))] if lat else float("nan")

    return {
        "done": done, "elapsed": elapsed, "rate": done / elapsed if elapsed else 0.0,
        "p50": p(50), "p90": p(90), "p99": p(99), "p999": p(99.9), "max": lat[-1] if lat else float("nan"),
        "statuses": {str(k): v for k, v in statuses.items()},
    }


async def closed_loop(spec: dict[str, Any], raws: list[list[bytes]]) -> dict[str, Any]:
    ports, conc, duration = spec["ports"], spec["concurrency"], spec["duration"]
    cap = spec.get("max_requests", 10_000_000)
    conns = [await open_conn(ports[i % len(ports)]) for i in range(conc)]
    lat: list[float] = []
    statuses: Counter[int] = Counter()
    sent = 0
    start = time.perf_counter()
    stop_at = start + duration

    async def worker(i: int) -> None:
        nonlocal sent
        conn = conns[i]
        port_index = i % len(ports)
        k = i
        while time.perf_counter() < stop_at and sent < cap:
            sent += 1
            raw = raws[port_index][k % len(raws[port_index])]
            k += len(conns)
            t = time.perf_counter()
            try:
                status = await conn.request(raw)
            except ConnectionError:
                statuses[-1] += 1
                return
            lat.append((time.perf_counter() - t) * 1000)
            statuses[status] += 1

    await asyncio.wait_for(asyncio.gather(*(worker(i) for i in range(conc))), duration + 60)
    elapsed = time.perf_counter() - start
    for c in conns:
        if c.transport:
            c.transport.close()
    return summarize(lat, statuses, elapsed, len(lat))


async def open_loop(spec: dict[str, Any], raws: list[list[bytes]]) -> dict[str, Any]:
    ports, rate, duration, pool = spec["ports"], spec["rate"], spec["duration"], spec.get("pool", 64)
    total = int(rate * duration)
    idle: asyncio.Queue[tuple[int, HttpConn]] = asyncio.Queue()
    for i in range(pool):
        idle.put_nowait((i % len(ports), await open_conn(ports[i % len(ports)])))
    lat: list[float] = []
    timeline: list[tuple[float, float]] = []  # (when due, s after start; latency, ms)
    statuses: Counter[int] = Counter()
    late = 0

    async def one(due: float, k: int) -> None:
        nonlocal late
        port_index, conn = await idle.get()
        if time.perf_counter() - due > 0.001:
            late += 1
        raw = raws[port_index][k % len(raws[port_index])]
        try:
            status = await conn.request(raw)
        except ConnectionError:
            statuses[-1] += 1
            return
        lat.append((time.perf_counter() - due) * 1000)
        timeline.append((due - start, lat[-1]))
        statuses[status] += 1
        idle.put_nowait((port_index, conn))

    tasks = []
    start = time.perf_counter() + 0.05
    for k in range(total):
        due = start + k / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(due, k)))
    await asyncio.wait_for(asyncio.gather(*tasks), 120)
    elapsed = time.perf_counter() - start
    out = summarize(lat, statuses, elapsed, len(lat))
    out["offered"] = rate
    out["waited_for_connection"] = late
    out["slowest"] = slowest(timeline, out["p99"], start)
    return out


def slowest(timeline: list[tuple[float, float]], p99: float, start: float) -> list[list[float]]:
    """The slowest 1 % of requests as (wall-clock time when due, latency ms), to line them up with
    what the server and the database did meanwhile."""
    wall0 = time.time() - (time.perf_counter() - start)
    return [[round(wall0 + t, 3), round(ms, 1)] for t, ms in timeline if ms >= p99]


async def main() -> None:
    spec = json.loads(sys.stdin.read())
    # raws[port_index] = the request variants prebuilt for that port (Host header).
    raws = [
        [build_request(r["method"], r["path"], port, r.get("headers", {}), r.get("body")) for r in spec["requests"]]
        for port in spec["ports"]
    ]
    cpu0 = time.process_time()
    if spec["mode"] == "closed":
        result = await closed_loop(spec, raws)
    else:
        result = await open_loop(spec, raws)
    result["cpu_self"] = time.process_time() - cpu0  # this process's own CPU, for the report's split
    sys.stdout.write(json.dumps(result))


if __name__ == "__main__":
    try:  # the event loop the server uses, when installed: less CPU taken from the server
        import uvloop
    except ImportError:
        asyncio.run(main())
    else:
        uvloop.run(main())
