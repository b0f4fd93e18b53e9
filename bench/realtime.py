"""Real-time fan-out: our server side by side with a bare `websockets.broadcast` server (issue 4).

    .venv/bin/python bench/realtime.py [--quick] [--sizes 1000,5000,10000]

One run, same machine, same clients: first the raw server (bench/rawws.py, the physical limit of
Python + `websockets` here), then one `feeds-server serve` node (in-process broker, compression
off), then two nodes sharing Redis. Clients live in two separate load processes
(bench/wsclients.py: the `websockets` sans-I/O protocol, pings answered). They connect as the
5 members of one org, with connection tokens minted once through
`POST /api/v1/orgs/{slug}/realtime/token` (a token serves many sockets of its user).

Per target and per N (1,000 / 5,000 / 10,000 connected clients):
- publish→receive latency: events published one at a time, spaced at twice the time one
  fan-out takes (so neither server is saturated), the sender's CLOCK_MONOTONIC in the body;
  p50/p99 over every delivery. Our events are real posts through the HTTP API, so our latency
  includes the request and its transaction; the raw server's come over a WebSocket.
- at the largest N: deliveries/s for a burst of events published as fast as they are accepted;
  idle RSS per connection (RSS delta of the server process / N, measured before any event);
  authenticated connects/s of all N clients reconnecting at once.
Then two nodes + Redis: clients on node A, posts alternately to A and to B: extra p99 of the hop.

Targets: deliveries/s at 10,000 >= 0.65 x raw; p99 <= 1.3 x raw at each N; <= 30 KB per idle
connection; >= 1,500 connects/s; cross-node extra p99 <= 5 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx  # noqa: E402
from websockets.asyncio.client import connect as ws_connect  # noqa: E402

from bench import harness as h  # noqa: E402
from bench.loadgen import HttpConn, build_request, open_conn  # noqa: E402
from bench.wsclients import BUCKET_NS  # noqa: E402

HERE = Path(__file__).resolve().parent
SLUG = "realtime"
N_MEMBERS = 5
LOAD_PROCS = 2
LATENCY_RUN_SECONDS = 15.0
LATENCY_EVENTS_MIN, LATENCY_EVENTS_MAX = 50, 200


class LoadProc:
    """One bench/wsclients.py process."""

    def __init__(self) -> None:
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> "LoadProc":
        self.proc = await asyncio.create_subprocess_exec(
            h.PY, str(HERE / "wsclients.py"), stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, limit=2**26
        )
        return self

    async def call(self, cmd: dict[str, Any], timeout: float = 300) -> dict[str, Any]:
        assert self.proc and self.proc.stdin and self.proc.stdout
        self.proc.stdin.write((json.dumps(cmd) + "\n").encode())
        await self.proc.stdin.drain()
        line = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        if not line:
            raise RuntimeError("load process died")
        return json.loads(line)

    async def stop(self) -> None:
        if self.proc and self.proc.returncode is None:
            try:
                await self.call({"cmd": "exit"}, 30)
            except Exception:  # noqa: BLE001
                pass
            try:
                await asyncio.wait_for(self.proc.wait(), 10)
            except asyncio.TimeoutError:
                self.proc.kill()
                await self.proc.wait()


class Loads:
    def __init__(self, procs: list[LoadProc]) -> None:
        self.procs = procs

    async def all(self, cmd: dict[str, Any], timeout: float = 300) -> list[dict[str, Any]]:
        return list(await asyncio.gather(*(p.call(cmd, timeout) for p in self.procs)))

    async def connect(self, url: str, n: int, tokens: list[str], concurrency: int, timeout: float = 300) -> dict[str, Any]:
        shares = [n // len(self.procs) + (1 if i < n % len(self.procs) else 0) for i in range(len(self.procs))]
        t = time.perf_counter()
        outs = await asyncio.gather(*(
            p.call({"cmd": "connect", "url": url, "n": k, "tokens": tokens, "concurrency": concurrency // len(self.procs), "timeout": timeout}, timeout + 60)
            for p, k in zip(self.procs, shares)
        ))
        elapsed = time.perf_counter() - t
        ok = sum(o["ok"] for o in outs)
        return {"ok": ok, "failed": sum(o["failed"] for o in outs), "elapsed": elapsed, "rate": ok / elapsed if elapsed else 0,
                "open": sum(o["open"] for o in outs), "p99_ms": max((o["p99_ms"] or 0) for o in outs)}

    async def reset(self) -> None:
        await self.all({"cmd": "reset"})

    async def wait(self, per_proc_counts: list[int] | None, total: int, timeout: float) -> dict[str, Any]:
        """Wait until `total` publications arrived over all processes (each waits for its share)."""
        deadline = time.monotonic() + timeout
        outs = await self.all({"cmd": "stats"})
        while sum(o["pubs"] for o in outs) < total and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            outs = await self.all({"cmd": "stats"})
        return merge(outs)

    async def close_all(self) -> None:
        await self.all({"cmd": "close_all", "timeout": 60}, 120)


def merge(outs: list[dict[str, Any]]) -> dict[str, Any]:
    hist: dict[int, int] = {}
    for o in outs:
        for k, v in o["hist"].items():
            hist[int(k)] = hist.get(int(k), 0) + v
    firsts = [o["first_ns"] for o in outs if o["first_ns"]]
    lasts = [o["last_ns"] for o in outs if o["last_ns"]]
    heads: dict[int, int] = {}
    for o in outs:
        for k, v in o.get("heads", {}).items():
            heads[int(k)] = min(v, heads.get(int(k), v))
    closed: dict[str, int] = {}
    for o in outs:
        for k, v in o["closed_by_server"].items():
            closed[k] = closed.get(k, 0) + v
    return {"pubs": sum(o["pubs"] for o in outs), "hist": hist, "heads": heads, "first_ns": min(firsts) if firsts else 0,
            "last_ns": max(lasts) if lasts else 0, "max_line": max(o["max_line"] for o in outs),
            "open": sum(o["open"] for o in outs), "closed_by_server": closed}


def hist_pct(hist: dict[int, int], p: float) -> float:
    """Percentile in ms from 50 µs buckets (upper edge of the bucket)."""
    total = sum(hist.values())
    if not total:
        return float("nan")
    rank = p / 100 * total
    seen = 0
    for k in sorted(hist):
        seen += hist[k]
        if seen >= rank:
            return (k + 1) * BUCKET_NS / 1e6
    return (max(hist) + 1) * BUCKET_NS / 1e6


def head_pct(heads: dict[int, int], p: float) -> float:
    """Percentile in ms of each event's first delivery: the time before its fan-out starts."""
    lat = sorted(recv - sent for sent, recv in heads.items())
    return lat[min(len(lat) - 1, int(p / 100 * len(lat)))] / 1e6 if lat else float("nan")


