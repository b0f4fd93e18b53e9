"""Connect storms: N clients connecting at once, to our server and to two baselines; rates and the
server's CPU per connect, which moves much less than rates with the machine's load.

    .venv/bin/python bench/connects.py                      # 5,000 clients, 3 storms per server
    .venv/bin/python bench/connects.py --clients 10000 --storms 2

Servers, in this order, each given the same storms by the same two load processes
(bench/wsclients.py, 1,000 connects in flight):
- ours: one `feeds-server serve` node on PostgreSQL; every connect carries a connection token,
  checked with the sign-in, membership and Feeds tab behind it before the reply (issue 4's
  "authenticated connects");
- bare uvicorn (bench/uvicornws.py): the same WebSocket stack with an app that only answers;
- raw `websockets` (bench/rawws.py): the physical limit of Python and `websockets` here.
Between storms every client closes and the server is left 1.5 s. Target: >= 1,500 connects/s.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import harness as h  # noqa: E402
from bench.realtime import LOAD_PROCS, N_MEMBERS, SLUG, LoadProc, Loads, mint_tokens  # noqa: E402

HERE = Path(__file__).resolve().parent


async def storms(name: str, loads: Loads, url: str, pid: int, tokens: list[str], clients: int, rounds: int) -> list[dict[str, Any]]:
    await loads.connect(url, 200, tokens, 100)  # warm-up
    await loads.close_all()
    await asyncio.sleep(1.0)
    out = []
    for _ in range(rounds):
        cpu0 = h.cpu_seconds(pid)
        c = await loads.connect(url, clients, tokens, 1000)
        cpu_ms = (h.cpu_seconds(pid) - cpu0) * 1000 / max(c["ok"], 1)
        out.append({"rate": c["rate"], "cpu_ms": cpu_ms, "failed": c["failed"], "elapsed": c["elapsed"]})
        print(f"[{name}] {c['ok']:,} connected ({c['failed']} failed) in {c['elapsed']:.2f} s = {c['rate']:,.0f}/s; "
              f"server CPU {cpu_ms:.3f} ms per connect", flush=True)
        await loads.close_all()
        await asyncio.sleep(1.5)
    return out


async def baseline(script: str, loads: Loads, name: str, clients: int, rounds: int) -> list[dict[str, Any]]:
    port = h.free_port()
    proc = await asyncio.create_subprocess_exec(h.PY, str(HERE / script), str(port), stdout=asyncio.subprocess.PIPE)
    try:
        assert proc.stdout is not None
        await asyncio.wait_for(proc.stdout.readline(), 20)
        await asyncio.sleep(0.5)
        return await storms(name, loads, f"ws://127.0.0.1:{port}/connection/websocket", proc.pid, ["-"], clients, rounds)
    finally:
        proc.terminate()
        await proc.wait()


def row(label: str, results: list[dict[str, Any]], ours: list[dict[str, Any]] | None = None) -> str:
    rates = ", ".join(f"{r['rate']:,.0f}" for r in results)
    cpu = ", ".join(f"{r['cpu_ms']:.2f}" for r in results)
    mid = median(results)
    ratio = "" if ours is None else f"{median(ours) / mid:.2f}"
    return f"| {label} | {rates} | {cpu} | {mid:,.0f} | {ratio} |"


def median(results: list[dict[str, Any]]) -> float:
    return statistics.median(r["rate"] for r in results)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=5000, help="clients per storm (default 5,000)")
    parser.add_argument("--storms", type=int, default=3, help="storms per server (default 3)")
    args = parser.parse_args()
    h.raise_nofile(65536)
    h.print_machine()
    with h.bench_database("connects") as db, h.scratch_dir("connects") as data_dir:
        node = h.Node(h.server_env(db, data_dir), log_path=data_dir / "node.log")
        loads = Loads([await LoadProc().start() for _ in range(LOAD_PROCS)])
        try:
            await asyncio.to_thread(node.start)
            members = await h.setup_org(node, data_dir / "mail", SLUG, N_MEMBERS)
            tokens = await mint_tokens(node, members)
            ours = await storms("ours", loads, node.ws_url, node.pid, tokens, args.clients, args.storms)
            await asyncio.to_thread(node.stop)
            bare = await baseline("uvicornws.py", loads, "bare uvicorn", args.clients, args.storms)
            raw = await baseline("rawws.py", loads, "raw websockets", args.clients, args.storms)
        finally:
            for lp in loads.procs:
                await lp.stop()
            await asyncio.to_thread(node.stop)
    print(f"\n| Server ({args.clients:,} clients a storm) | connects/s, each storm | server CPU per connect (ms) | median | ours ÷ this (medians) |")
    print("|---|---|---|---|---|")
    print(row("ours (authenticated)", ours))
    print(row("bare uvicorn (no authentication)", bare, ours))
    print(row("raw `websockets` (no authentication)", raw, ours))
    mid = median(ours)
    print(f"\nours: median {mid:,.0f} connects/s against the target of 1,500 ({mid / 1500:.2f}×) — {'met' if mid >= 1500 else 'missed'}")


if __name__ == "__main__":
    asyncio.run(main())
