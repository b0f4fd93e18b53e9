"""Recovering Centrifuge clients for the fault runs: they reconnect and recover as the SDKs do.

Each client keeps, per channel, the last `epoch` and `offset` it saw; after any disconnect it
waits the SDKs' jittered backoff (centrifuge-js: `min(max, min + random(0, min(max, min·2^step)))`,
min 0.5 s, max 20 s, step = failed attempts in a row) and reconnects with `recover: true` for every
channel. Like a load balancer, an attempt tries the client's own node first and, when that one
refuses the TCP connection, the next. Every `org`-channel publication is recorded by its `seq` and
by the number in its post body (`fault N`), so the harness can count lost, duplicated and
out-of-order events per client.
"""

from __future__ import annotations

import asyncio
import random
import re
import time
from dataclasses import dataclass, field

import orjson
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from bench.faults.cluster import Cluster

BODY = re.compile(r"fault (\d+)")
MIN_DELAY, MAX_DELAY = 0.5, 20.0


def backoff(step: int, min_delay: float = MIN_DELAY, max_delay: float = MAX_DELAY) -> float:
    """centrifuge-js `backoff()`: full jitter on top of the minimum, capped."""
    step = min(step, 31)
    return min(max_delay, min_delay + random.uniform(0, min(max_delay, min_delay * 2**step)))


@dataclass(eq=False)
class StreamClient:
    urls: list[str]
    token: str
    preferred: int = 0
    channel: str = "org"
    subs: dict[str, tuple[str, int]] = field(default_factory=dict)  # channel -> (epoch, offset)
    got: list[int] = field(default_factory=list)  # post numbers in receive order
    got_at: list[float] = field(default_factory=list)  # monotonic receive times, parallel to `got`
    seen_seqs: set[int] = field(default_factory=set)
    last_seq: int = 0
    duplicates: int = 0
    out_of_order: int = 0
    not_recovered: int = 0
    close_codes: list[int] = field(default_factory=list)
    connects: int = 0
    lost_at: float | None = None  # monotonic time the current outage began
    reconnect_times: list[float] = field(default_factory=list)  # outage start -> recovered reply
    recovered_at: list[float] = field(default_factory=list)  # monotonic times of recovered replies
    connected: asyncio.Event = field(default_factory=asyncio.Event)
    stopping: bool = False
    node: str = ""
    _ws: object | None = None

    # --- receiving --------------------------------------------------------------------------
    def _publication(self, channel: str, pub: dict) -> None:  # type: ignore[type-arg]
        offset = int(pub.get("offset", 0))
        if channel in self.subs:
            epoch, old = self.subs[channel]
            self.subs[channel] = (epoch, max(old, offset))
        if channel != self.channel:
            return
        data = pub.get("data") or {}
        seq = int(data.get("seq", offset))
        if seq in self.seen_seqs:
            self.duplicates += 1
            return
        if seq < self.last_seq:
            self.out_of_order += 1
        self.seen_seqs.add(seq)
        self.last_seq = max(self.last_seq, seq)
        post = (data.get("payload") or {}).get("post") or {}
        m = BODY.search(post.get("body") or "")
        if m:
            self.got.append(int(m.group(1)))
            self.got_at.append(time.monotonic())

    def _connect_reply(self, result: dict) -> None:  # type: ignore[type-arg]
        for channel, sub in (result.get("subs") or {}).items():
            if "epoch" not in sub:
                continue  # not positioned (`$counts`): nothing to recover
            if sub.get("was_recovering") and not sub.get("recovered"):
                self.not_recovered += 1
            for pub in sub.get("publications") or []:
                self._publication(channel, pub)
            self.subs[channel] = (sub.get("epoch", ""), int(sub.get("offset", 0)))

    # --- the connection loop ------------------------------------------------------------------
    async def run(self) -> None:
        step = 0
        while not self.stopping:
            ok = await self._session()
            if self.stopping:
                return
            step = 0 if ok else step + 1
            await asyncio.sleep(backoff(step))

    async def _open(self):  # type: ignore[no-untyped-def]
        n = len(self.urls)
        last: Exception | None = None
        for i in range(n):
            url = self.urls[(self.preferred + i) % n]
            try:
                ws = await connect(url, compression=None, open_timeout=10, ping_interval=None, max_size=2**24, close_timeout=1)
                self.node = url
                return ws
            except (OSError, InvalidHandshake, InvalidStatus, asyncio.TimeoutError) as exc:
                last = exc
        raise OSError(f"no node accepted: {last!r}")

    async def _session(self) -> bool:
        """One connection, from open to close. True when it got as far as a connect reply."""
        try:
            ws = await self._open()
        except OSError:
            return False
        self._ws = ws
        replied = False
        try:
            subs = {ch: {"recover": True, "epoch": e, "offset": o} for ch, (e, o) in self.subs.items()}
            cmd = {"id": 1, "connect": {"token": self.token, **({"subs": subs} if subs else {})}}
            await ws.send(orjson.dumps(cmd).decode())
            async for message in ws:
                for line in (message.encode() if isinstance(message, str) else message).split(b"\n"):
                    if not line:
                        continue
                    if line == b"{}":
                        await ws.send("{}")
                        continue
                    frame = orjson.loads(line)
                    push = frame.get("push")
                    if push is not None:
                        if "pub" in push:
                            self._publication(push.get("channel", ""), push["pub"])
                        continue
                    if frame.get("id") == 1 and "connect" in frame:
                        self._connect_reply(frame["connect"])
                        replied = True
                        self.connects += 1
                        now = time.monotonic()
                        if self.lost_at is not None:
                            self.reconnect_times.append(now - self.lost_at)
                            self.recovered_at.append(now)
                            self.lost_at = None
                        self.connected.set()
                    elif frame.get("id") == 1 and "error" in frame:
                        return False
        except ConnectionClosed as exc:
            code = exc.rcvd.code if exc.rcvd is not None else 1006
            self.close_codes.append(code)
        except (OSError, asyncio.TimeoutError):
            self.close_codes.append(1006)
        finally:
            self._ws = None
            self.connected.clear()
            if not self.stopping and self.lost_at is None:
                self.lost_at = time.monotonic()
        return replied

    async def close(self) -> None:
        self.stopping = True
        ws = self._ws
        if ws is not None:
            await ws.close()  # type: ignore[attr-defined]


@dataclass
class Tally:
    clients: int
    posted: int
    lost: int
    duplicates: int
    out_of_order: int
    not_recovered: int

    @property
    def clean(self) -> bool:
        return self.lost == 0 and self.duplicates == 0 and self.out_of_order == 0 and self.not_recovered == 0


def tally(clients: list[StreamClient], posted: set[int]) -> Tally:
    lost = dup = ooo = nr = 0
    for c in clients:
        got = set(c.got)
        lost += len(posted - got)
        dup += c.duplicates + (len(c.got) - len(got))
        ooo += c.out_of_order
        nr += c.not_recovered
    return Tally(len(clients), len(posted), lost, dup, ooo, nr)


async def wait_all(clients: list[StreamClient], posted: set[int], timeout: float) -> float:
    """Until every client has every posted number (or timeout). Returns the seconds waited."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if all(posted <= set(c.got) for c in clients):
            break
        await asyncio.sleep(0.1)
    return time.monotonic() - start


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


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
