"""The fault scenarios on the cluster: the loss of one node (kill -9 or SIGTERM), Redis faults, a slow
reader, connection churn, clients closing during slow queries, both nodes restarted.

Each takes a `Cluster` and the command's arguments and returns a `Result`."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import struct
import threading
import time
from typing import Any

import asyncpg
import orjson
from websockets.asyncio.client import connect

from bench.faults.clients import StreamClient, pct, start_clients, stop_clients, wait_all
from bench.faults.cluster import Cluster, Poster
from bench.faults.result import Result, count, ms, settle_leaks
from bench.harness import PG_ADMIN_DSN

LAG_BOUND_MS = 100.0


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


class LagWatch:
    """Polls every node's `/_fault/stats` and keeps the worst loop lag and RSS seen."""

    def __init__(self, cluster: Cluster, nodes: list[int]) -> None:
        self.cluster, self.nodes = cluster, nodes
        self.max_lag = 0.0
        self.max_rss_kib = 0
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            for i in self.nodes:
                try:
                    s = await self.cluster.stats(i)
                except Exception:  # noqa: BLE001 - a node that is down has no figures
                    continue
                self.max_lag = max(self.max_lag, s["lag_max_ms"])
                self.max_rss_kib = max(self.max_rss_kib, s["rss_kib"])
            await asyncio.sleep(0.25)

    async def __aenter__(self) -> "LagWatch":
        for i in self.nodes:
            await self.cluster.stats(i)  # reset the probes' maxima
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        for i in self.nodes:  # what happened since the last poll
            try:
                s = await self.cluster.stats(i)
                self.max_lag = max(self.max_lag, s["lag_max_ms"])
            except Exception:  # noqa: BLE001
                pass


async def _redis_fault(cluster: Cluster, args: argparse.Namespace, freeze: bool) -> Result:
    hold = args.freeze if freeze else args.redis_down
    seconds = max(args.seconds, args.lead + hold + 4)
    what = f"Redis frozen (SIGSTOP) for {hold:g} s" if freeze else f"Redis killed and restarted {hold:g} s later"
    result = Result("redis-freeze" if freeze else "redis-restart",
                    f"{what}, {args.clients} clients (half on each node), {args.rate:g} posts/s through node 1 for {seconds:g} s")
    clients, tasks = await start_clients(cluster, args.clients)
    prefix = cluster.env["FEEDS_REDIS_PREFIX"]
    subs_before = cluster.redis.numsub(f"{prefix}:*")
    poster = Poster(cluster, first=1)
    async with LagWatch(cluster, [0, 1]) as lag:
        stream = asyncio.create_task(poster.stream(args.rate, seconds))
        await asyncio.sleep(args.lead)
        t_fault = time.monotonic()
        n_before = len(poster.latencies)
        if freeze:
            cluster.redis.freeze()
            await asyncio.sleep(hold)
            cluster.redis.thaw()
        else:
            cluster.redis.kill()
            await asyncio.sleep(hold)
            cluster.redis.start()
        during = poster.latencies[n_before:]
        t_back = time.monotonic()
        await stream
        waited = await wait_all(clients, poster.posted, 60)
    count(result, clients, poster.posted)
    # The clients of node 0 get node 1's posts only through Redis or the database.
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and cluster.redis.numsub(f"{prefix}:*") < subs_before:
        await asyncio.sleep(0.2)
    subs_after = cluster.redis.numsub(f"{prefix}:*")
    result.figures.update({
        "posts committed while Redis was out": f"{len(during)} (failed {poster.failed}); post latency max {ms(max(during, default=0))}",
        "worst event-loop lag, both nodes": f"{lag.max_lag:.0f} ms (bound {LAG_BOUND_MS:.0f} ms)",
        "Redis subscriptions before / after": f"{subs_before} / {subs_after}",
        "all caught up": f"{waited:.1f} s after the last post ({t_back - t_fault:.1f} s outage)",
    })
    if lag.max_lag > LAG_BOUND_MS:
        result.missed.append(f"event loop stalled {lag.max_lag:.0f} ms")
    if poster.failed:
        result.failures.append(f"{poster.failed} posts failed while Redis was out")
    if subs_after < subs_before:
        result.failures.append("nodes did not re-subscribe to Redis")
    await stop_clients(clients, tasks)
    await poster.close()
    result.leaks, _ = await settle_leaks(cluster, [0, 1])
    return result


