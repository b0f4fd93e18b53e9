"""Notifier throughput and outbox lag on PostgreSQL: emails to a local aiosmtpd, Web Push to a local
push service, digests; one worker (the loops of `feeds-server notifier`, run in this process).

    .venv/bin/python bench/notifier.py [--quick] [--push-concurrency N] [--push-origins K]

Targets: ≥ 200 emails/s and ≥ 200 pushes/s with one worker; ≥ 100 digests sent/s; outbox lag p99
≤ 2 s at 50 mentions/s, for emails and for pushes.

In order: N people, each with one browser subscribed to push and nobody online; a mention of each
(an email and a push job each), drained by the email loop then by the push loop, each alone in
burst mode; mentions at 50/s posted by another process (as server nodes would) while the email
and push loops run together; then everyone on a daily digest with activity in their records and
groups in the period just ended: the scheduler queues them all, the email loop sends them.

The mail server (aiosmtpd's Sink) and the push service (tests/notify/push_service.py: checks each
push's VAPID signature and decrypts its RFC 8291 body) run in processes of their own, so their work
is not counted as the worker's; "worker CPU" is this process's CPU time while a loop drains.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import event, func, select, update  # noqa: E402

from bench.common import cpu_seconds, fresh_database, percentile  # noqa: E402
from feeds_server import limits  # noqa: E402
from feeds_server.actions import accounts, orgs, push_subscriptions  # noqa: E402
from feeds_server.actions.notifications import get_settings  # noqa: E402
from feeds_server.actions.posts import Reader, create_post  # noqa: E402
from feeds_server.config import Settings  # noqa: E402
from feeds_server.notify import digests, push_worker, vapid, worker  # noqa: E402
from feeds_server.notify.mailer_smtp import SmtpMailer  # noqa: E402
from feeds_server.runtime.services import Services  # noqa: E402
from feeds_server.store.migrate import upgrade  # noqa: E402
from feeds_server.store.models import (  # noqa: E402
    Comment, EmailJob, Group, GroupSource, Notification, NotificationSettings, Post, PostAudience, Presence, PushJob,
)
from feeds_server.store.scope import account_session, org_session  # noqa: E402
from tests.server import free_port  # noqa: E402


class SinkSmtp:
    """aiosmtpd in its own process (as a real mail server would be), accepting and dropping mail."""

    def __init__(self) -> None:
        self.port = free_port()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "aiosmtpd", "-n", "-l", f"127.0.0.1:{self.port}", "-c", "aiosmtpd.handlers.Sink"]
        )
        time.sleep(1.0)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


class PushEndpoint:
    """tests/notify/push_service.py in its own process (this file with --serve-push): N browser
    subscriptions made with the server's key; `stats()` asks what it accepted and refused."""

    def __init__(self, n: int, server_key: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--serve-push", str(n), "--server-key", server_key],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        assert self.proc.stdout is not None
        self.subscriptions: list[dict[str, Any]] = json.loads(self.proc.stdout.readline())["subscriptions"]

    def stats(self) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write("stats\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def stop(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def serve_push(n: int, server_key: str) -> None:
    """The child side of PushEndpoint: one JSON line of subscriptions, then a JSON line of counts per
    `stats` line read; stops when stdin closes."""
    from tests.notify.push_service import PushService

    service = PushService().start()
    subs = [service.new_subscription(server_key) for _ in range(n)]
    print(json.dumps({"port": service.port, "subscriptions": subs}), flush=True)
    for line in sys.stdin:
        if line.strip() == "stats":
            with service._lock:
                got = list(service.received)
            bad = [r for r in got if r.status not in (201, 202) or r.payload is None]
            print(json.dumps({"accepted": len(got) - len(bad), "refused": len(bad), "first_refusal": bad[0].error if bad else None}), flush=True)
    service.stop()


def _settings(url: str, smtp_port: int) -> Settings:
    return replace(
        Settings(), database_url=url, smtp_host="127.0.0.1", smtp_port=smtp_port, smtp_tls="none",
        argon2_time_cost=1, argon2_memory_kib=64, data_dir=Path("/tmp/feeds-bench-notifier"), db_pool_size=10,
        secret_key="bench-notifier-secret", push_allow_networks=("127.0.0.1/32",),
        vapid_subject="mailto:bench@feeds-server.net",  # push services refuse a subject at a local or test name
    )


async def setup(url: str, smtp_port: int, users: int) -> tuple[Services, int, list[int]]:
    settings = _settings(url, smtp_port)
    services = Services.build(settings)
    services.mailer = SmtpMailer(settings)
    Statements.watch(services)
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


async def subscribe_all(services: Services, org_id: int, users: list[int], subs: list[dict[str, Any]]) -> None:
    """One browser per person, stored as the subscription route stores it; nobody online."""
    async with org_session(services.sessions, org_id) as s:
        for uid, sub in zip(users, subs):
            await push_subscriptions.subscribe(s, uid, sub["endpoint"], sub["keys"]["p256dh"], sub["keys"]["auth"], "bench", services.clock())
        assert (await s.execute(select(func.count()).select_from(Presence))).scalar_one() == 0


class Statements:
    """SQL statements this process sent (a figure a loaded machine does not blur)."""

    count = 0

    @classmethod
    def watch(cls, services: Services) -> None:
        def one(*_: Any) -> None:
            cls.count += 1

        event.listen(services.engine.sync_engine, "before_cursor_execute", one)


@dataclass
class Drain:
    """One loop run in burst mode over a filled outbox."""

    queued: int
    sent: int
    seconds: float
    cpu: float
    statements: int = 0

    @property
    def rate(self) -> float:
        return self.sent / self.seconds if self.seconds else 0.0

    @property
    def cpu_ms_each(self) -> float:
        return 1000 * self.cpu / self.sent if self.sent else float("nan")

    @property
    def statements_each(self) -> float:
        return self.statements / self.sent if self.sent else float("nan")


async def _drain(loop: Any, services: Services, queued: int) -> Drain:
    cpu, start, statements = cpu_seconds(), time.perf_counter(), Statements.count
    sent = await loop(services, burst=True)
    return Drain(queued, sent, time.perf_counter() - start, cpu_seconds() - cpu, Statements.count - statements)


async def _count(services: Services, model: Any, *where: Any) -> int:
    async with account_session(services.sessions) as s:
        return (await s.execute(select(func.count()).select_from(model).where(*where))).scalar_one()


async def throughput(services: Services, org_id: int, people: list[int], n: int) -> tuple[Drain, Drain]:
    """N mentions (50 per post), each queueing an email and a push; the email loop drains its
    outbox, then the push loop its own."""
    author, users = people[0], people[1:]
    targets = users[:n]
    async with org_session(services.sessions, org_id) as s:
        for i in range(0, len(targets), 50):
            await create_post(s, Reader(author, None, True), " ".join(f"@[user:{u}]" for u in targets[i : i + 50]), services.clock())
    emails = await _drain(worker.run, services, await _count(services, EmailJob, EmailJob.status == "pending"))
    pushes = await _drain(push_worker.run, services, await _count(services, PushJob, PushJob.status == "pending"))
    print(f"queued mention emails: {emails.queued}, sent: {emails.sent}; queued pushes: {pushes.queued}, sent: {pushes.sent}")
    return emails, pushes


@dataclass
class Lags:
    """Per job, in seconds: created → sent (a job is stamped when its post's transaction begins),
    and committed → sent (from when the notifier could first see it: its own part)."""

    created: list[float]
    committed: list[float]

    @classmethod
    def of(cls, rows: Iterable[tuple[datetime, datetime, int | None]], committed: dict[int, float]) -> "Lags":
        created, after = [], []
        for made, sent, post_id in rows:
            created.append((sent - made).total_seconds())
            if post_id in committed:
                after.append((sent if sent.tzinfo else sent.replace(tzinfo=timezone.utc)).timestamp() - committed[post_id])
        return cls(created, after)


async def lag(services: Services, org_id: int, people: list[int], rate: float, seconds: float) -> tuple[Lags, Lags, int, dict[str, float]]:
    """Mentions at `rate`, posted by another process (as server nodes would), while the email and
    push loops run here together as in the notifier. Returns each sent job's lag (emails, pushes),
    how many pushes were not sent, and the poster's figures (rate reached, post p50 / p99, CPU).

    The email loop polls every 0.05 s (as this bench always has); the push loop keeps its
    production poll (push_worker.POLL_SECONDS), so a push committed just after a poll waits up to
    that long."""
    stop = asyncio.Event()
    worker.POLL_SECONDS = 0.05
    tasks = [asyncio.create_task(worker.run(services, stop=stop)), asyncio.create_task(push_worker.run(services, stop=stop))]
    async with account_session(services.sessions) as s:  # the jobs of earlier phases are left out
        last_email = (await s.execute(select(func.coalesce(func.max(EmailJob.id), 0)))).scalar_one()
        last_push = (await s.execute(select(func.coalesce(func.max(PushJob.id), 0)))).scalar_one()
    order = {"url": services.settings.database_url, "org": org_id, "people": people, "rate": rate, "seconds": seconds}
    poster = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--post-mentions", stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    out, _ = await poster.communicate(json.dumps(order).encode())
    if poster.returncode != 0 or not out.strip():
        raise RuntimeError(f"the process posting mentions failed (exit {poster.returncode}); its errors are above")
    posted = json.loads(out.decode().strip().splitlines()[-1])
    await asyncio.sleep(3)
    stop.set()
    await asyncio.gather(*tasks)
    committed = {int(post_id): at for post_id, at in posted.pop("committed").items()}
    async with account_session(services.sessions) as s:
        mails = (await s.execute(
            select(EmailJob.created_at, EmailJob.sent_at, Notification.post_id)
            .outerjoin(Notification, Notification.id == EmailJob.notification_id).where(EmailJob.status == "sent", EmailJob.id > last_email)
        )).all()
        pushes = (await s.execute(
            select(PushJob.created_at, PushJob.sent_at, PushJob.status, Notification.post_id)
            .join(Notification, Notification.id == PushJob.notification_id).where(PushJob.id > last_push)
        )).all()
    email_lags = Lags.of(((created, sent, post_id) for created, sent, post_id in mails if sent is not None), committed)
    push_lags = Lags.of(((created, sent, post_id) for created, sent, status, post_id in pushes if status == "sent" and sent is not None), committed)
    return email_lags, push_lags, sum(1 for _, _, status, _ in pushes if status != "sent"), posted


async def post_mentions() -> None:
    """The child side of `lag`: reads its order as JSON on stdin and posts one mention every 1/rate
    seconds, each at its time whether or not the previous one is done (up to the pool's size in
    flight; one waiting for a connection is stamped when it gets one, so the rate reached shows when
    this process falls behind). Prints the rate reached, how long each post took (part of every
    job's lag: a job is stamped when its post begins) and when each post committed."""
    order = json.loads(sys.stdin.read())
    services = Services.build(_settings(order["url"], 0))
    author, users, rate = order["people"][0], order["people"][1:], order["rate"]

    took: list[float] = []
    committed: dict[int, float] = {}
    failed: list[str] = []
    connections = asyncio.Semaphore(services.settings.db_pool_size)  # wait here, not for the pool's timeout

    async def mention(i: int) -> None:
        async with connections:
            began = time.perf_counter()
            try:
                async with org_session(services.sessions, order["org"]) as s:
                    post = await create_post(s, Reader(author, None, True), f"@[user:{users[i % len(users)]}] lag {i}", services.clock())
            except Exception as exc:  # counted and shown, the run goes on
                failed.append(repr(exc))
                return
            committed[post["id"]] = time.time()
            took.append(time.perf_counter() - began)

    posting: list[asyncio.Task[None]] = []
    start, cpu = time.perf_counter(), cpu_seconds()
    try:
        for i in range(int(rate * order["seconds"])):
            await asyncio.sleep(max(0.0, start + i / rate - time.perf_counter()))
            posting.append(asyncio.create_task(mention(i)))
        await asyncio.gather(*posting)
    finally:
        await services.close()
    rate_reached = len(committed) / (time.perf_counter() - start)
    print(json.dumps({
        "posted": len(committed), "rate": rate_reached, "p50": percentile(took, 50), "p99": percentile(took, 99),
        "cpu_ms": 1000 * (cpu_seconds() - cpu) / max(len(posting), 1), "failed": len(failed), "first_failure": failed[0] if failed else None,
        "committed": committed,
    }), flush=True)


async def digest_activity(services: Services, org_id: int, people: list[int]) -> None:
    """Something for every digest, written straight to the tables: 5 groups (each person in one)
    with 4 posts of 3 comments each in the period, and 50 records with 3 items each in every
    follower's channel (each person follows one)."""
    author, users = people[0], people[1:]
    now = services.clock()
    async with org_session(services.sessions, org_id) as s:
        for gi in range(5):
            g = Group(name=f"Group {gi}", description="", created_by_user_id=author)
            s.add(g)
            await s.flush()
            s.add_all(GroupSource(group_id=g.id, kind="user", ref_id=u) for u in users[gi::5])
            for _ in range(4):
                p = Post(kind="group", author_id=author, body="group news", group_id=g.id, data={}, created_at=now - timedelta(hours=2))
                s.add(p)
                await s.flush()
                s.add(PostAudience(post_id=p.id, channel=f"g:{g.id}", created_at=p.created_at))
                s.add_all(Comment(post_id=p.id, author_id=author, body="a comment", data={}, created_at=now - timedelta(hours=1)) for _ in range(3))
        for ri in range(50):
            data = {"record": {"id": 1000 + ri, "name": f"Deal {ri}", "module": "Deals"}}
            for _ in range(3):
                p = Post(kind="record", author_id=None, body="record change", module="Deals", data=data, created_at=now - timedelta(hours=3))
                s.add(p)
                await s.flush()
                s.add_all(PostAudience(post_id=p.id, channel=f"u:{u}", module="Deals", created_at=p.created_at) for u in users[ri::50])


async def digest_run(services: Services, org_id: int) -> tuple[Drain, Drain]:
    """Everyone on a daily digest whose period ended at this hour and was not sent yet: the
    scheduler queues them all, then the email loop sends them."""
    now = services.clock()
    async with org_session(services.sessions, org_id) as s:
        await s.execute(update(NotificationSettings).values(
            digest="daily", digest_hour=now.hour, digest_sent_until=now - timedelta(days=1), digest_due_at=now - timedelta(minutes=1),
        ))
    due = await _count(services, NotificationSettings, NotificationSettings.digest != "off")
    cpu, start, statements = cpu_seconds(), time.perf_counter(), Statements.count
    queued = await digests.schedule(services)
    scheduled = Drain(due, queued, time.perf_counter() - start, cpu_seconds() - cpu, Statements.count - statements)
    sent = await _drain(worker.run, services, queued)
    sent.sent = await _count(services, EmailJob, EmailJob.kind == digests.KIND, EmailJob.status == "sent")
    print(f"digests due: {due}, queued: {queued}, sent: {sent.sent}")
    return scheduled, sent


def _in_flight() -> str:
    per_origin = getattr(limits, "PUSH_PER_ORIGIN_CONCURRENCY", None)
    return f"{limits.PUSH_CONCURRENCY} in flight" + (f", ≤ {per_origin} per origin" if per_origin else "")


def _ratio(value: float, target: float) -> str:
    return f"{value / target:.2f}×"


def _headroom(p99: float) -> str:
    return f"{2 / p99:.2f}× headroom" if p99 and p99 == p99 else "–"


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--push-concurrency", type=int, help=f"pushes in flight (default limits.PUSH_CONCURRENCY, {limits.PUSH_CONCURRENCY})")
    parser.add_argument("--push-origins", type=int, default=1, help="push services (origins) the subscriptions are spread over (default 1)")
    args = parser.parse_args()
    if args.push_concurrency:
        limits.PUSH_CONCURRENCY = args.push_concurrency
    n = 400 if args.quick else 2_000
    seconds = 10 if args.quick else 30
    smtp = SinkSmtp()
    endpoints: list[PushEndpoint] = []
    async with fresh_database("feeds_bench_notifier") as url:
        services, org_id, people = await setup(url, smtp.port, n)
        try:
            origins = max(1, args.push_origins)
            endpoints = [PushEndpoint(len(range(k, n, origins)), vapid.public_key(services.settings)) for k in range(origins)]
            subscriptions = [endpoints[i % origins].subscriptions[i // origins] for i in range(n)]  # neighbours at different origins
            await subscribe_all(services, org_id, people[1:], subscriptions)
            emails, pushes = await throughput(services, org_id, people, n)
            email_lags, push_lags, push_unsent, posted = await lag(services, org_id, people, 50.0, seconds)
            await digest_activity(services, org_id, people)
            scheduled, digest_sent = await digest_run(services, org_id)
            seen = [endpoint.stats() for endpoint in endpoints]
        finally:
            await services.close()
            smtp.stop()
            for endpoint in endpoints:
                endpoint.stop()
    pushed = pushes.sent + len(push_lags.created)
    print()
    print("| measure | value | target | ratio |")
    print("|---|---|---|---|")
    print(f"| emails/s, one worker ({emails.queued:,} queued mention emails) | {emails.rate:.0f} | ≥ 200 | {_ratio(emails.rate, 200)} |")
    print(f"| pushes/s, one worker ({pushes.queued:,} queued mention pushes, nobody online, {_in_flight()}) | {pushes.rate:.0f} | ≥ 200 | {_ratio(pushes.rate, 200)} |")
    print(f"| digests scheduled/s ({scheduled.queued:,} due daily digests) | {scheduled.rate:.0f} | | |")
    print(f"| digests sent/s, one worker | {digest_sent.rate:.0f} | ≥ 100 | {_ratio(digest_sent.rate, 100)} |")
    for what, lags in (("email (batch window 0)", email_lags), ("push", push_lags)):
        p99 = percentile(lags.created, 99)
        print(f"| {what} outbox lag p50 / p99 at 50 mentions/s, created → sent | {percentile(lags.created, 50):.3f} s / {p99:.3f} s | p99 ≤ 2 s | {_headroom(p99)} |")
        print(f"| {what} lag p50 / p99 from the post's commit (the notifier's part) | {percentile(lags.committed, 50):.3f} s / {percentile(lags.committed, 99):.3f} s | | |")
    print(f"| mentions for lag: emails / pushes sent (pushes not sent), rate reached | {len(email_lags.created)} / {len(push_lags.created)} ({push_unsent}), {posted['rate']:.1f}/s | | |")
    print(f"| posting a mention (another process; counted in the lag) p50 / p99; its CPU each | {posted['p50']:.3f} s / {posted['p99']:.3f} s; {posted['cpu_ms']:.1f} ms | | |")
    if posted["failed"]:
        print(f"\n{posted['failed']} mention(s) could not be posted; the first: {posted['first_failure']}")
    print(f"| worker CPU per email / push / digest sent (this process) | {emails.cpu_ms_each:.2f} / {pushes.cpu_ms_each:.2f} / {digest_sent.cpu_ms_each:.2f} ms | | |")
    print(f"| worker CPU per digest scheduled | {1000 * scheduled.cpu / max(scheduled.queued, 1):.2f} ms | | |")
    print(f"| SQL statements per email / push / digest sent; per digest scheduled | {emails.statements_each:.2f} / {pushes.statements_each:.2f} / {digest_sent.statements_each:.2f}; {scheduled.statements_each:.3f} | | |")
    accepted, refused = sum(e["accepted"] for e in seen), sum(e["refused"] for e in seen)
    print(f"| pushes the push service{'s' if len(seen) > 1 else ''} ({len(seen)} origin{'s' if len(seen) > 1 else ''}) accepted (VAPID checked, decrypted) / refused | {accepted} of {pushed} / {refused} | all / 0 | |")
    for e in seen:
        if e["first_refusal"]:
            print(f"\nfirst push refused: {e['first_refusal']}")
            break
    print(f"\ncommand: {' '.join([Path(sys.executable).name, *sys.argv])}")


if __name__ == "__main__":
    if "--serve-push" in sys.argv:
        p = argparse.ArgumentParser()
        p.add_argument("--serve-push", type=int)
        p.add_argument("--server-key")
        a = p.parse_args()
        serve_push(a.serve_push, a.server_key)
    elif "--post-mentions" in sys.argv:
        asyncio.run(post_mentions())
    else:
        asyncio.run(main())
