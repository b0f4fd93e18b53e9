"""Search over an org of 1,000,000 items on PostgreSQL: p50/p99 of `GET /search` (docs/benchmarks.md).

    .venv/bin/python bench/search.py [--quick] [--items N]

The items are loaded straight in SQL (as bench/posts.py does for the feed), through the real
triggers of migration 0012, so `search_items` and its GIN index are filled as writes fill them.
Texts are 12 words drawn from a 600-word vocabulary with a skewed (Zipf-like) distribution, so
some words are in a third of the items and most are rare, as in real text.

Queries, one connection, sequential (latency as a reader sees it), then 8 connections:
- two words: two words of middle frequency (each in about 1-4 % of the items);
- filtered: one such word with `from:`, `type:status` and `after:`;
- a common word: a word in about a fifth of the items (only the newest 1,000 are ranked).

Target: p99 <= 50 ms for the two-word and the filtered queries.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import harness as h  # noqa: E402
from bench.posts import measured, start_nodes  # noqa: E402

TARGET_P99_MS = 50.0
SLUG = "bench"
N_MEMBERS = 3
WORDS_PER_ITEM = 12
CHUNK = 100_000

_CONSONANTS = "bcdfglmnprstv"
_VOWELS = "aeiou"


def vocabulary(n: int = 600) -> list[str]:
    """n distinct pronounceable words (three syllables), the same on every run."""
    out = []
    i = 0
    while len(out) < n:
        a, b, c = i % 65, (i // 65) % 65, (i // 4225) % 65
        word = "".join(_CONSONANTS[x % 13] + _VOWELS[x // 13] for x in (a, b, c))
        if word not in out:
            out.append(word)
        i += 37
    return out


def load_items(db: str, n_items: int, authors: list[int]) -> None:
    """n_items status posts in the org's `org` channel over the last year, each 12 skewed words."""
    org_id = int(h.psql(f"SELECT id FROM orgs WHERE slug = '{SLUG}'", db))
    words = vocabulary()
    array = "ARRAY[" + ",".join(f"'{w}'" for w in words) + "]"
    first = int(h.psql("SELECT coalesce(max(id), 0) FROM posts", db)) + 1
    step = 365 * 86400 / n_items
    author_array = "ARRAY[" + ",".join(str(a) for a in authors) + "]::bigint[]"
    h.psql("SELECT setseed(0.42)", db)
    for start in range(1, n_items + 1, CHUNK):
        end = min(n_items, start + CHUNK - 1)
        h.psql(
            "INSERT INTO posts (org_id, kind, author_id, body, module, data, comment_count, created_at) "
            f"SELECT {org_id}, 'status', ({author_array})[1 + g % {len(authors)}], "
            f"(SELECT string_agg(({array})[1 + floor({len(words)} * power(random(), 3))::int], ' ') "
            f" FROM generate_series(1, {WORDS_PER_ITEM}) AS k WHERE k > 0 * g), "
            f"NULL, '{{}}'::jsonb, 0, now() - interval '1 year' + g * interval '{step} seconds' "
            f"FROM generate_series({start}, {end}) AS g",
            db,
        )
        print(f"  loaded {end:,} items", flush=True)
    h.psql(
        "INSERT INTO post_audience (org_id, post_id, channel, module, created_at) "
        f"SELECT org_id, id, 'org', NULL, created_at FROM posts WHERE id >= {first}",
        db,
    )
    for table in ("posts", "post_audience", "search_items"):
        h.psql(f"VACUUM ANALYZE {table}", db)


def frequency(db: str, word: str) -> int:
    return int(h.psql(f"SELECT count(*) FROM search_items WHERE tsv @@ feeds_search_word('{word}')", db))


