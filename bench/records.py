"""Record-event ingestion and the dormant-records query on PostgreSQL; prints a table of figures.

    .venv/bin/python bench/records.py            # 20,000 events, 1,000,000 records
    .venv/bin/python bench/records.py --quick    # 4,000 events, 100,000 records
    .venv/bin/python bench/records.py --events 3000 --records 1000000
    .venv/bin/python bench/records.py --events 6000 --records 0 --senders 2   # ingest only, two CRM streams at once

Targets (issue 5): ≥ 2,000 record events/s with 5 auto-follow rules on each of 20 modules and
fan-out to followers; dormant-records p99 ≤ 50 ms with 1,000,000 records in the org. The HTTP API
is driven in-process (httpx ASGI transport), so figures include authentication, validation, the
transaction and publishing, not the network. PostgreSQL: FEEDS_BENCH_PG_URL (bench/common.py).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import os
import random
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx  # noqa: E402
from sqlalchemy import text  # noqa: E402

from bench.common import fresh_database, percentile  # noqa: E402
from feeds_server import limits  # noqa: E402
from feeds_server.api.app import create_app  # noqa: E402
from feeds_server.config import Settings  # noqa: E402
from feeds_server.runtime.services import Services  # noqa: E402
from feeds_server.store.migrate import upgrade  # noqa: E402

MODULES = [f"Module{i:02d}" for i in range(20)]
BASE = "/api/v1/orgs/bench"


async def setup(c: httpx.AsyncClient, wide: bool = True) -> tuple[dict[str, str], dict[str, str], list[str]]:
    """An org with the sample people and groups, an integration, and 5 rules on each of 20 modules.

    `wide`: each rule also makes the owner's superior role and a group follow (about 8 followers an
    item); otherwise only the rule's creator (about 2 with the owner).
    """
    await c.post("/api/v1/auth/signup", json={"email": "admin@bench.example", "password": "password123", "name": "Admin"})
    token = (await c.post("/api/v1/auth/signin", json={"email": "admin@bench.example", "password": "password123"})).json()["token"]
    h = {"authorization": f"Bearer {token}"}
    r = await c.post("/api/v1/orgs", json={"name": "Bench", "slug": "bench", "time_zone": "UTC", "load_sample_data": True}, headers=h)
    assert r.status_code == 201, r.text
    itoken = (await c.post(f"{BASE}/integrations", json={"name": "CRM"}, headers=h)).json()["token"]
    members = (await c.get(f"{BASE}/members", params={"limit": 100}, headers=h)).json()["members"]
    groups = (await c.get(f"{BASE}/groups", headers=h)).json()["groups"]
    for module in MODULES:
        for i in range(limits.MAX_RULES_PER_MODULE_PER_CREATOR):
            criteria = {"and": [{"field": "Amount", "type": "number", "op": "gt", "value": 10_000 * (i + 1)},
                                {"field": "Stage", "type": "picklist", "op": "in", "value": ["Open", "Won"]}]}
            followers = {"creator": True, "owner_superior_role": True, "groups": [groups[i % len(groups)]["id"]]} if wide else {"creator": True}
            r = await c.post(f"{BASE}/rules", headers=h, json={"name": f"{module} {i}", "module": module, "criteria": criteria, "followers": followers})
            assert r.status_code == 201, r.text
    return h, {"authorization": f"Bearer {itoken}"}, [m["user"]["email"] for m in members]


def batch(start: int, size: int, emails: list[str], stream: str = "") -> list[dict]:
    """Two thirds creations, the rest edits of records created earlier; every tenth edit also a note.

    `stream` prefixes record and event ids: concurrent senders each send their own records."""
    events = []
    for j in range(start, start + size):
        if j % 3 or j < 3:
            rid, kind = j, "created"
        else:
            rid, kind = (j * 2_654_435_761) % j, "edited"  # a record created earlier
            rid -= 1 if rid % 3 == 0 and rid >= 3 else 0
        record = {"id": f"{stream}R{rid}", "name": f"Record {rid}", "owner_email": emails[rid % len(emails)],
                  "fields": {"Amount": (j * 7919) % 100_000, "Stage": "Open" if j % 2 else "Won", "Source": "Web"}}
        events.append({"event_id": f"{stream}e{j}", "type": kind, "module": MODULES[rid % 20], "record": record})
        if kind == "edited" and j % 10 == 0:
            events.append({"event_id": f"{stream}n{j}", "type": "note_added", "module": MODULES[rid % 20], "record": {"id": f"{stream}R{rid}"},
                           "note": {"id": f"{stream}N{j}", "text": "Called the customer"}})
    return events[:size]


def serve_gc() -> None:
    """The collector settings of `feeds-server serve` (cli/main.py): what exists at start-up is never
    rescanned and young objects are collected less often. Without them a batch pays ~80 ms of full
    collections that the server does not."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 50)