# --- publishers ----------------------------------------------------------------------------


class RawPublisher:
    def __init__(self, port: int, data_bytes: int) -> None:
        self.url = f"ws://127.0.0.1:{port}/publish"
        self.data_bytes = data_bytes
        self.ws: Any = None

    async def open(self) -> None:
        self.ws = await ws_connect(self.url, compression=None)

    def _data(self) -> str:
        head = '{"seq":0,"type":"post.created","payload":{"body":"ts' + str(time.monotonic_ns()) + " "
        pad = max(0, self.data_bytes - len(head) - 4)
        return head + "x" * pad + '"}}'

    async def publish(self) -> int:
        t = time.monotonic_ns()
        await self.ws.send(self._data())
        return t

    async def burst(self, n: int) -> int:
        t = time.monotonic_ns()
        for _ in range(n):
            await self.ws.send(self._data())
        return t

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()


class PostPublisher:
    """Posts through our HTTP API over keep-alive connections; the body carries the send time."""

    def __init__(self, port: int, member: h.Member, conns: int = 4) -> None:
        self.port, self.member, self.n_conns = port, member, conns
        self.conns: list[HttpConn] = []
        self.statuses: dict[int, int] = {}

    async def open(self) -> None:
        self.conns = [await open_conn(self.port) for _ in range(self.n_conns)]

    def _request(self) -> bytes:
        body = json.dumps({"body": f"ts{time.monotonic_ns()} realtime bench event"})
        return build_request("POST", f"/api/v1/orgs/{SLUG}/posts", self.port, self.member.headers, body)

    async def _send(self, lane: int) -> None:
        if self.conns[lane].closed:  # the server closes keep-alive connections idle for 5 s
            self.conns[lane] = await open_conn(self.port)
        status = await self.conns[lane].request(self._request())
        self.statuses[status] = self.statuses.get(status, 0) + 1

    async def publish(self) -> int:
        t = time.monotonic_ns()
        await self._send(0)
        return t

    async def burst(self, n: int) -> int:
        t = time.monotonic_ns()

        async def lane(i: int, k: int) -> None:
            for _ in range(k):
                await self._send(i)

        shares = [n // len(self.conns) + (1 if i < n % len(self.conns) else 0) for i in range(len(self.conns))]
        await asyncio.gather(*(lane(i, k) for i, k in enumerate(shares)))
        return t

    async def close(self) -> None:
        for c in self.conns:
            if c.transport:
                c.transport.close()


# --- measurements --------------------------------------------------------------------------


def events_for(interval: float) -> int:
    """Enough events that p99 is a percentile rather than the slowest event: a run of ~15 s, 50 to 200."""
    return max(LATENCY_EVENTS_MIN, min(LATENCY_EVENTS_MAX, round(LATENCY_RUN_SECONDS / interval)))


async def fanout_latency(loads: Loads, pub: Any, n: int, events: int | None, quick: bool) -> dict[str, Any]:
    """Probe one fan-out's duration, then publish `events` (None: `events_for`) spaced at twice that;
    p50/p99 of all deliveries, and the first delivery of each event (what comes before the fan-out)."""
    probe = 0.0
    for _ in range(2):
        await loads.reset()
        t0 = await pub.publish()
        st = await loads.wait(None, n, 60)
        probe = max(probe, (st["last_ns"] - t0) / 1e9 if st["last_ns"] else 60)
    interval = min(3.0, max(0.05, 2 * probe))
    events = events or events_for(interval)
    await loads.reset()
    start = time.monotonic()
    for i in range(events):
        due = start + i * interval
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        await pub.publish()
    st = await loads.wait(None, n * events, 60 + events * interval)
    return {"n": n, "events": events, "interval": interval, "fanout_probe_ms": probe * 1000, "delivered": st["pubs"],
            "expected": n * events, "p50": hist_pct(st["hist"], 50), "p99": hist_pct(st["hist"], 99),
            "max": hist_pct(st["hist"], 100), "head_p50": head_pct(st["heads"], 50), "head_p99": head_pct(st["heads"], 99),
            "frame_bytes": st["max_line"], "closed_by_server": st["closed_by_server"]}


async def burst_throughput(loads: Loads, pub: Any, n: int, events: int) -> dict[str, Any]:
    await loads.reset()
    t0 = await pub.burst(events)
    st = await loads.wait(None, n * events, 180)
    elapsed = (st["last_ns"] - t0) / 1e9 if st["last_ns"] else float("nan")
    return {"events": events, "delivered": st["pubs"], "expected": n * events, "elapsed": elapsed,
            "rate": st["pubs"] / elapsed if elapsed else 0.0, "p99": hist_pct(st["hist"], 99), "closed_by_server": st["closed_by_server"]}


async def run_target(name: str, loads: Loads, url: str, pid: int, tokens: list[str], pub: Any, sizes: list[int], events: int | None,
                     burst_events: int, quick: bool) -> dict[str, Any]:
    print(f"\n[{name}] warming up", flush=True)
    await loads.connect(url, 200, tokens, 100)
    await loads.close_all()
    await asyncio.sleep(1.0)
    base_rss = h.rss_kib(pid)
    out: dict[str, Any] = {"name": name, "base_rss_kib": base_rss, "sizes": []}
    connected = 0
    for n in sizes:
        c = await loads.connect(url, n - connected, tokens, 200)
        connected += c["ok"]
        await asyncio.sleep(1.5)
        rss = h.rss_kib(pid)
        print(f"[{name}] N={n}: connected {c['ok']} (+{c['failed']} failed) in {c['elapsed']:.1f} s ({c['rate']:,.0f}/s); "
              f"RSS {rss / 1024:.0f} MiB ({(rss - base_rss) / max(connected, 1):.1f} KiB/conn)", flush=True)
        lat = await fanout_latency(loads, pub, connected, events, quick)
        lat["connect"] = c
        lat["rss_kib"] = rss
        lat["kib_per_conn"] = (rss - base_rss) / max(connected, 1)
        print(f"[{name}] N={n}: fan-out {lat['fanout_probe_ms']:.0f} ms, interval {lat['interval'] * 1000:.0f} ms; "
              f"{lat['events']} events; latency p50 {lat['p50']:.1f} ms p99 {lat['p99']:.1f} ms; first delivery of an event "
              f"p50 {lat['head_p50']:.1f} ms p99 {lat['head_p99']:.1f} ms; delivered {lat['delivered']}/{lat['expected']}", flush=True)
        out["sizes"].append(lat)
    out["burst"] = await burst_throughput(loads, pub, connected, burst_events)
    b = out["burst"]
    print(f"[{name}] burst of {burst_events} events to {connected}: {b['delivered']}/{b['expected']} in {b['elapsed']:.2f} s "
          f"= {b['rate']:,.0f} deliveries/s; closed by the server: {b['closed_by_server'] or 'none'}", flush=True)
    await loads.close_all()
    await asyncio.sleep(2.0)
    rc = await loads.connect(url, connected, tokens, 1000)
    out["reconnect"] = rc
    print(f"[{name}] reconnect storm: {rc['ok']} connected ({rc['failed']} failed) in {rc['elapsed']:.2f} s = {rc['rate']:,.0f}/s", flush=True)
    await loads.close_all()
    return out


async def cross_node(db: str, data_dir: Path, loads: Loads, n_clients: int, events: int) -> dict[str, Any]:
    env = h.server_env(db, data_dir, FEEDS_REDIS_URL=h.REDIS_URL)
    a = h.Node(env, log_path=data_dir / "nodeA.log")
    b = h.Node(env, log_path=data_dir / "nodeB.log")
    async with h.nodes_running(a, b):
        members = await members_on(a)
        tokens = await mint_tokens(a, members)
        c = await loads.connect(a.ws_url, n_clients, tokens, 200)
        pa, pb = PostPublisher(a.port, members[0], 1), PostPublisher(b.port, members[0], 1)
        await pa.open()
        await pb.open()
        res: dict[str, Any] = {"clients": c["ok"]}
        try:
            hists: dict[str, dict[int, int]] = {"same": {}, "cross": {}}
            for warm in (True, False):
                for i in range(4 if warm else events):
                    for label, pub in (("same", pa), ("cross", pb)):
                        await loads.reset()
                        await pub.publish()
                        st = await loads.wait(None, c["ok"], 30)
                        if not warm:
                            for k, v in st["hist"].items():
                                hists[label][k] = hists[label].get(k, 0) + v
                        await asyncio.sleep(0.05)
            for label in ("same", "cross"):
                res[label] = {"p50": hist_pct(hists[label], 50), "p99": hist_pct(hists[label], 99), "deliveries": sum(hists[label].values())}
        finally:
            await pa.close()
            await pb.close()
            await loads.close_all()
    return res


_MEMBERS: list[h.Member] = []


async def members_on(node: h.Node) -> list[h.Member]:
    return _MEMBERS


async def mint_tokens(node: h.Node, members: list[h.Member]) -> list[str]:
    async with httpx.AsyncClient(base_url=node.url, timeout=30) as c:
        tokens = []
        for m in members:
            r = await c.post(f"/api/v1/orgs/{SLUG}/realtime/token", headers=m.headers)
            assert r.status_code == 200, r.text
            tokens.append(r.json()["token"])
        return tokens


def fmt(x: float, nd: int = 1) -> str:
    return f"{x:,.{nd}f}"


def report(raw: dict[str, Any], ours: dict[str, Any], cross: dict[str, Any]) -> None:
    print("\n## Fan-out latency, publish -> receive (one org, every client in channel `org`)")
    rows = []
    ratios = []
    for r, o in zip(raw["sizes"], ours["sizes"]):
        ratio = o["p99"] / r["p99"]
        ratios.append((r["n"], ratio))
        rows.append([fmt(r["n"], 0), fmt(r["p50"]), fmt(r["p99"]), fmt(o["p50"]), fmt(o["p99"]), f"{ratio:.2f}",
                     f"{r['head_p50']:.1f} / {o['head_p50']:.1f}",
                     f"{r['fanout_probe_ms']:.0f} / {o['fanout_probe_ms']:.0f}", f"{r['interval'] * 1000:.0f} / {o['interval'] * 1000:.0f}",
                     f"{r['events']} / {o['events']}", f"{r['delivered']}/{r['expected']} ; {o['delivered']}/{o['expected']}"])
    print(h.table(rows, ["N", "raw p50 ms", "raw p99 ms", "ours p50 ms", "ours p99 ms", "p99 ours/raw", "first delivery p50 ms raw/ours",
                         "one fan-out ms raw/ours", "spacing ms raw/ours", "events raw/ours", "delivered raw ; ours"]))
    print(f"frame size: raw {raw['sizes'][-1]['frame_bytes']} B, ours {ours['sizes'][-1]['frame_bytes']} B")
    rb, ob = raw["burst"], ours["burst"]
    n_max = raw["sizes"][-1]["n"]
    print(f"\n## At N = {n_max:,}")
    rows = [
        ["deliveries/s (burst of %d events)" % rb["events"], fmt(rb["rate"], 0), fmt(ob["rate"], 0), f"{ob['rate'] / rb['rate']:.2f}"],
        ["idle RSS per connection (KiB)", fmt(raw["sizes"][-1]["kib_per_conn"]), fmt(ours["sizes"][-1]["kib_per_conn"]),
         f"{ours['sizes'][-1]['kib_per_conn'] / raw['sizes'][-1]['kib_per_conn']:.2f}"],
        ["connects/s, all reconnecting at once", fmt(raw["reconnect"]["rate"], 0), fmt(ours["reconnect"]["rate"], 0),
         f"{ours['reconnect']['rate'] / raw['reconnect']['rate']:.2f}"],
        ["time for all to reconnect (s)", fmt(raw["reconnect"]["elapsed"], 2), fmt(ours["reconnect"]["elapsed"], 2), ""],
    ]
    print(h.table(rows, ["figure", "raw websockets", "ours", "ours/raw"]))
    print(f"\n## Two nodes + Redis ({cross['clients']} clients on node A)")
    extra50 = cross["cross"]["p50"] - cross["same"]["p50"]
    extra99 = cross["cross"]["p99"] - cross["same"]["p99"]
    print(h.table([
        ["post to A (same node)", fmt(cross["same"]["p50"]), fmt(cross["same"]["p99"]), str(cross["same"]["deliveries"])],
        ["post to B (hop through Redis)", fmt(cross["cross"]["p50"]), fmt(cross["cross"]["p99"]), str(cross["cross"]["deliveries"])],
        ["extra for the hop", fmt(extra50), fmt(extra99), ""],
    ], ["path", "p50 ms", "p99 ms", "deliveries"]))
    print("\n## Against the targets")
    d_ratio = ob["rate"] / rb["rate"]
    kib = ours["sizes"][-1]["kib_per_conn"]
    rows = [
        [f"deliveries/s at N={n_max:,}", ">= 0.65 x raw", f"{d_ratio:.2f} x raw ({fmt(ob['rate'], 0)}/s)", f"{d_ratio / 0.65:.2f}", h.verdict(d_ratio / 0.65)],
    ]
    for n, ratio in ratios:
        rows.append([f"p99 latency at N={n:,}", "<= 1.3 x raw", f"{ratio:.2f} x raw", f"{1.3 / ratio:.2f}", h.verdict(1.3 / ratio)])
    rows += [
        ["idle memory per connection", "<= 30 KB", f"{kib * 1.024:.1f} KB", f"{30 / (kib * 1.024):.2f}", h.verdict(30 / (kib * 1.024))],
        ["authenticated connects/s", ">= 1,500/s", f"{fmt(ours['reconnect']['rate'], 0)}/s", f"{ours['reconnect']['rate'] / 1500:.2f}",
         h.verdict(ours["reconnect"]["rate"] / 1500)],
        ["cross-node extra p99", "<= 5 ms", f"{extra99:.1f} ms", f"{5 / max(extra99, 0.05):.2f}", h.verdict(5 / max(extra99, 0.05))],
    ]
    print(h.table(rows, ["figure", "target", "measured", "ratio (>= 1 meets)", "verdict"]))


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="small version, < 60 s")
    parser.add_argument("--sizes", default=None, help="comma-separated client counts (default 1000,5000,10000; quick 200,1000)")
    parser.add_argument("--events", type=int, default=None, help="events per latency run (default: enough for ~15 s, 50 to 200; quick 8)")
    args = parser.parse_args()
    nofile = h.raise_nofile(65536)
    sizes = [int(x) for x in (args.sizes or ("200,1000" if args.quick else "1000,5000,10000")).split(",")]
    events = args.events or (8 if args.quick else None)
    burst_events = 10 if args.quick else 20
    h.print_machine()
    print(f"command: {' '.join(sys.argv)}; open files limit {nofile}")
    with h.bench_database("realtime") as db, h.scratch_dir("realtime") as data_dir:
        node = h.Node(h.server_env(db, data_dir), log_path=data_dir / "node.log")
        raw_port = h.free_port()
        raw_proc = await asyncio.create_subprocess_exec(h.PY, str(HERE / "rawws.py"), str(raw_port), stdout=asyncio.subprocess.PIPE)
        assert raw_proc.stdout is not None
        await asyncio.wait_for(raw_proc.stdout.readline(), 20)
        loads = Loads([await LoadProc().start() for _ in range(LOAD_PROCS)])
        try:
            await asyncio.to_thread(node.start)
            _MEMBERS.extend(await h.setup_org(node, data_dir / "mail", SLUG, N_MEMBERS))
            tokens = await mint_tokens(node, _MEMBERS)

            # Ours first: its frame size sets the raw server's, so both push the same bytes.
            ours_pub = PostPublisher(node.port, _MEMBERS[0])
            await ours_pub.open()
            ours = await run_target("ours", loads, node.ws_url, node.pid, tokens, ours_pub, sizes, events, burst_events, args.quick)
            await ours_pub.close()
            print(f"[ours] POST statuses: {ours_pub.statuses}")
            frame = ours["sizes"][-1]["frame_bytes"]
            await asyncio.to_thread(node.stop)

            raw_pub = RawPublisher(raw_port, max(100, frame - 60))
            await raw_pub.open()
            raw = await run_target("raw", loads, f"ws://127.0.0.1:{raw_port}/connection/websocket", raw_proc.pid, ["-"], raw_pub,
                                   sizes, events, burst_events, args.quick)
            await raw_pub.close()

            cross = await cross_node(db, data_dir, loads, min(1000, sizes[-1]), 15 if args.quick else 50)
            report(raw, ours, cross)
        finally:
            for lp in loads.procs:
                await lp.stop()
            if raw_proc.returncode is None:
                raw_proc.terminate()
                await raw_proc.wait()
            await asyncio.to_thread(node.stop)
            for log in sorted(data_dir.glob("*.log")):
                text = log.read_text(errors="replace")
                if "ERROR" in text or "Traceback" in text:
                    print(f"\n(errors in {log.name}:)\n" + text[-2000:])


if __name__ == "__main__":
    asyncio.run(main())
