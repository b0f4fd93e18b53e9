"""Posts accepted through the HTTP API on PostgreSQL, and feed page reads in a 1M-item org (issue 3).

    .venv/bin/python bench/posts.py [--quick] [--workers 1,2] [--profile]

Real `feeds-server serve` processes (one per "worker", each on its own port; with more than one,
they share Redis as separate nodes would) and a separate load-generator process (bench/loadgen.py:
asyncio, HTTP/1.1 keep-alive). Every post is one transaction: the post, its audience row and its
event (numbered from the org's `event_seq`). All posts go to one org, by 8 members, round-robin.

Figures: max throughput (closed loop, 64 connections), latency p50/p99 at 1,000 posts/s offered
(open loop, constant rate, latency counted from when each request was due), CPU milliseconds per post
(server processes, PostgreSQL, load generator) and the load average, then feed page p50/p99 for a member of an org with
1,000,000 feed items (first page and a deep page reached by cursor).

Targets: >= 3,000 posts/s; p99 <= 25 ms at 1,000/s; feed page p99 <= 20 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import harness as h  # noqa: E402
from feeds_server.domain import cursors  # noqa: E402

TARGET_RATE = 3000.0
TARGET_P99_MS = 25.0
TARGET_FEED_P99_MS = 20.0
OFFERED = 1000.0
# Connections of the max-throughput run: enough in flight that an org's group commit fills its batches.
MAX_CONNECTIONS = 64
SLUG = "bench"
N_MEMBERS = 8


def postgres_cpu() -> float:
    """CPU seconds used so far by every PostgreSQL process (the server and its backends)."""
    total = 0.0
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            if (p / "comm").read_text().strip().startswith("postgres"):
                total += h.cpu_seconds(int(p.name))
        except (OSError, ValueError, IndexError):
            continue
    return total


async def loadgen(spec: dict[str, Any]) -> dict[str, Any]:
    out = await h.run_json_subprocess([h.PY, str(Path(__file__).with_name("loadgen.py"))], json.dumps(spec).encode(), timeout=spec["duration"] + 180)
    return json.loads(out)


def machine_busy() -> float:
    """CPU seconds the whole machine has spent busy (every core, every process) so far."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


async def measured(nodes: list[h.Node], spec: dict[str, Any]) -> dict[str, Any]:
    """Run the load generator and account the CPU each side used, and what everything else on the
    machine used meanwhile (the cores are shared)."""
    srv0 = sum(h.cpu_seconds(n.pid) for n in nodes)
    pg0 = postgres_cpu()
    busy0 = machine_busy()
    t0 = time.perf_counter()
    result = await loadgen(spec)
    wall = time.perf_counter() - t0
    result["cpu_server"] = sum(h.cpu_seconds(n.pid) for n in nodes) - srv0
    result["cpu_pg"] = postgres_cpu() - pg0
    result["cpu_other"] = max(0.0, machine_busy() - busy0 - result["cpu_server"] - result["cpu_pg"] - result.get("cpu_self", 0.0))
    result["wall"] = wall
    result["load"] = os.getloadavg()[0]
    return result


def post_requests(members: list[h.Member]) -> list[dict[str, Any]]:
    body = json.dumps({"body": "Benchmark status update: the quarterly numbers are in and the pipeline looks healthy this week."})
    return [{"method": "POST", "path": f"/api/v1/orgs/{SLUG}/posts", "headers": m.headers, "body": body} for m in members]


def start_nodes(db: str, data_dir: Path, count: int) -> list[h.Node]:
    extra = {"FEEDS_REDIS_URL": h.REDIS_URL} if count > 1 else {}
    nodes = [h.Node(h.server_env(db, data_dir, **extra), log_path=data_dir / f"node{i}.log") for i in range(count)]
    for n in nodes:
        n.start()
    return nodes


