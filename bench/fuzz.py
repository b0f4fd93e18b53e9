"""Long property-based fuzzing run of the HTTP API (schemathesis, from /openapi.json).

    .venv/bin/python bench/fuzz.py [--examples 50] [--seed 1]

One `feeds-server serve` on a fresh PostgreSQL database owned by an ordinary role (so row-level
security is on), an org with the sample data and one item of every kind, then every operation
fuzzed with `--examples` positive and as many negative examples, with random and with real ids.
Prints the examples sent, the statuses seen and every 5xx (the run exits 1 if there is one).
The short version runs in the suite: tests/abuse/test_fuzz_openapi.py.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx  # noqa: E402

from bench.harness import FEEDS, Node, print_machine, psql, scratch_dir, server_env  # noqa: E402
from tests.abuse import fuzz  # noqa: E402

ROLE = "feeds_app"
DB = "feeds_bench_fuzz"


async def _org(url: str) -> tuple[str, int]:
    async with httpx.AsyncClient(base_url=url, timeout=60) as c:
        r = await c.post("/api/v1/auth/signup", json={"email": "fuzz@bench.example", "password": "correct horse battery", "name": "Fuzz"})
        assert r.status_code == 201, r.text
        r = await c.post("/api/v1/auth/signin", json={"email": "fuzz@bench.example", "password": "correct horse battery"})
        token, user_id = r.json()["token"], r.json()["user"]["id"]
        r = await c.post("/api/v1/orgs", json={"name": "Fuzz", "slug": "fuzz", "time_zone": "UTC", "load_sample_data": True},
                         headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 201, r.text
        return token, user_id


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=int, default=50, help="examples per operation, mode and id variant")
    parser.add_argument("--seed", type=int, default=None, help="derandomize (same requests every run)")
    args = parser.parse_args()
    print_machine()
    psql(f"DO $$ BEGIN CREATE ROLE {ROLE} LOGIN NOSUPERUSER NOBYPASSRLS; EXCEPTION WHEN duplicate_object THEN NULL; END $$")
    psql(f'DROP DATABASE IF EXISTS "{DB}" WITH (FORCE)')
    psql(f'CREATE DATABASE "{DB}" OWNER {ROLE}')
    try:
        with scratch_dir("fuzz") as data_dir:
            env = server_env(DB, data_dir, FEEDS_DATABASE_URL=f"postgresql+asyncpg://{ROLE}@127.0.0.1:5432/{DB}")
            subprocess.run([FEEDS, "migrate"], env={**os.environ, **env}, check=True, capture_output=True)
            node = Node(env, log_path=data_dir / "node.log").start()
            try:
                token, user_id = asyncio.run(_org(node.url))
                ids = asyncio.run(fuzz.real_ids(node.url, token, "fuzz", user_id))
                started = time.monotonic()
                result = fuzz.run(node.url, token, "fuzz", args.examples, args.seed, ids)
                elapsed = time.monotonic() - started
            finally:
                node.stop()
    finally:
        psql(f'DROP DATABASE IF EXISTS "{DB}" WITH (FORCE)')
    print(f"operations fuzzed: {result.operations}")
    print(f"requests sent:     {result.examples} in {elapsed:.0f} s")
    print("statuses:          " + ", ".join(f"{s}: {n}" for s, n in sorted(result.statuses.items())))
    print(f"5xx answers:       {len(result.server_errors)}")
    for line in result.server_errors[:50]:
        print("  " + line)
    return 1 if result.server_errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