async def backend_pids(services: Services) -> list[int]:
    """The PostgreSQL backends of the bench's connection pool (all on this machine)."""
    async with services.engine.connect() as conn:
        return list((await conn.execute(text("SELECT pid FROM pg_stat_activity WHERE datname = current_database()"))).scalars())


def cpu_seconds(pids: list[int]) -> float:
    """User and system CPU of processes, from /proc (0 for any that ended)."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


async def ingest(c: httpx.AsyncClient, ih: dict[str, str], emails: list[str], n_events: int, services: Services, senders: int = 1) -> dict[str, float]:
    """`senders` CRM streams into the same org at once, each sending its batches one after the other.

    Also the CPU each 1,000 events cost the server process (with the load generator, which is small)
    and the PostgreSQL backends: rates move with the machine's load, CPU per event much less."""
    size = limits.MAX_RECORD_EVENTS_PER_BATCH
    latencies: list[float] = []
    async with contextlib.AsyncExitStack() as stack:  # a pooled connection per sender (and one more), open before the clock starts
        for _ in range(senders + 1):
            await stack.enter_async_context(services.engine.connect())
    pids = await backend_pids(services)

    async def send(stream: str, n: int) -> None:
        for k in range(0, n, size):
            t = time.perf_counter()
            r = await c.post(f"{BASE}/integration/record-events", json={"events": batch(k, min(size, n - k), emails, stream)}, headers=ih)
            latencies.append((time.perf_counter() - t) * 1000)
            assert r.status_code == 200, r.text[:300]
            assert all(x["status"] == "applied" for x in r.json()["results"]), r.text[:300]

    started, cpu0, pg0 = time.perf_counter(), time.process_time(), cpu_seconds(pids)
    await asyncio.gather(*(send(f"S{i}" if senders > 1 else "", n_events // senders) for i in range(senders)))
    elapsed = time.perf_counter() - started
    server_cpu, pg_cpu = time.process_time() - cpu0, cpu_seconds(pids) - pg0
    new_pids = set(await backend_pids(services)) - set(pids)
    async with services.engine.connect() as conn:
        posts = (await conn.execute(text("SELECT count(*) FROM posts WHERE kind = 'record'"))).scalar_one()
        audience = (await conn.execute(text("SELECT count(*) FROM post_audience WHERE module IS NOT NULL"))).scalar_one()
    sent = n_events // senders * senders
    return {"rate": sent / elapsed, "p50": percentile(latencies, 50), "p99": percentile(latencies, 99), "fanout": audience / max(posts, 1),
            "server_cpu": server_cpu * 1e6 / sent, "pg_cpu": pg_cpu * 1e6 / sent, "late_backends": len(new_pids)}


async def bulk_records(services: Services, n_records: int) -> None:
    """Records spread over 20 modules and 400 days, each owned (and so followed) by one of the members."""
    async with services.engine.begin() as conn:
        org_id = (await conn.execute(text("SELECT id FROM orgs WHERE slug = 'bench'"))).scalar_one()
        await conn.execute(text(
            "CREATE TEMP TABLE m AS SELECT row_number() OVER (ORDER BY user_id) - 1 AS k, user_id FROM memberships WHERE org_id = :org"
        ), {"org": org_id})
        n_members = (await conn.execute(text("SELECT count(*) FROM m"))).scalar_one()
        await conn.execute(text(
            "INSERT INTO records (org_id, module, crm_id, name, owner_id, fields, key_fields, created_at, last_activity_at) "
            "SELECT :org, 'Bulk' || (g % 20), 'B' || g, 'Bulk record ' || g, m.user_id, '{\"Amount\": 1}', '[\"Amount\"]', "
            "now() - (g % 400) * interval '1 day' - (g % 86400) * interval '1 second', "
            "now() - (g % 400) * interval '1 day' - (g % 86400) * interval '1 second' "
            "FROM generate_series(1, :n) g JOIN m ON m.k = g % :members"
        ), {"org": org_id, "n": n_records, "members": n_members})
        await conn.execute(text(
            "INSERT INTO follows (org_id, record_id, user_id, module, source, last_activity_at, created_at) "
            "SELECT org_id, id, owner_id, module, 'owner', last_activity_at, created_at FROM records WHERE org_id = :org AND crm_id LIKE 'B%'"
        ), {"org": org_id})
        for table in ("records", "follows"):
            await conn.execute(text(f"ANALYZE {table}"))


async def dormant(c: httpx.AsyncClient, h: dict[str, str], requests: int) -> dict[str, float]:
    rnd = random.Random(5)
    latencies = []
    for i in range(requests):
        params: dict[str, str | int] = {"days": rnd.randint(limits.MIN_DORMANT_DAYS, limits.MAX_DORMANT_DAYS), "limit": 25}
        if i % 2:
            params["module"] = f"Bulk{rnd.randrange(20)}"
        t = time.perf_counter()
        r = await c.get(f"{BASE}/dormant-records", params=params, headers=h)
        if i % 4 == 0 and r.json()["next_cursor"]:
            r = await c.get(f"{BASE}/dormant-records", params={**params, "cursor": r.json()["next_cursor"]}, headers=h)
        latencies.append((time.perf_counter() - t) * 1000 / (2 if i % 4 == 0 else 1))
        assert r.status_code == 200 and r.json()["records"], r.text[:300]
    return {"p50": percentile(latencies, 50), "p99": percentile(latencies, 99)}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller run (4,000 events, 100,000 records)")
    parser.add_argument("--events", type=int, help="record events to ingest (default 20,000; quick 4,000)")
    parser.add_argument("--fanout", choices=("wide", "narrow"), default="wide", help="rules add a group and the superior role (wide) or only their creator")
    parser.add_argument("--senders", type=int, default=1, help="concurrent CRM streams into the org (each its own records)")
    parser.add_argument("--records", type=int, help="records in the org for the dormant query (default 1,000,000; quick 100,000; 0 skips it)")
    args = parser.parse_args()
    n_events = args.events or (4_000 if args.quick else 20_000)
    n_records = args.records if args.records is not None else (100_000 if args.quick else 1_000_000)
    async with fresh_database("feeds_bench_records") as url:
        settings = replace(Settings(), database_url=url, argon2_time_cost=1, argon2_memory_kib=64, data_dir=Path("/tmp/feeds-bench-records"))
        services = Services.build(settings)
        try:
            await upgrade(services.engine)
            app = create_app(services=services)
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench", timeout=120) as c:
                h, ih, emails = await setup(c, wide=args.fanout == "wide")
                serve_gc()
                ing = await ingest(c, ih, emails, n_events, services, args.senders)
                dor = {"p50": float("nan"), "p99": float("nan")}
                if n_records:
                    await bulk_records(services, n_records)
                    dor = await dormant(c, h, 400)
        finally:
            await services.close()
    print(f"| measure ({n_events:,} events in batches of {limits.MAX_RECORD_EVENTS_PER_BATCH} from {args.senders} sender(s); {n_records:,} records) | value | target |")
    print("|---|---|---|")
    print(f"| record events ingested per second (5 rules × 20 modules, {args.fanout} fan-out) | {ing['rate']:,.0f} | ≥ 2,000 |")
    print(f"| followers per record item (fan-out) | {ing['fanout']:.1f} | |")
    print(f"| batch of {limits.MAX_RECORD_EVENTS_PER_BATCH} events, p50 / p99 | {ing['p50']:.0f} / {ing['p99']:.0f} ms | |")
    late = f" ({ing['late_backends']} backend(s) opened during the run not counted)" if ing["late_backends"] else ""
    print(f"| CPU per 1,000 events: server process / PostgreSQL{late} | {ing['server_cpu']:.0f} / {ing['pg_cpu']:.0f} ms | |")
    print(f"| dormant records, one page of 25, p50 / p99 | {dor['p50']:.1f} / {dor['p99']:.1f} ms | p99 ≤ 50 ms |")


if __name__ == "__main__":
    asyncio.run(main())
