"""Honest requests under attack: slow bodies, slowloris heads, endless headers, endless uploads.

    flock /tmp/feeds-bench.lock .venv/bin/python bench/attacks.py --db sqlite
    flock /tmp/feeds-bench.lock .venv/bin/python bench/attacks.py --db postgres --seconds 60

One `feeds-server serve` (default settings: 10 s to send a head, 10 s to send a body, a pool of 20
PostgreSQL connections). An honest member calls `GET /api/v1/me`, `GET /feed` and `POST /posts` one
after the other, first with nothing else going on (idle), then during each attack:

- `slow-body`: 200 sockets each send `POST /api/v1/auth/signup` with a bearer token,
  `Content-Length: 72` and 5 bytes, then nothing; a socket the node closes is opened again at once;
- `slowloris`: 200 sockets send a request line and one header line every 2 s, never ending the head;
- both at once (400 sockets);
- `huge-header`: 10 sockets each send header bytes as fast as the node takes them (up to 50 MB);
- `many-parts`: 4 uploads each streaming `message` parts of 512 KiB (up to 600 MB in all).

Printed per phase: p50 and p99 of each honest route (ms), errors, the node's peak RSS (MiB), and the
attack's own counts (answers 408/431/413/422, closes). Exit status 1 when an honest request failed or
a p99 under attack is more than 2x its idle p99 (+1 ms, the timer's resolution on a busy machine).
Only loopback traffic; every loop is bounded in count and time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness import FEEDS, Node, bench_database, pct, print_machine, raise_nofile, rss_kib, scratch_dir, server_env, setup_org  # noqa: E402

ROUTES = ("GET /me", "GET /feed", "POST /posts")


@dataclass
class Phase:
    name: str
    latencies: dict[str, list[float]] = field(default_factory=lambda: {r: [] for r in ROUTES})
    errors: int = 0
    peak_rss_mib: float = 0.0
    attack: Counter[str] = field(default_factory=Counter)


async def honest(node: Node, token: str, slug: str, phase: Phase, stop: asyncio.Event) -> None:
    """One member using the app: each call waits for the one before, as a person's browser does."""
    headers = {"authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=node.url, headers=headers, timeout=60) as c:
        n = 0
        while not stop.is_set():
            for route in ROUTES:
                started = time.perf_counter()
                if route == "GET /me":
                    r = await c.get("/api/v1/me")
                elif route == "GET /feed":
                    r = await c.get(f"/api/v1/orgs/{slug}/feed")
                else:
                    n += 1
                    r = await c.post(f"/api/v1/orgs/{slug}/posts", json={"body": f"honest {n}"})
                phase.latencies[route].append((time.perf_counter() - started) * 1000)
                if r.status_code >= 400:
                    phase.errors += 1
            await asyncio.sleep(0.01)


async def watch_rss(node: Node, phase: Phase, stop: asyncio.Event) -> None:
    while not stop.is_set():
        phase.peak_rss_mib = max(phase.peak_rss_mib, rss_kib(node.pid) / 1024)
        await asyncio.sleep(0.1)


async def _answer_of(reader: asyncio.StreamReader, phase: Phase, kind: str) -> None:
    try:
        data = await reader.read(64)
    except (ConnectionError, OSError):
        data = b""
    status = data[9:12].decode(errors="replace") if data.startswith(b"HTTP/1.1 ") else "closed"
    phase.attack[f"{kind} {status}"] += 1


async def slow_body(node: Node, phase: Phase, stop: asyncio.Event) -> None:
    """One socket at a time, opened again each time the node lets it go."""
    head = (b"POST /api/v1/auth/signup HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer fst_x\r\n"
            b"Content-Type: application/json\r\nContent-Length: 72\r\n\r\n{\"em")
    while not stop.is_set():
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", node.port)
            writer.write(head)
            await writer.drain()
        except OSError:
            phase.attack["slow-body refused"] += 1
            await asyncio.sleep(0.1)
            continue
        waiter = asyncio.ensure_future(_answer_of(reader, phase, "slow-body"))
        await asyncio.wait([waiter, asyncio.ensure_future(stop.wait())], return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        writer.close()


async def slowloris(node: Node, phase: Phase, stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", node.port)
            writer.write(b"GET /api/v1/me HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            await writer.drain()
            while not stop.is_set():
                await asyncio.sleep(2)
                writer.write(b"X-Keep: going\r\n")
                await writer.drain()
                if reader.at_eof():
                    break
        except (ConnectionError, OSError):
            pass
        phase.attack["slowloris closed" if not stop.is_set() else "slowloris still open at the end"] += 1
        try:
            writer.close()
        except Exception:  # noqa: BLE001 - the socket may never have opened
            pass


async def huge_header(node: Node, phase: Phase, stop: asyncio.Event) -> None:
    sent = 0
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", node.port)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Fill: ")
        while not stop.is_set() and sent < 50 * 1024 * 1024:
            writer.write(b"a" * 65536)
            await writer.drain()
            sent += 65536
        await _answer_of(reader, phase, "huge-header")
        writer.close()
    except (ConnectionError, OSError):
        phase.attack["huge-header reset"] += 1
    phase.attack["huge-header MiB sent"] += sent // (1024 * 1024)


async def many_parts(node: Node, token: str, slug: str, phase: Phase, stop: asyncio.Event) -> None:
    part = b'--XyZ\r\nContent-Disposition: form-data; name="message"\r\n\r\n' + b"x" * (512 * 1024) + b"\r\n"
    sent = 0
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", node.port)
        writer.write((f"POST /api/v1/orgs/{slug}/posts HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
                      "Content-Type: multipart/form-data; boundary=XyZ\r\nTransfer-Encoding: chunked\r\n\r\n").encode())
        while not stop.is_set() and sent < 150 * 1024 * 1024:
            writer.write(b"%x\r\n%s\r\n" % (len(part), part))
            await writer.drain()
            sent += len(part)
        await _answer_of(reader, phase, "many-parts")
        writer.close()
    except (ConnectionError, OSError):
        phase.attack["many-parts reset"] += 1
    phase.attack["many-parts MiB sent"] += sent // (1024 * 1024)


async def run_phase(node: Node, token: str, slug: str, name: str, seconds: float) -> Phase:
    phase = Phase(name)
    stop = asyncio.Event()
    tasks = [asyncio.ensure_future(honest(node, token, slug, phase, stop)), asyncio.ensure_future(watch_rss(node, phase, stop))]
    if name in ("slow-body", "both"):
        tasks += [asyncio.ensure_future(slow_body(node, phase, stop)) for _ in range(200)]
    if name in ("slowloris", "both"):
        tasks += [asyncio.ensure_future(slowloris(node, phase, stop)) for _ in range(200)]
    if name == "huge-header":
        tasks += [asyncio.ensure_future(huge_header(node, phase, stop)) for _ in range(10)]
    if name == "many-parts":
        tasks += [asyncio.ensure_future(many_parts(node, token, slug, phase, stop)) for _ in range(4)]
    await asyncio.sleep(seconds)
    stop.set()
    await asyncio.wait(tasks, timeout=30)
    for t in tasks:
        t.cancel()
    return phase


def report(phases: list[Phase]) -> bool:
    idle = phases[0]
    ok = True
    print(f"{'phase':<12} " + " ".join(f"{r + ' p50/p99 ms':>26}" for r in ROUTES) + f" {'errors':>6} {'peak RSS MiB':>12}  attack")
    for ph in phases:
        cells = []
        for r in ROUTES:
            p50, p99 = pct(ph.latencies[r], 50), pct(ph.latencies[r], 99)
            cells.append(f"{p50:>11.1f} / {p99:>8.1f} ({len(ph.latencies[r])})")
            if ph is not idle and p99 > 2 * pct(idle.latencies[r], 99) + 1:
                ok = False
        if ph.errors:
            ok = False
        attack = ", ".join(f"{k}: {v}" for k, v in sorted(ph.attack.items()))
        print(f"{ph.name:<12} " + " ".join(f"{c:>26}" for c in cells) + f" {ph.errors:>6} {ph.peak_rss_mib:>12.1f}  {attack}")
    return ok


async def main_async(args: argparse.Namespace) -> bool:
    with scratch_dir("attacks") as data_dir, contextlib.ExitStack() as stack:
        if args.db == "postgres":
            env = server_env(stack.enter_context(bench_database("attacks")), data_dir)
        else:
            env = server_env("unused", data_dir, FEEDS_DATABASE_URL=f"sqlite+aiosqlite:///{data_dir / 'feeds.db'}")
            subprocess.run([FEEDS, "migrate"], env={**os.environ, **env}, check=True, capture_output=True)
        node = Node(env, log_path=data_dir / "node.log").start()
        try:
            members = await setup_org(node, data_dir / "mail", "attacks", 1)
            token, slug = members[0].token, "attacks"
            phases = [await run_phase(node, token, slug, "idle", args.idle)]
            for name in args.attacks:
                phases.append(await run_phase(node, token, slug, name, args.seconds))
                await asyncio.sleep(2)  # the previous attack's sockets close
            print(f"database: {args.db}; attack {args.seconds:g} s each, idle {args.idle:g} s")
            return report(phases)
        finally:
            node.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--idle", type=float, default=20)
    parser.add_argument("attacks", nargs="*", default=["slow-body", "slowloris", "both", "huge-header", "many-parts"])
    args = parser.parse_args()
    raise_nofile()
    print_machine()
    return 0 if asyncio.run(main_async(args)) else 1


if __name__ == "__main__":
    sys.exit(main())
