"""Poison jobs in the email outbox: the notifier sets each aside and sends every other email once.

    flock /tmp/feeds-bench.lock .venv/bin/python bench/poison_jobs.py [--mentions 2000] [--kills 2]

On a fresh PostgreSQL database: one org, `--mentions` members each mentioned once (mention emails
sent at once), and one in ten of those jobs damaged the way old or hostile data arrives: the notification's data of
another shape, the member's stored address or name with `CR LF Bcc: victim@evil.test`.
Then `feeds-server notifier` runs as a real process against a real SMTP server (aiosmtpd) and is
killed with SIGKILL `--kills` times while it sends, restarted each time, until the outbox is empty.

Printed: emails sent, duplicates (the same Message-ID accepted twice), emails to the injected
`Bcc` address, dead letters and their reasons, jobs neither sent nor set aside (lost), and the time.
Exit status 1 unless lost and injected are 0, the dead letters are exactly the damaged data and
addresses (a damaged name is sent, on one line), and, without kills, duplicates are 0.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import func, select, text, update  # noqa: E402

from bench.common import fresh_database  # noqa: E402
from bench.harness import FEEDS, print_machine  # noqa: E402
from bench.notifier import setup  # noqa: E402
from feeds_server.actions.posts import Reader, create_post  # noqa: E402
from feeds_server.store.models import EmailJob, Notification, User  # noqa: E402
from feeds_server.store.scope import account_session, org_session  # noqa: E402
from tests.notify.smtp import SmtpServer  # noqa: E402

VICTIM = "victim@evil.test"
INJECTION = "\r\nBcc: " + VICTIM


async def damage(services, jobs: list[int]) -> dict[str, int]:  # type: ignore[no-untyped-def]
    """One job in ten, three kinds in turn, written straight into the database as data stored before
    today's rules would be; returns how many of each."""
    kinds: collections.Counter[str] = collections.Counter()
    async with account_session(services.sessions) as s:
        for n, job_id in enumerate(jobs[::10]):
            kind = ("data", "address", "name")[n % 3]
            user_id, note_id = (await s.execute(select(EmailJob.user_id, EmailJob.notification_id).where(EmailJob.id == job_id))).one()
            if kind == "data":  # the notification's data of another shape
                await s.execute(update(Notification).where(Notification.id == note_id).values(data=["not", "a", "mention"]))
            elif kind == "address":  # an address that would add a recipient
                await s.execute(text("UPDATE users SET email = email || :inj WHERE id = :id"), {"inj": INJECTION, "id": user_id})
            else:  # a name that would add a header
                await s.execute(update(User).where(User.id == user_id).values(name="Eve" + INJECTION))
            kinds[kind] += 1
    return dict(kinds)


def notifier_env(url: str, smtp_port: int, data_dir: Path) -> dict[str, str]:
    return {
        **os.environ, "FEEDS_DATABASE_URL": url, "FEEDS_SMTP_HOST": "127.0.0.1", "FEEDS_SMTP_PORT": str(smtp_port),
        "FEEDS_SMTP_TLS": "none", "FEEDS_DATA_DIR": str(data_dir), "FEEDS_LOG_LEVEL": "warning",
        "FEEDS_NOTIFIER_LEASE_SECONDS": "3", "FEEDS_SECRET_KEY": "bench-secret-key-bench-secret-key-0123456789",
    }


async def pending(services) -> int:  # type: ignore[no-untyped-def]
    async with account_session(services.sessions) as s:
        return (await s.execute(select(func.count()).select_from(EmailJob).where(EmailJob.status.in_(("pending", "sending"))))).scalar_one()


async def run(args: argparse.Namespace) -> bool:
    smtp = SmtpServer().start()
    data_dir = Path("/tmp/feeds-bench-poison")
    async with fresh_database("feeds_bench_poison") as url:
        services, org_id, people = await setup(url, smtp.port, args.mentions)
        try:
            author, users = people[0], people[1:]
            async with org_session(services.sessions, org_id) as s:
                for i in range(0, len(users), 50):
                    await create_post(s, Reader(author, None, True), " ".join(f"@[user:{u}]" for u in users[i : i + 50]), services.clock())
            async with account_session(services.sessions) as s:
                jobs = list((await s.execute(select(EmailJob.id).where(EmailJob.status == "pending").order_by(EmailJob.id))).scalars())
            damaged = await damage(services, jobs)
            env = notifier_env(url, smtp.port, data_dir)
            started = time.perf_counter()
            kills = exits = 0
            while await pending(services) and time.perf_counter() - started < args.timeout:
                proc = subprocess.Popen([FEEDS, "notifier"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                if kills < args.kills:
                    await asyncio.sleep(0.4 + 0.3 * kills)
                    proc.send_signal(signal.SIGKILL)
                    proc.wait(10)
                    kills += 1
                    await asyncio.sleep(3.5)  # the killed worker's lease runs out
                    continue
                while await pending(services) and time.perf_counter() - started < args.timeout and proc.poll() is None:
                    await asyncio.sleep(0.2)
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
                    try:
                        proc.wait(20)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                        proc.wait(10)
                else:
                    exits += 1  # the worker died on its own: started again, as a supervisor would
            took = time.perf_counter() - started
            async with account_session(services.sessions) as s:
                statuses = dict((await s.execute(select(EmailJob.status, func.count()).group_by(EmailJob.status))).all())
                errors = (await s.execute(select(EmailJob.last_error).where(EmailJob.status == "failed"))).scalars()
                reasons = collections.Counter(":".join((e or "").split(":")[:3]) for e in errors)  # e.g. "error: compose: TypeError(…"
        finally:
            await services.close()
            smtp.stop()
    ids = collections.Counter(m["Message-ID"] for m in smtp.recorder.messages)
    duplicates = sum(n - 1 for n in ids.values())
    injected = len(smtp.recorder.to(VICTIM)) + sum(1 for m in smtp.recorder.messages if m["Bcc"])
    accepted = len(ids)
    lost = len(jobs) - accepted - statuses.get("failed", 0)
    print(f"mention jobs: {len(jobs)}; damaged: {damaged}; worker killed {kills} times, exited by itself {exits} times")
    print(f"emails accepted by the SMTP server: {len(smtp.recorder.messages)} ({accepted} distinct), duplicates: {duplicates}")
    print(f"emails to the injected Bcc address, or with a Bcc header: {injected}")
    print(f"dead letters: {statuses.get('failed', 0)} ({', '.join(f'{k} x{v}' for k, v in sorted(reasons.items()))})")
    print(f"jobs neither sent nor set aside (lost): {lost}; statuses: {statuses}; took {took:.1f} s")
    expected_dead = damaged.get("data", 0) + damaged.get("address", 0)  # a name is put on one line and sent
    # A SIGKILL between the SMTP server's acceptance and the worker's record repeats that email (same
    # Message-ID): allowed only when the run kills the worker.
    return lost == 0 and injected == 0 and statuses.get("failed", 0) == expected_dead and (duplicates == 0 or kills > 0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mentions", type=int, default=2000)
    parser.add_argument("--kills", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=300, help="seconds before giving up on an outbox that does not empty")
    args = parser.parse_args()
    print_machine()
    return 0 if asyncio.run(run(args)) else 1


if __name__ == "__main__":
    sys.exit(main())
