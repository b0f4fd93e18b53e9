"""Notifier throughput and outbox lag against a local aiosmtpd, on PostgreSQL.

    .venv/bin/python bench/notifier.py [--quick]

Targets (issue 6): ≥ 200 emails/s with one worker; outbox lag p99 ≤ 2 s at 50 mentions/s.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import select  # noqa: E402

from bench.common import fresh_database, percentile  # noqa: E402
from feeds_server.actions import accounts, orgs  # noqa: E402
from feeds_server.actions.notifications import get_settings  # noqa: E402
from feeds_server.actions.posts import Reader, create_post  # noqa: E402
from feeds_server.config import Settings  # noqa: E402
from feeds_server.notify import worker  # noqa: E402
from feeds_server.notify.mailer_smtp import SmtpMailer  # noqa: E402
from feeds_server.runtime.services import Services  # noqa: E402
from feeds_server.store.migrate import upgrade  # noqa: E402
from feeds_server.store.models import EmailJob  # noqa: E402
from feeds_server.store.scope import account_session, org_session  # noqa: E402
from tests.server import free_port  # noqa: E402


class SinkSmtp:
    """aiosmtpd in its own process (as a real mail server would be), accepting and dropping mail."""

    def __init__(self) -> None:
        import subprocess

        self.port = free_port()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "aiosmtpd", "-n", "-l", f"127.0.0.1:{self.port}", "-c", "aiosmtpd.handlers.Sink"]
        )
        time.sleep(1.0)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


async def setup(url: str, smtp_port: int, users: int) -> tuple[Services, int, list[int]]:
    settings = replace(
        Settings(), database_url=url, smtp_host="127.0.0.1", smtp_port=smtp_port, smtp_tls="none",
        argon2_time_cost=1, argon2_memory_kib=64, data_dir=Path("/tmp/feeds-bench-notifier"), db_pool_size=10,
    )
    services = Services.build(settings)
    services.mailer = SmtpMailer(settings)
    await upgrade(services.engine)
    now = services.clock()
    async with account_session(services.sessions) as s:
        author = await accounts.sign_up(s, services.passwords, "author@bench.example", "password123", "Author")
        org, _ = await orgs.create_org(s, author.id, "Bench", "bench", "UTC", now)
        ids = []
        for i in range(users):
            u = await accounts.sign_up(s, services.passwords, f"user{i}@bench.example", "password123", f"User {i}")
            await orgs.join_org(s, u, org, (await _standard(s)), None, now)
            ids.append(u.id)
    async with org_session(services.sessions, org.id) as s:
        for uid in ids:
            (await get_settings(s, uid)).batch_window_seconds = 0
    return services, org.id, [author.id, *ids]


async def _standard(session) -> int:  # type: ignore[no-untyped-def]
    from feeds_server.store.models import Profile

    return (await session.execute(select(Profile.id).where(Profile.name == "Standard"))).scalar_one()


async def throughput(services: Services, org_id: int, people: list[int], n: int) -> float:
    author, users = people[0], people[1:]
    targets = users[:n]
    async with org_session(services.sessions, org_id) as s:
        for i in range(0, len(targets), 50):
            await create_post(s, Reader(author, None, True), " ".join(f"@[user:{u}]" for u in targets[i : i + 50]), services.clock())
    async with account_session(services.sessions) as s:
        queued = len((await s.execute(select(EmailJob.id).where(EmailJob.status == "pending"))).all())
    start = time.perf_counter()
    sent = await worker.run(services, burst=True)
    took = time.perf_counter() - start
    print(f"queued mention emails: {queued}, sent: {sent}")
    return sent / took


async def lag(services: Services, org_id: int, people: list[int], rate: float, seconds: float) -> list[float]:
    author, users = people[0], people[1:]
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(services, stop=stop))
    worker.POLL_SECONDS = 0.05
    start = time.perf_counter()
    i = 0
    while time.perf_counter() - start < seconds:
        target = start + i / rate
        await asyncio.sleep(max(0.0, target - time.perf_counter()))
        async with org_session(services.sessions, org_id) as s:
            await create_post(s, Reader(author, None, True), f"@[user:{users[i % len(users)]}] lag {i}", services.clock())
        i += 1
    await asyncio.sleep(3)
    stop.set()
    await task
    async with account_session(services.sessions) as s:
        rows = (await s.execute(select(EmailJob.created_at, EmailJob.sent_at).where(EmailJob.status == "sent", EmailJob.created_at >= _since(start)))).all()
    return [(sent - created).total_seconds() for created, sent in rows if sent is not None]


def _since(perf_start: float):  # type: ignore[no-untyped-def]
    from datetime import datetime, timedelta, timezone

    return datetime.now(timezone.utc) - timedelta(seconds=time.perf_counter() - perf_start + 1)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    smtp = SinkSmtp()
    n = 400 if args.quick else 2_000
    async with fresh_database("feeds_bench_notifier") as url:
        services, org_id, people = await setup(url, smtp.port, n)
        try:
            rate = await throughput(services, org_id, people, n)
            lags = await lag(services, org_id, people, 50.0, 10 if args.quick else 30)
        finally:
            await services.close()
            smtp.stop()
    print()
    print("| measure | value | target | ratio |")
    print("|---|---|---|---|")
    print(f"| emails/s, one worker | {rate:.0f} | ≥ 200 | {rate / 200:.2f}× |")
    p99 = percentile(lags, 99)
    print(f"| outbox lag p50 / p99 at 50 mentions/s | {percentile(lags, 50):.3f} s / {p99:.3f} s | p99 ≤ 2 s | {2 / p99 if p99 else float('inf'):.2f}× headroom |")
    print(f"| mentions measured for lag | {len(lags)} | | |")


if __name__ == "__main__":
    asyncio.run(main())