async def run(db: str, data_dir: Path, members: list[h.Member], n_items: int, quick: bool) -> dict[str, Any]:
    t0 = time.perf_counter()
    await asyncio.to_thread(load_items, db, n_items, [m.user_id for m in members])
    load_s = time.perf_counter() - t0
    words = vocabulary()
    # Middle-frequency words (ranks 40 and 70 of the skewed draw) and a common one (rank 2).
    two, common = (words[40], words[70]), words[2]
    author = members[1].user_id
    queries = {
        "two words": f"{two[0]} {two[1]}",
        "filtered": f"{two[0]} from:{author} type:status after:2000-01-01",
        "common word": common,
    }
    freqs = {w: frequency(db, w) for w in (*two, common)}
    matches = {
        name: int(h.psql(
            "SELECT count(*) FROM search_items WHERE " + " AND ".join(f"tsv @@ feeds_search_word('{w}')" for w in q.split() if ":" not in w)
            + (f" AND author_id = {author}" if "from:" in q else ""), db))
        for name, q in queries.items()
    }
    nodes = await asyncio.to_thread(start_nodes, db, data_dir, 1)
    try:
        reader = members[2]
        n = 300 if quick else 1000
        out: dict[str, Any] = {"items": n_items, "load_seconds": load_s, "freqs": freqs, "matches": matches, "queries": queries}
        for name, q in queries.items():
            req = [{"method": "GET", "path": f"/api/v1/orgs/{SLUG}/search?q={quote(q)}", "headers": reader.headers}]
            from bench.posts import loadgen

            await loadgen({"mode": "closed", "ports": [nodes[0].port], "concurrency": 1, "duration": 2, "requests": req, "max_requests": 50})
            seq = await measured(nodes, {"mode": "closed", "ports": [nodes[0].port], "concurrency": 1, "duration": 60, "requests": req, "max_requests": n})
            par = await measured(nodes, {"mode": "closed", "ports": [nodes[0].port], "concurrency": 8, "duration": 4 if quick else 8, "requests": req})
            out[name] = {"sequential": seq, "concurrent8": par}
            print(f"  {name}: p50 {seq['p50']:.1f} ms, p99 {seq['p99']:.1f} ms (1 conn); {par['rate']:.0f}/s, p99 {par['p99']:.1f} ms (8 conns); "
                  f"statuses {seq['statuses']}", flush=True)
        return out
    finally:
        for node in nodes:
            await asyncio.to_thread(node.stop)


def report(res: dict[str, Any]) -> None:
    print(f"\n## Search, org with {res['items']:,} items (loaded through the triggers in {res['load_seconds']:.0f} s)")
    print("word frequencies (items): " + ", ".join(f"{w}: {c:,}" for w, c in res["freqs"].items()))
    rows = []
    for name, q in res["queries"].items():
        s, p = res[name]["sequential"], res[name]["concurrent8"]
        rows.append([name, f"`{q}`", f"{res['matches'][name]:,}", f"{s['p50']:.1f}", f"{s['p99']:.1f}", f"{s['rate']:.0f}", f"{p['rate']:.0f}",
                     f"{p['p99']:.1f}", f"{1000 * s['cpu_server'] / max(s['done'], 1):.2f} / {1000 * s['cpu_pg'] / max(s['done'], 1):.2f}",
                     f"{s['cpu_other'] / s['wall']:.2f}"])
    print(h.table(rows, ["query", "q", "matching items", "p50 ms (1 conn)", "p99 ms (1 conn)", "queries/s (1 conn)", "queries/s (8 conns)",
                         "p99 ms (8 conns)", "CPU ms/query server / PG", "other processes' cores"]))
    print("\n## Against the target")
    rows = []
    for name in ("two words", "filtered"):
        p99 = res[name]["sequential"]["p99"]
        rows.append([f"{name} p99 (1 conn)", f"<= {TARGET_P99_MS:.0f} ms", f"{p99:.1f} ms", f"{TARGET_P99_MS / p99:.2f}", h.verdict(TARGET_P99_MS / p99)])
    print(h.table(rows, ["figure", "target", "measured", "ratio (>= 1 meets)", "verdict"]))


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="100,000 items, fewer queries")
    parser.add_argument("--items", type=int, default=None, help="items to load (default 1,000,000; 100,000 quick)")
    args = parser.parse_args()
    h.raise_nofile()
    n_items = args.items or (100_000 if args.quick else 1_000_000)
    h.print_machine()
    print(f"command: {' '.join(sys.argv)}")
    with h.bench_database("search") as db, h.scratch_dir("search") as data_dir:
        members = await h.org_on_a_setup_node(db, data_dir, SLUG, N_MEMBERS)
        res = await run(db, data_dir, members, n_items, args.quick)
        report(res)
        for log in sorted(data_dir.glob("*.log")):
            text = log.read_text(errors="replace")
            if "ERROR" in text or "Traceback" in text:
                print(f"\n(errors in {log.name}:)\n" + text[-1500:])


if __name__ == "__main__":
    asyncio.run(main())
