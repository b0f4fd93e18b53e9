"""Many Centrifuge WebSocket clients in one process, driven by bench/realtime.py over stdin/stdout.

    python bench/wsclients.py      # then JSON commands, one per line, on stdin

Each client is an asyncio Protocol around the `websockets` library's sans-I/O `ClientProtocol`
(no task and no future per connection, so one process holds thousands of sockets cheaply and
timestamps a frame the moment its bytes arrive). No compression is offered. A client sends
`{"id":1,"connect":{"token":...}}` after the upgrade, answers the server's pings `{}` with `{}`,
and counts publications (`{"push":{...,"pub":...}}`, possibly several per frame, one per line).
Publication bodies carry `ts<monotonic ns>`, the moment the publisher sent the event (one machine:
CLOCK_MONOTONIC is shared by every process); the receive delay goes into a histogram of 50 µs
buckets.

Commands (each answered by one JSON line):
  {"cmd": "connect", "url": ws://..., "n": N, "tokens": [...], "concurrency": C, "timeout": s}
  {"cmd": "reset"}                        clear counters and histogram
  {"cmd": "stats"}                        counters, histogram, first/last receive time
  {"cmd": "wait", "count": X, "timeout": s}   until X publications were counted (or timeout)
  {"cmd": "close_all", "timeout": s}      close every client
  {"cmd": "exit"}
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
import time
from collections import Counter
from typing import Any

from websockets.client import ClientProtocol
from websockets.frames import Opcode
from websockets.http11 import Response
from websockets.uri import parse_uri

TS = re.compile(rb"ts(\d{6,})")
BUCKET_NS = 50_000


class Stats:
    def __init__(self) -> None:
        self.reset()
        self.open = 0
        self.closed_by_server: Counter[int] = Counter()

    def reset(self) -> None:
        self.pubs = 0
        self.hist: Counter[int] = Counter()
        self.heads: dict[int, int] = {}  # publish time -> this process's first receive of that event
        self.first_ns = 0
        self.last_ns = 0
        self.max_line = 0
        self.pings = 0
        self.waiter: tuple[int, asyncio.Future[None]] | None = None


STATS = Stats()


class Client(asyncio.Protocol):
    __slots__ = ("ws", "tr", "connect_cmd", "state", "ready", "started", "closing")

    def __init__(self, url: str, token: str, ready: asyncio.Future[bool]) -> None:
        self.ws = ClientProtocol(parse_uri(url), max_size=2**22)
        self.tr: asyncio.Transport | None = None
        self.connect_cmd = json.dumps({"id": 1, "connect": {"token": token}}).encode()
        self.closing = False
        self.state = 0  # 0 upgrading, 1 waiting for the connect reply, 2 connected, 3 gone
        self.ready = ready
        self.started = time.monotonic()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.tr = transport  # type: ignore[assignment]
        self.ws.send_request(self.ws.connect())
        self._flush()

    def _flush(self) -> None:
        assert self.tr is not None
        for chunk in self.ws.data_to_send():
            if chunk:
                self.tr.write(chunk)
            elif self.tr.can_write_eof():
                self.tr.write_eof()

    def _fail(self, ok: bool = False) -> None:
        if not self.ready.done():
            self.ready.set_result(ok)

    def data_received(self, data: bytes) -> None:
        now = time.monotonic_ns()
        self.ws.receive_data(data)
        for ev in self.ws.events_received():
            if isinstance(ev, Response):
                if ev.status_code != 101:
                    self._fail()
                    continue
                self.state = 1
                self.ws.send_text(self.connect_cmd)
            elif ev.opcode is Opcode.TEXT:
                self._text(ev.data, now)
            elif ev.opcode is Opcode.CLOSE:
                code = int.from_bytes(ev.data[:2], "big") if len(ev.data) >= 2 else 1005
                if not self.closing:
                    STATS.closed_by_server[code] += 1
        self._flush()

    def _text(self, data: bytes, now: int) -> None:
        st = STATS
        for line in data.split(b"\n"):
            if line == b"{}":
                st.pings += 1
                self.ws.send_text(b"{}")
                continue
            if b'"pub"' in line:
                st.pubs += 1
                if len(line) > st.max_line:
                    st.max_line = len(line)
                m = TS.search(line)
                if m:
                    sent = int(m.group(1))
                    st.hist[(now - sent) // BUCKET_NS] += 1
                    if sent not in st.heads:
                        st.heads[sent] = now
                if not st.first_ns:
                    st.first_ns = now
                st.last_ns = now
                if st.waiter is not None and st.pubs >= st.waiter[0] and not st.waiter[1].done():
                    st.waiter[1].set_result(None)
                continue
            if self.state == 1 and line.startswith(b'{"id":1'):
                if b'"connect"' in line:
                    self.state = 2
                    st.open += 1
                    self._fail(True)
                else:
                    self._fail(False)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.state == 2:
            STATS.open -= 1
        self.state = 3
        self._fail(False)

    def close(self) -> None:
        if self.state == 2 and self.tr is not None and not self.tr.is_closing():
            self.closing = True  # the server's answering close frame is not one of its own
            self.ws.send_close(1000)
            self._flush()
        elif self.tr is not None:
            self.tr.close()


CLIENTS: list[Client] = []


async def connect(url: str, n: int, tokens: list[str], concurrency: int, timeout: float) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    host_port = url.split("//", 1)[1].split("/", 1)[0]
    host, port = host_port.rsplit(":", 1)
    sem = asyncio.Semaphore(concurrency)
    ok = failed = 0
    lat: list[float] = []
    deadline = time.monotonic() + timeout

    async def one(i: int) -> None:
        nonlocal ok, failed
        async with sem:
            if time.monotonic() > deadline:
                failed += 1
                return
            ready: asyncio.Future[bool] = loop.create_future()
            t = time.monotonic()
            try:
                _, client = await asyncio.wait_for(
                    loop.create_connection(lambda: Client(url, tokens[i % len(tokens)], ready), host, int(port)), 30
                )
                good = await asyncio.wait_for(ready, max(1.0, deadline - time.monotonic()))
            except (OSError, asyncio.TimeoutError):
                failed += 1
                return
            if good:
                ok += 1
                lat.append(time.monotonic() - t)
                CLIENTS.append(client)  # type: ignore[arg-type]
            else:
                failed += 1
                client.close()  # type: ignore[attr-defined]

    start = time.monotonic()
    await asyncio.gather(*(one(i) for i in range(n)))
    elapsed = time.monotonic() - start
    lat.sort()
    return {
        "ok": ok, "failed": failed, "elapsed": elapsed, "open": STATS.open,
        "p50_ms": 1000 * lat[len(lat) // 2] if lat else None, "p99_ms": 1000 * lat[int(len(lat) * 0.99)] if lat else None,
    }


async def close_all(timeout: float) -> dict[str, Any]:
    for c in CLIENTS:
        c.close()
    deadline = time.monotonic() + timeout
    while STATS.open > 0 and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    for c in CLIENTS:
        if c.tr is not None and not c.tr.is_closing():
            c.tr.close()
    CLIENTS.clear()
    await asyncio.sleep(0.2)
    return {"open": STATS.open}


def stats() -> dict[str, Any]:
    st = STATS
    return {
        "pubs": st.pubs, "hist": {str(k): v for k, v in st.hist.items()},
        "heads": {str(k): v for k, v in st.heads.items()}, "first_ns": st.first_ns, "last_ns": st.last_ns,
        "max_line": st.max_line, "pings": st.pings, "open": st.open, "closed_by_server": {str(k): v for k, v in st.closed_by_server.items()},
    }


async def wait(count: int, timeout: float) -> dict[str, Any]:
    if STATS.pubs < count:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        STATS.waiter = (count, fut)
        try:
            await asyncio.wait_for(fut, timeout)
        except asyncio.TimeoutError:
            pass
        STATS.waiter = None
    return stats()


async def main() -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while True:
        line = await reader.readline()
        if not line:
            break
        cmd = json.loads(line)
        name = cmd["cmd"]
        if name == "connect":
            out = await connect(cmd["url"], cmd["n"], cmd["tokens"], cmd.get("concurrency", 100), cmd.get("timeout", 120))
        elif name == "reset":
            STATS.reset()
            out = {"ok": True}
        elif name == "stats":
            out = stats()
        elif name == "wait":
            out = await wait(cmd["count"], cmd.get("timeout", 60))
        elif name == "close_all":
            out = await close_all(cmd.get("timeout", 30))
        elif name == "exit":
            await close_all(5)
            sys.stdout.write(json.dumps({"ok": True}) + "\n")
            sys.stdout.flush()
            break
        else:
            out = {"error": f"unknown command {name}"}
        sys.stdout.write(json.dumps(out) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    asyncio.run(main())
