"""Record-event ingestion and the dormant-records query on PostgreSQL.

    .venv/bin/python bench/records.py [--quick]

Targets (issue 5): ≥ 2,000 record events/s with 5 rules on each of 20 modules and fan-out to
followers; dormant-records p99 ≤ 50 ms with 1,000,000 records in the org. The HTTP API is driven
in-process (httpx ASGI transport), so figures include routing, validation and the transaction,
not the network.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx  # noqa: E402
from sqlalchemy import text  # noqa: E402

from bench.common import fresh_database, percentile  # noqa: E402
from feeds_server.api.app import create_app  # noqa: E402
from feeds_server.config import Settings  # noqa: E402
from feeds_server.services import Services  # noqa: E402
from feeds_server.store.migrate import upgrade  # noqa: E402

MODULES = [f"Module{i:02d}" for i in range(20)]


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--events", type=int, help="record events to ingest (default 20,000; quick 4,000)")
    parser.add_argument("--records", type=int, help="records in the org for the dormant query (default 1,000,000)")
    args = parser.parse_args()
    n_events = args.events or (4_000 if args.quick else 20_000)
    n_records = args.records or (100_000 if args.quick else 1_000_000)
    async with fresh_database("feeds_bench_records") as url:
        settings = replace(Settings(), database_url=url, argon2_time_cost=1, argon2_memory_kib=64, data_dir=Path("/tmp/feeds-bench-records"))
        services = Services.build(settings)
        await upgrade(services.engine)
        app = create_app(services=services)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench", timeout=60) as c:
            await c.post("/api/v1/auth/signup", json={"email": "admin@bench.example", "password": "password123", "name": "Admin"})
            token = (await c.post("/api/v1/auth/signin", json={"email": "admin@bench.example", "password": "password123"})).json()["token"]
            h = {"authorization": f"Bearer {token}"}
            await c.post("/api/v1/orgs", json={"name": "Bench", "slug": "bench", "time_zone": "UTC", "load_sample_data": True}, headers=h)
            b = "/api/v1/orgs/bench"
            itoken = (await c.post(f"{b}/integrations", json={"name": "CRM"}, headers=h)).json()["token"]
            members = (await c.get(f"{b}/members", params={"limit": 100}, headers=h)).json()["members"]
            emails = [m["user"]["email"] for m in members]
            groups = (await c.get(f"{b}/groups", headers=h)).json()["groups"]
            for module in MODULES:
                for i in range(5):
                    crit = {"and": [{"field": "Amount", "type": "number", "op": "gt", "value": 10_000 * (i + 1)},
                                    {"field": "Stage", "type": "picklist", "op": "in", "value": ["Open", "Won"]}]}
                    r = await c.post(f"{b}/rules", headers=h, json={"name": f"{module} {i}", "module": module, "criteria": crit,
                                                                   "followers": {"creator": True, "owner_superior_role": True, "groups": [groups[i % len(groups)]["id"]]}})
                    assert r.status_code == 201, r.text
            ih = {"authorization": f"Bearer {itoken}"}
            batch_size = 500
            start = time.perf_counter()
            for k in range(0, n_events, batch_size):
                events = [
                    {"event_id": f"e{j}", "type": "created" if j % 3 else "edited", "module": MODULES[j % 20],
                     "record": {"id": f"R{j % (n_events // 2)}", "name": f"Record {j}", "owner_email": emails[j % len(emails)],
                                "fields": {"Amount": (j * 7919) % 100_000, "Stage": "Open" if j % 2 else "Won"}}}
                    for j in range(k, k + batch_size)
                ]
                r = await c.post(f"{b}/integration/record-events", json={"events": events}, headers=ih)
                assert r.status_code == 200, r.text[:300]
            rate = n_events / (time.perf_counter() - start)

            me = (await c.get("/api/v1/me", headers=h)).json()["user"]["id"]
            async with services.engine.begin() as conn:
                org_id = (await conn.execute(text("SELECT id FROM orgs WHERE slug='bench'"))).scalar_one()
                await conn.execute(text(
                    "INSERT INTO records (org_id, module, crm_id, name, owner_id, fields, created_at, last_activity_at) "
                    "SELECT :org, 'Bulk' || (g % 20), 'B' || g, 'Bulk record ' || g, CASE WHEN g % 50 = 0 THEN CAST(:me AS bigint) ELSE NULL END, '{}', "
                    "now() - (g % 400) * interval '1 day', now() - (g % 400) * interval '1 day' FROM generate_series(1, :n) g"
                ), {"org": org_id, "me": me, "n": n_records})
                await conn.execute(text("ANALYZE records"))
                await conn.execute(text("ANALYZE follows"))
            lat = []
            for i in range(200):
                t = time.perf_counter()
                r = await c.get(f"{b}/dormant-records", params={"days": 1 + (i * 37) % 180, "limit": 25}, headers=h)
                lat.append((time.perf_counter() - t) * 1000)
                assert r.status_code == 200
        await services.close()
    p99 = percentile(lat, 99)
    print("| measure | value | target | ratio |")
    print("|---|---|---|---|")
    print(f"| record events/s (5 rules × 20 modules, fan-out) | {rate:.0f} | ≥ 2,000 | {rate / 2000:.2f}× |")
    print(f"| dormant-records p50 / p99, {n_records:,} records | {percentile(lat, 50):.1f} / {p99:.1f} ms | p99 ≤ 50 ms | {50 / p99:.2f}× headroom |")


if __name__ == "__main__":
    asyncio.run(main())