def py_spy(pid: int, seconds: int, out: Path) -> subprocess.Popen[bytes] | None:
    spy = h.VENV_BIN / "py-spy"
    if not spy.exists():
        print("  (py-spy not installed in .venv: .venv/bin/pip install py-spy)")
        return None
    return subprocess.Popen([str(spy), "record", "-p", str(pid), "-d", str(seconds), "-r", "200", "-f", "raw", "-o", str(out), "--gil", "--nonblocking"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def profile_dir(data_dir: Path) -> Path:
    """Where py-spy's raw stacks go: FEEDS_BENCH_PROFILE_DIR to keep them, else the scratch folder."""
    kept = os.environ.get("FEEDS_BENCH_PROFILE_DIR")
    if kept:
        Path(kept).mkdir(parents=True, exist_ok=True)
    return Path(kept) if kept else data_dir


def _package(filename: str) -> str:
    """py-spy names files relative to their sys.path entry: the first component is the package."""
    filename = filename.split("site-packages/")[-1]
    first = filename.split("/", 1)[0]
    return first.removesuffix(".py") if first else filename


def summarize_profile(path: Path, top: int = 20) -> str:
    """py-spy collapsed stacks (sampled only while the thread holds the GIL, i.e. runs Python):
    self time by package, and inclusive time of the project's own functions."""
    if not path.exists():
        return "(no profile)"
    by_package: dict[str, int] = {}
    inclusive: dict[str, int] = {}
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count_s = line.rpartition(" ")
        count = int(count_s)
        total += count
        frames = stack.split(";")
        leaf = frames[-1]
        m = re.match(r"(.*) \((.*?)(?::\d+)?\)$", leaf)
        by_package[_package(m.group(2)) if m else leaf] = by_package.get(_package(m.group(2)) if m else leaf, 0) + count
        seen = set()
        for f in frames:
            m = re.match(r"(.*) \((.*?)(?::\d+)?\)$", f)
            if m and m.group(2).split("site-packages/")[-1].startswith("feeds_server/") and m.group(1) not in ("main", "_serve"):
                key = f"{m.group(1)} ({m.group(2)})"
                if key not in seen:
                    seen.add(key)
                    inclusive[key] = inclusive.get(key, 0) + count
    if not total:
        return "(empty profile)"
    by_leaf: dict[str, int] = {}
    for line in path.read_text().splitlines():
        stack, _, count_s = line.rpartition(" ")
        leaf = stack.split(";")[-1]
        by_leaf[leaf] = by_leaf.get(leaf, 0) + int(count_s)
    lines = [f"{total} samples (GIL held); self time by package:"]
    for k, c in sorted(by_package.items(), key=lambda x: -x[1])[:12]:
        lines.append(f"  {100 * c / total:5.1f}%  {k}")
    lines.append("self time by function:")
    for k, c in sorted(by_leaf.items(), key=lambda x: -x[1])[:15]:
        lines.append(f"  {100 * c / total:5.1f}%  {k[:150]}")
    lines.append("inclusive time of feeds_server functions:")
    for k, c in sorted(inclusive.items(), key=lambda x: -x[1])[:top]:
        lines.append(f"  {100 * c / total:5.1f}%  {k}")
    return "\n".join(lines)


async def posts_phase(db: str, data_dir: Path, members: list[h.Member], workers: int, quick: bool, profile: bool) -> dict[str, Any]:
    nodes = await asyncio.to_thread(start_nodes, db, data_dir, workers)
    try:
        ports = [n.port for n in nodes]
        reqs = post_requests(members)
        dur = 4 if quick else 10
        await loadgen({"mode": "closed", "ports": ports, "concurrency": 16, "duration": 2, "requests": reqs})  # warm-up
        spy = py_spy(nodes[0].pid, dur, profile_dir(data_dir) / f"posts-w{workers}.txt") if profile else None
        closed = await measured(nodes, {"mode": "closed", "ports": ports, "concurrency": MAX_CONNECTIONS, "duration": dur, "requests": reqs})
        if spy is not None:
            spy.wait(60)
            print(f"\n-- py-spy of node 0 during the max-throughput run ({workers} worker(s)):")
            print(summarize_profile(profile_dir(data_dir) / f"posts-w{workers}.txt"))
        await asyncio.sleep(1)
        opened = await measured(nodes, {"mode": "open", "ports": ports, "rate": OFFERED, "duration": dur, "pool": 64, "requests": reqs})
        await asyncio.sleep(1)
        half_rate = round(closed["rate"] / 2)
        half = await measured(nodes, {"mode": "open", "ports": ports, "rate": half_rate, "duration": dur, "pool": 64, "requests": reqs})
        return {"workers": workers, "closed": closed, "open": opened, "half": half, "half_rate": half_rate}
    finally:
        for n in nodes:
            await asyncio.to_thread(n.stop)


def load_feed_items(db: str, n_items: int, author_id: int) -> None:
    """n_items status posts in the org's `org` channel, spread over the last year, straight in SQL."""
    org_id = int(h.psql(f"SELECT id FROM orgs WHERE slug = '{SLUG}'", db))
    first = int(h.psql("SELECT coalesce(max(id), 0) FROM posts", db)) + 1
    step = 365 * 86400 / n_items
    h.psql(
        "INSERT INTO posts (org_id, kind, author_id, body, module, data, comment_count, created_at) "
        f"SELECT {org_id}, 'status', {author_id}, 'Loaded item ' || g, NULL, '{{}}'::jsonb, 0, "
        f"now() - interval '1 year' + g * interval '{step} seconds' FROM generate_series(1, {n_items}) g",
        db,
    )
    h.psql(
        "INSERT INTO post_audience (org_id, post_id, channel, module, created_at) "
        f"SELECT org_id, id, 'org', NULL, created_at FROM posts WHERE id >= {first}",
        db,
    )
    h.psql("VACUUM ANALYZE posts", db)
    h.psql("VACUUM ANALYZE post_audience", db)


async def feed_phase(db: str, data_dir: Path, members: list[h.Member], n_items: int, quick: bool, profile: bool = False) -> dict[str, Any]:
    t0 = time.perf_counter()
    await asyncio.to_thread(load_feed_items, db, n_items, members[0].user_id)
    load_s = time.perf_counter() - t0
    total = int(h.psql("SELECT count(*) FROM post_audience WHERE channel = 'org'", db))
    mid = h.psql(
        "SELECT extract(epoch FROM created_at)::text || ' ' || post_id FROM post_audience WHERE channel = 'org' "
        f"ORDER BY created_at DESC, post_id DESC OFFSET {total // 2} LIMIT 1",
        db,
    )
    epoch_s, post_id = mid.split()
    import datetime as dt

    deep_cursor = cursors.encode(dt.datetime.fromtimestamp(float(epoch_s), tz=dt.timezone.utc), int(post_id))
    nodes = await asyncio.to_thread(start_nodes, db, data_dir, 1)
    try:
        reader = members[1]
        base = f"/api/v1/orgs/{SLUG}/feed"
        n = 300 if quick else 1000
        out: dict[str, Any] = {"items": total, "load_seconds": load_s}
        for name, path in (("first page", base), ("deep page (cursor at the middle)", f"{base}?cursor={deep_cursor}")):
            req = [{"method": "GET", "path": path, "headers": reader.headers}]
            await loadgen({"mode": "closed", "ports": [nodes[0].port], "concurrency": 1, "duration": 2, "requests": req, "max_requests": 100})
            seq = await measured(nodes, {"mode": "closed", "ports": [nodes[0].port], "concurrency": 1, "duration": 60, "requests": req, "max_requests": n})
            spy = py_spy(nodes[0].pid, 4, data_dir / "feed.txt") if profile and name == "first page" else None
            par = await measured(nodes, {"mode": "closed", "ports": [nodes[0].port], "concurrency": 8, "duration": 4 if quick else 8, "requests": req})
            if spy is not None:
                spy.wait(60)
                print("\n-- py-spy of the node during first-page reads (8 connections):")
                print(summarize_profile(data_dir / "feed.txt"))
            out[name] = {"sequential": seq, "concurrent8": par}
        return out
    finally:
        for n_ in nodes:
            await asyncio.to_thread(n_.stop)


def fmt(x: float, nd: int = 1) -> str:
    return f"{x:,.{nd}f}"


def report(phases: list[dict[str, Any]], feed: dict[str, Any] | None) -> None:
    print("\n## Posts through the HTTP API (one org, 8 authors, PostgreSQL)")
    rows = []
    for ph in phases:
        c, o = ph["closed"], ph["open"]
        ok_c = c["statuses"].get("201", 0)
        rows.append([
            str(ph["workers"]), fmt(c["rate"], 0), fmt(c["p50"]), fmt(c["p99"]),
            f"{1000 * c['cpu_server'] / max(ok_c, 1):.2f} / {1000 * c['cpu_pg'] / max(ok_c, 1):.2f} / {1000 * c.get('cpu_self', 0) / max(ok_c, 1):.2f}",
            fmt(o["rate"], 0), fmt(o["p50"]), fmt(o["p99"]), fmt(o["p999"]),
            ",".join(f"{k}:{v}" for k, v in sorted(c["statuses"].items())),
            f"{c['cpu_other'] / c['wall']:.2f} / {c['load']:.1f}",
        ])
    print(h.table(rows, ["server procs", f"max posts/s ({MAX_CONNECTIONS} conns)", "p50 ms", "p99 ms", "CPU ms/post server / PG / loadgen",
                         "posts/s @1000 offered", "p50 ms", "p99 ms", "p99.9 ms", "statuses (max run)",
                         "other processes' cores / load avg (max run)"]))
    print("\nAt half the maximum rate (open loop), what latency a node gives when it is not saturated:")
    print(h.table([[str(ph["workers"]), fmt(ph["half_rate"], 0), fmt(ph["half"]["rate"], 0), fmt(ph["half"]["p50"]), fmt(ph["half"]["p99"])] for ph in phases],
                  ["server procs", "offered posts/s", "achieved", "p50 ms", "p99 ms"]))
    if feed is not None:
        report_feed(feed)
    report_targets(phases, feed)


def report_feed(feed: dict[str, Any]) -> None:
    print("\n## Feed page reads, org with " + fmt(feed["items"], 0) + f" items in the `org` channel (loaded in {feed['load_seconds']:.0f} s)")
    frows = []
    for name in ("first page", "deep page (cursor at the middle)"):
        s, p = feed[name]["sequential"], feed[name]["concurrent8"]
        frows.append([name, fmt(s["p50"]), fmt(s["p99"]), fmt(s["rate"], 0), fmt(p["rate"], 0), fmt(p["p99"]),
                      f"{1000 * s['cpu_server'] / max(s['done'], 1):.2f} / {1000 * s['cpu_pg'] / max(s['done'], 1):.2f}"])
    print(h.table(frows, ["page", "p50 ms (1 conn)", "p99 ms (1 conn)", "pages/s (1 conn)", "pages/s (8 conns)", "p99 ms (8 conns)", "CPU ms/page server / PG"]))


def report_targets(phases: list[dict[str, Any]], feed: dict[str, Any] | None) -> None:
    print("\n## Against the targets")
    rows = []
    if phases:
        best = max(phases, key=lambda ph: ph["closed"]["rate"])
        best_lat = min(phases, key=lambda ph: ph["open"]["p99"])
        rows += [
            ["max posts/s", f">= {TARGET_RATE:,.0f}", fmt(best["closed"]["rate"], 0) + f" ({best['workers']} procs)",
             f"{best['closed']['rate'] / TARGET_RATE:.2f}", h.verdict(best["closed"]["rate"] / TARGET_RATE)],
            ["p99 at 1,000 posts/s", f"<= {TARGET_P99_MS:.0f} ms", fmt(best_lat["open"]["p99"]) + f" ms ({best_lat['workers']} procs)",
             f"{TARGET_P99_MS / best_lat['open']['p99']:.2f}", h.verdict(TARGET_P99_MS / best_lat["open"]["p99"])],
        ]
    if feed is not None:
        feed_p99 = max(feed[name]["sequential"]["p99"] for name in ("first page", "deep page (cursor at the middle)"))
        rows += [["feed page p99 (worst of first/deep, 1 conn)", f"<= {TARGET_FEED_P99_MS:.0f} ms", fmt(feed_p99) + " ms",
                  f"{TARGET_FEED_P99_MS / feed_p99:.2f}", h.verdict(TARGET_FEED_P99_MS / feed_p99)]]
    print(h.table(rows, ["figure", "target", "measured", "ratio (>= 1 meets)", "verdict"]))


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="small version, < 60 s")
    parser.add_argument("--workers", default=None, help="comma-separated server process counts (default 1,2 quick; 1,2,3 full)")
    parser.add_argument("--items", type=int, default=None, help="feed items to load (default 1,000,000; 100,000 quick)")
    parser.add_argument("--profile", action="store_true", help="py-spy node 0 during each max-throughput run")
    parser.add_argument("--feed-only", action="store_true", help="only the feed page reads")
    parser.add_argument("--posts-only", action="store_true", help="only the posts (no feed page reads)")
    args = parser.parse_args()
    h.raise_nofile()
    workers = [int(x) for x in (args.workers or ("1,2" if args.quick else "1,2,3")).split(",")]
    n_items = args.items or (100_000 if args.quick else 1_000_000)
    h.print_machine()
    print(f"command: {' '.join(sys.argv)}")
    with h.bench_database("posts") as db, h.scratch_dir("posts") as data_dir:
        members = await h.org_on_a_setup_node(db, data_dir, SLUG, N_MEMBERS)
        phases = []
        for w in [] if args.feed_only else workers:
            ph = await posts_phase(db, data_dir, members, w, args.quick, args.profile)
            c, o = ph["closed"], ph["open"]
            print(f"{w} proc(s): max {c['rate']:,.0f} posts/s (p99 {c['p99']:.1f} ms); at {OFFERED:,.0f}/s offered: "
                  f"{o['rate']:,.0f}/s, p50 {o['p50']:.1f} ms, p99 {o['p99']:.1f} ms; CPU of the max run: server {c['cpu_server'] / c['wall']:.2f}, "
                  f"PostgreSQL {c['cpu_pg'] / c['wall']:.2f}, load generator {c.get('cpu_self', 0) / c['wall']:.2f}, other processes "
                  f"{c['cpu_other'] / c['wall']:.2f} cores; load average {c['load']:.1f}", flush=True)
            phases.append(ph)
        feed = None if args.posts_only else await feed_phase(db, data_dir, members, n_items, args.quick, args.profile)
        report(phases, feed)
        for log in sorted(data_dir.glob("*.log")):
            text = log.read_text(errors="replace")
            if "ERROR" in text or "Traceback" in text:
                print(f"\n(errors in {log.name}:)\n" + text[-1500:])


if __name__ == "__main__":
    asyncio.run(main())