async def redis_restart(cluster: Cluster, args: argparse.Namespace) -> Result:
    return await _redis_fault(cluster, args, freeze=False)


async def redis_freeze(cluster: Cluster, args: argparse.Namespace) -> Result:
    return await _redis_fault(cluster, args, freeze=True)


# --- one client stops reading ----------------------------------------------------------------


class SlowReader:
    """A raw WebSocket client that connects, then never reads again (tiny receive buffer)."""

    def __init__(self, port: int, token: str) -> None:
        self.port, self.token = port, token
        self.sock: socket.socket | None = None
        self.data = bytearray()
        self.reading = False
        self._thread: threading.Thread | None = None

    def read_for_now(self) -> None:
        """Read (in a thread) until `stop_reading`."""
        self.reading = True

        def loop() -> None:
            assert self.sock is not None
            self.sock.settimeout(0.2)
            while self.reading:
                try:
                    self.data += self.sock.recv(1 << 20)
                except socket.timeout:
                    continue

        self._thread = threading.Thread(target=loop, daemon=True)
        self._thread.start()

    def stop_reading(self) -> None:
        self.reading = False
        if self._thread is not None:
            self._thread.join()

    def open(self) -> None:
        import base64

        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.connect(("127.0.0.1", self.port))
        key = base64.b64encode(os.urandom(16)).decode()
        s.sendall((f"GET /connection/websocket HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\nUpgrade: websocket\r\n"
                   f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
        buf = b""
        while b"\r\n\r\n" not in buf:
            buf += s.recv(1)
        payload = orjson.dumps({"id": 1, "connect": {"token": self.token}})
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        s.sendall(bytes([0x81, 0x80 | 126]) + struct.pack("!H", len(payload)) + mask + masked if len(payload) > 125
                  else bytes([0x81, 0x80 | len(payload)]) + mask + masked)
        self.sock = s

    def drain(self, timeout: float = 10) -> int | None:
        """Read everything now; the close code the server sent, if any (None: closed without one)."""
        assert self.sock is not None
        self.sock.settimeout(timeout)
        data = self.data
        try:
            while chunk := self.sock.recv(1 << 20):
                data += chunk
        except (socket.timeout, OSError):
            pass
        self.sock.close()
        # Walk the frames (server frames are unmasked) to the close frame.
        i = 0
        while i + 2 <= len(data):
            op, ln = data[i] & 0x0F, data[i + 1] & 0x7F
            j = i + 2
            if ln == 126:
                ln, j = struct.unpack("!H", data[j:j + 2])[0], j + 2
            elif ln == 127:
                ln, j = struct.unpack("!Q", data[j:j + 8])[0], j + 8
            if j + ln > len(data):
                break
            if op == 0x8 and ln >= 2:
                return struct.unpack("!H", data[j:j + 2])[0]
            i = j + ln
        return None


def _latencies(clients: list[StreamClient], sent: dict[int, float], numbers: set[int]) -> list[float]:
    out = []
    for c in clients:
        for n, at in zip(c.got, c.got_at):
            if n in numbers and n in sent:
                out.append(at - sent[n])
    return out


async def slow_reader(cluster: Cluster, args: argparse.Namespace) -> Result:
    """The slow client's own channel gets a heavy stream of private messages (so its socket buffers
    fill quickly), while every client receives the ordinary org stream."""
    import httpx

    phase = max(8.0, args.seconds)
    heavy_rate, heavy_kb = 40, 30
    result = Result("slow-reader", f"one client of {args.clients + 1}, whose own channel gets {heavy_rate} private messages/s of "
                                   f"{heavy_kb} kB, stops reading (4 KiB receive buffer); the others receive {args.rate:g} posts/s; "
                                   f"{phase:g} s with it reading (baseline), then {phase:g} s with it not reading")
    slow_member, sender = cluster.members[-1], cluster.members[1]
    others = [t for i, t in enumerate(cluster.tokens) if i not in (1, len(cluster.tokens) - 1)]
    clients, tasks = await start_clients(cluster, args.clients, tokens=others)
    poster = Poster(cluster, first=1)
    slow = SlowReader(cluster.nodes[0].port, cluster.tokens[-1])
    await asyncio.to_thread(slow.open)
    slow.read_for_now()
    base0 = await cluster.stats(0)
    before = base0["disconnects"].get("3008", 0)
    closed_after: float | None = None
    max_rss = 0
    t_slow = 0.0

    async def watch() -> None:
        nonlocal closed_after, max_rss
        while True:
            s = await cluster.stats(0)
            max_rss = max(max_rss, s["rss_kib"])
            if closed_after is None and s["disconnects"].get("3008", 0) > before:
                closed_after = time.monotonic() - t_slow
            await asyncio.sleep(0.1)

    async def flood() -> None:
        body = {"body": "heavy " + "y" * (heavy_kb * 1000), "recipient_id": slow_member.user_id}
        async with httpx.AsyncClient(base_url=cluster.nodes[0].url, headers=sender.headers, timeout=30) as c:
            start, n = time.monotonic(), 0
            while time.monotonic() - start < phase:
                r = await c.post(f"/api/v1/orgs/{cluster.slug}/posts", json=body)
                assert r.status_code == 201, r.text
                n += 1
                await asyncio.sleep(max(0, start + n / heavy_rate - time.monotonic()))

    # Baseline: the same load, with the heavy client reading.
    await asyncio.gather(poster.stream(args.rate, phase), flood())
    baseline_n = set(poster.posted)
    if (await cluster.stats(0))["disconnects"].get("3008", 0) > before:
        result.missed.append("the heavy client was closed as slow while it was reading")
    await asyncio.to_thread(slow.stop_reading)
    t_slow = time.monotonic()
    watcher = asyncio.create_task(watch())
    await asyncio.gather(poster.stream(args.rate, phase), flood())
    watcher.cancel()
    await asyncio.gather(watcher, return_exceptions=True)
    slow_n = set(poster.posted) - baseline_n
    waited = await wait_all(clients, poster.posted, 30)
    code = await asyncio.to_thread(slow.drain)
    count(result, clients, poster.posted)
    p99_base = pct(_latencies(clients, poster.sent, baseline_n), 99)
    p99_slow = pct(_latencies(clients, poster.sent, slow_n), 99)
    result.figures.update({
        "others' delivery p99, before / while one is slow": f"{ms(p99_base)} / {ms(p99_slow)} (bound 2x)",
        "slow client closed by the server with 3008 after": "never" if closed_after is None else f"{closed_after:.1f} s",
        "close code the slow client finds when it reads again": code,
        "node 0 RSS before / max while slow": f"{base0['rss_kib'] // 1024} MiB / {max_rss // 1024} MiB",
        "all caught up": f"{waited:.1f} s",
    })
    if closed_after is None or code != 3008:
        result.failures.append("the slow client was not closed with 3008")
    elif closed_after > 10:
        result.missed.append("slow client not closed with 3008 within 10 s")
    if p99_slow > 2 * max(p99_base, 0.010):
        result.missed.append("others' p99 above 2x baseline")
    await stop_clients(clients, tasks)
    await poster.close()
    result.leaks, _ = await settle_leaks(cluster, [0, 1])
    return result


# --- churn ----------------------------------------------------------------------------------


def _rst(ws: Any) -> None:
    sock = ws.transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    ws.transport.abort()


async def _pg(db: str, sql: str) -> Any:
    conn = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        return await conn.fetchval(sql.replace("$DB", db))
    finally:
        await conn.close()


async def _snapshot(cluster: Cluster) -> dict[str, int]:
    s = [await cluster.stats(i) for i in (0, 1)]
    prefix = cluster.env["FEEDS_REDIS_PREFIX"]
    return {
        "rss_kib": sum(x["rss_kib"] for x in s),
        "tasks": sum(x["tasks"] for x in s),
        "pool": sum(x["pool_checked_out"] or 0 for x in s),
        "connections": sum(x["connections"] for x in s),
        "rooms": sum(x["rooms"] for x in s),
        "redis_subs": cluster.redis.numsub(f"{prefix}:org:*"),
        "pg_backends": await _pg(cluster.db, "select count(*) from pg_stat_activity where datname = '$DB'"),
        "idle_in_tx": await _pg(cluster.db, "select count(*) from pg_stat_activity where datname = '$DB' and state like 'idle in transaction%'"),
    }


async def _cycle(url: str, token: str, abrupt: bool, recover: dict[str, Any] | None) -> dict[str, Any] | None:
    ws = await connect(url, compression=None, open_timeout=10, ping_interval=None, close_timeout=2)
    try:
        await ws.send(orjson.dumps({"id": 1, "connect": {"token": token, **({"subs": recover} if recover else {})}}).decode())
        reply = orjson.loads((await asyncio.wait_for(ws.recv(), 10)).split("\n")[0])
        subs = reply.get("connect", {}).get("subs") or {}
        # Only positioned channels recover (`$counts` has no epoch or offset).
        return {ch: {"recover": True, "epoch": s["epoch"], "offset": s["offset"]} for ch, s in subs.items() if "epoch" in s}
    finally:
        if abrupt:
            _rst(ws)
        else:
            await ws.close()


async def churn(cluster: Cluster, args: argparse.Namespace) -> Result:
    n, concurrency = args.cycles, 50
    result = Result("churn", f"{n} WebSocket connect/close cycles, {concurrency} at a time over both nodes, "
                             "half closed normally and half by TCP reset (SO_LINGER 0), half recovering")
    urls = cluster.ws_urls
    for i in range(20):  # warm up: first connections build caches
        await _cycle(urls[i % 2], cluster.tokens[i % len(cluster.tokens)], False, None)
    await asyncio.sleep(1)
    base = await _snapshot(cluster)
    done = errors = 0
    start = time.monotonic()
    deadline = start + max(120.0, n / 100)

    async def worker(w: int) -> None:
        nonlocal done, errors
        recover: dict[str, Any] | None = None
        while done < n and time.monotonic() < deadline:
            i = done
            done += 1
            try:
                got = await _cycle(urls[i % 2], cluster.tokens[i % len(cluster.tokens)], i % 2 == 1, recover if i % 4 >= 2 else None)
                recover = got or recover
            except Exception:  # noqa: BLE001 - counted, not fatal
                errors += 1

    samples: list[str] = []

    async def sample_rss() -> None:
        step = max(1, n // 5)
        mark = step
        while True:
            if done >= mark:
                samples.append(f"{(await _snapshot(cluster))['rss_kib'] // 1024} MiB at {mark}")
                mark += step
            await asyncio.sleep(0.2)

    sampler = asyncio.create_task(sample_rss())
    await asyncio.gather(*(worker(w) for w in range(concurrency)))
    sampler.cancel()
    await asyncio.gather(sampler, return_exceptions=True)
    elapsed = time.monotonic() - start
    # Back to baseline: give the nodes a moment to notice the resets and let go.
    after: dict[str, int] = {}
    settle = time.monotonic() + 20
    while time.monotonic() < settle:
        after = await _snapshot(cluster)
        if all(after[k] <= base[k] for k in ("tasks", "pool", "connections", "rooms", "redis_subs", "idle_in_tx")):
            break
        await asyncio.sleep(0.5)
    leaks = {k: after[k] - base[k] for k in ("tasks", "pool", "connections", "rooms", "redis_subs", "idle_in_tx") if after[k] > base[k]}
    result.leaks = sum(leaks.values())
    grew = (after["rss_kib"] - base["rss_kib"]) / 1024
    result.figures.update({
        "cycles": f"{done} in {elapsed:.0f} s ({done / elapsed:.0f}/s), errors {errors}",
        "baseline -> after (both nodes)": ", ".join(f"{k} {base[k]} -> {after[k]}" for k in base if k != "rss_kib"),
        "RSS (both nodes)": f"{base['rss_kib'] // 1024} MiB -> {after['rss_kib'] // 1024} MiB ({grew:+.0f} MiB); "
                            f"during: {', '.join(samples)}",
    })
    if leaks:
        result.figures["above baseline"] = leaks
    if errors:
        result.failures.append(f"{errors} cycles failed")
    if grew > max(64.0, base["rss_kib"] / 1024 * 0.25):
        result.missed.append(f"RSS grew {grew:.0f} MiB")
    return result


# --- clients closing during slow queries ------------------------------------------------------


async def slow_query(cluster: Cluster, args: argparse.Namespace) -> Result:
    """Tables the requests read are locked by another session, so their queries wait; the client
    goes away meanwhile (half by TCP reset); then the lock is released."""
    import httpx

    n = args.slow_queries
    result = Result("slow-query", f"{n} clients that close while their query waits on a lock (~300 ms): "
                                  "half feed reads over HTTP, half WebSocket connects with recovery; half closed by TCP reset")
    poster = Poster(cluster, first=1)
    for _ in range(5):
        await poster.post()
    recover = await _cycle(cluster.ws_urls[0], cluster.tokens[0], False, None)
    base = await _snapshot(cluster)
    admin = await asyncpg.connect(PG_ADMIN_DSN.rsplit("/", 1)[0] + f"/{cluster.db}")
    done = errors = waiting = 0
    batch = 25
    token = cluster.members[0].headers

    async def http_one(i: int) -> None:
        node = cluster.nodes[i % 2]
        reader, writer = await asyncio.open_connection("127.0.0.1", node.port)
        writer.write((f"GET /api/v1/orgs/{cluster.slug}/feed HTTP/1.1\r\nHost: x\r\n"
                      f"authorization: {token['authorization']}\r\n\r\n").encode())
        await writer.drain()
        await asyncio.sleep(0.1)
        if i % 4 < 2:
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()
        else:
            writer.close()

    async def ws_one(i: int) -> None:
        ws = await connect(cluster.ws_urls[i % 2], compression=None, open_timeout=10, ping_interval=None, close_timeout=1)
        await ws.send(orjson.dumps({"id": 1, "connect": {"token": cluster.tokens[i % len(cluster.tokens)], "subs": recover}}).decode())
        await asyncio.sleep(0.1)
        if i % 4 < 2:
            _rst(ws)
        else:
            ws.transport.close()

    start = time.monotonic()
    while done < n:
        tx = admin.transaction()
        await tx.start()
        await admin.execute("LOCK TABLE posts, event_channels IN ACCESS EXCLUSIVE MODE")
        outs = await asyncio.gather(*((http_one if (done + k) % 2 == 0 else ws_one)(done + k) for k in range(batch)), return_exceptions=True)
        errors += sum(isinstance(o, Exception) for o in outs)
        done += batch
        await asyncio.sleep(0.1)
        waiting += await _pg(cluster.db, "select count(*) from pg_stat_activity where datname = '$DB' and wait_event_type = 'Lock'")
        await asyncio.sleep(0.1)
        await tx.rollback()
    await admin.close()
    elapsed = time.monotonic() - start
    after: dict[str, int] = {}
    settle = time.monotonic() + 20
    while time.monotonic() < settle:
        after = await _snapshot(cluster)
        if all(after[k] <= base[k] for k in ("pool", "connections", "idle_in_tx", "tasks")):
            break
        await asyncio.sleep(0.5)
    leaks = {k: after[k] - base[k] for k in ("pool", "connections", "rooms", "idle_in_tx", "tasks") if after[k] > base[k]}
    result.leaks = sum(leaks.values())
    # The nodes still answer: a read after all that.
    async with httpx.AsyncClient(timeout=10) as c:
        r = await c.get(f"{cluster.nodes[0].url}/api/v1/orgs/{cluster.slug}/feed", headers=token)
    result.figures.update({
        "closed during a slow query": f"{done} in {elapsed:.0f} s, client-side errors {errors}",
        "queries seen waiting on the lock (sum over batches)": waiting,
        "baseline -> after (both nodes)": ", ".join(f"{k} {base[k]} -> {after[k]}" for k in ("pool", "connections", "idle_in_tx", "pg_backends", "tasks")),
        "a feed read afterwards": r.status_code,
    })
    if leaks:
        result.figures["above baseline"] = leaks
    if r.status_code != 200:
        result.failures.append("feed read failed afterwards")
    await poster.close()
    return result


# --- both nodes restarted ---------------------------------------------------------------------


async def restart_both(cluster: Cluster, args: argparse.Namespace) -> Result:
    result = Result("restart-both", f"both nodes restarted (SIGTERM, then started again) under {args.clients} connected clients, "
                                    f"{args.rate:g} posts/s for {args.lead:g} s before and {args.after:g} s after")
    clients, tasks = await start_clients(cluster, args.clients)
    poster = Poster(cluster, first=1)
    await poster.stream(args.rate, args.lead)
    t_fault = time.monotonic()
    for node in cluster.nodes:
        assert node.proc is not None
        node.proc.send_signal(signal.SIGTERM)
    for node in cluster.nodes:
        await asyncio.to_thread(node.proc.wait, 30)  # type: ignore[union-attr]
    down = time.monotonic() - t_fault
    await asyncio.gather(*(asyncio.to_thread(n.start) for n in cluster.nodes))
    t_up = time.monotonic()
    await poster.stream(args.rate, args.after)
    await wait_all(clients, poster.posted, 40)
    t_all = time.monotonic()
    count(result, clients, poster.posted)
    back = [c.recovered_at[0] - t_fault for c in clients if c.recovered_at]
    hist: dict[str, int] = {}
    for b in back:
        key = f"{int(max(b, 0))}-{int(max(b, 0)) + 1} s"
        hist[key] = hist.get(key, 0) + 1
    caught = t_all - t_fault
    result.figures.update({
        "nodes down for": f"{down:.1f} s, both healthy again {t_up - t_fault:.1f} s after the signal",
        "reconnected and recovered, after the signal: p10 / p50 / p90 / max": " / ".join(ms(pct(back, p)) for p in (10, 50, 90, 100)),
        "reconnects per second after the signal": dict(sorted(hist.items(), key=lambda kv: int(kv[0].split("-")[0]))),
        "all caught up": f"{max(back, default=0):.1f} s after the signal (bound 30 s); "
                         f"every post of the {args.after:g} s stream after the restart delivered {caught:.1f} s after the signal",
        "post failures while both were down": poster.failed,
    })
    if len(back) != len(clients):
        result.failures.append(f"{len(clients) - len(back)} clients never came back")
    if max(back, default=99) > 30:
        result.missed.append("not all caught up within 30 s")
    await stop_clients(clients, tasks)
    await poster.close()
    result.leaks, _ = await settle_leaks(cluster, [0, 1])
    return result
