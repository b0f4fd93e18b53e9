"""The notifier under SMTP faults and worker kills, for `python -m bench.faults notifier`.

A real SMTP server (aiosmtpd, in a thread of this process) counts what it accepts by Message-ID.
Two `feeds-server notifier` processes send N mention emails (one per mention: batch window 0)
while the mail server answers 451 to a run of messages, 550 to some recipients, stops listening
for a few seconds, and the workers are killed with SIGKILL mid-send and started again. At the end
every email must have arrived exactly once — except a duplicate whose first copy was accepted just
before a kill (the documented accept-then-crash window, docs/notifications.md) — and the 550
recipients' jobs must be `failed`, with nothing received.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from collections import Counter
from email.message import EmailMessage

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from sqlalchemy import func, select

from bench.common import fresh_database
from bench.faults.result import Result
from bench.harness import FEEDS
from bench.notifier import setup
from feeds_server.actions.posts import Reader, create_post
from feeds_server.store.models import EmailJob
from feeds_server.store.scope import account_session, org_session
from tests.notify.smtp import Recorder
from tests.server import free_port

MENTIONS_PER_POST = 50
KILLS = 5


class TimedRecorder(Recorder):
    """Recorder that also keeps when each Message-ID was accepted."""

    def __init__(self) -> None:
        super().__init__()
        self.accepted: list[tuple[str, float]] = []
        self.to: list[str] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        answer = await super().handle_DATA(server, session, envelope)
        if answer.startswith("250"):
            msg: EmailMessage = self.messages[-1]
            self.accepted.append((str(msg["Message-ID"]), time.monotonic()))
            self.to.append(str(msg["To"]))
            self.messages.clear()  # keep only the IDs: thousands of parsed messages are not needed
        return answer


class Mail:
    def __init__(self) -> None:
        self.recorder = TimedRecorder()
        self.port = free_port()
        self.controller: Controller | None = None

    def start(self) -> None:
        self.controller = Controller(self.recorder, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None


LEASE_SECONDS = 15  # longer than any send takes here; a killed worker's batches come back after it


def _worker(url: str, port: int, data_dir: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "FEEDS_DATABASE_URL": url,
        "FEEDS_DATA_DIR": data_dir,
        "FEEDS_SMTP_HOST": "127.0.0.1",
        "FEEDS_SMTP_PORT": str(port),
        "FEEDS_SMTP_TLS": "none",
        "FEEDS_NOTIFIER_LEASE_SECONDS": str(LEASE_SECONDS),
        "FEEDS_LOG_LEVEL": "error",
    }
    return subprocess.Popen([FEEDS, "notifier"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


async def _statuses(services) -> Counter[str]:  # type: ignore[no-untyped-def]
    async with account_session(services.sessions) as s:
        rows = (await s.execute(select(EmailJob.status, func.count()).where(EmailJob.kind == "mention").group_by(EmailJob.status))).all()
    return Counter({status: n for status, n in rows})


async def notifier_faults(mentions: int, kill_count: int = KILLS, down: float = 5.0, soft: int = 200) -> Result:
    users = min(2000, max(MENTIONS_PER_POST, mentions // 5))
    refused_users = 5
    result = Result("notifier", f"{mentions} mentions, 2 workers: 451 to {soft} messages, 550 to {refused_users} recipients, "
                                f"mail server down {down:g} s, {kill_count} SIGKILLs of a worker mid-send (restarted at once); "
                                f"lease {LEASE_SECONDS} s")
    mail = Mail()
    mail.start()
    async with fresh_database("feeds_bench_fault_notifier") as url:
        services, org_id, people = await setup(url, mail.port, users)
        try:
            author, targets = people[0], people[1:]
            from feeds_server.store.models import User

            async with account_session(services.sessions) as s:
                emails = dict((await s.execute(select(User.id, User.email).where(User.id.in_(targets)))).all())
            refused = {emails[u] for u in targets[:refused_users]}
            mail.recorder.refuse_rcpt = {addr: "550 5.1.1 no such user" for addr in refused}
            mail.recorder.refuse_next = ["451 4.3.0 try again later"] * soft
            made = 0
            async with org_session(services.sessions, org_id) as s:
                while made < mentions:
                    start = (made // MENTIONS_PER_POST * MENTIONS_PER_POST) % len(targets)
                    group = (targets * 2)[start:start + min(MENTIONS_PER_POST, mentions - made)]
                    await create_post(s, Reader(author, None, True), " ".join(f"@[user:{u}]" for u in group), services.clock())
                    made += len(group)
            queued = (await _statuses(services))["pending"]
            refused_jobs = 0
            async with account_session(services.sessions) as s:
                refused_jobs = (await s.execute(select(func.count()).select_from(EmailJob).where(EmailJob.to_email.in_(refused)))).scalar_one()

            data_dir = f"/tmp/feeds-fault-notifier-{os.getpid()}"
            workers = [_worker(url, mail.port, data_dir) for _ in range(2)]
            kills: list[float] = []
            t0 = time.monotonic()
            down_done = False
            deadline = t0 + 600
            while time.monotonic() < deadline:
                await asyncio.sleep(0.25)
                st = await _statuses(services)
                done = st["sent"] + st["failed"] + st["skipped"]
                if len(kills) < kill_count and done >= (len(kills) + 1) * queued // (kill_count + 2):
                    idx = len(kills) % 2
                    workers[idx].send_signal(signal.SIGKILL)  # mid-send: the workers are busy sending
                    kills.append(time.monotonic())
                    workers[idx].wait(10)
                    workers[idx] = _worker(url, mail.port, data_dir)
                if not down_done and done >= queued // 2:
                    mail.stop()
                    await asyncio.sleep(down)
                    mail.start()
                    down_done = True
                if st["pending"] == 0 and st["sending"] == 0 and down_done:
                    break
            elapsed = time.monotonic() - t0
            for w in workers:
                w.send_signal(signal.SIGTERM)
            for w in workers:
                try:
                    w.wait(15)
                except subprocess.TimeoutExpired:
                    w.kill()
            st = await _statuses(services)
            async with account_session(services.sessions) as s:
                sent_ids = {m for (m,) in (await s.execute(select(EmailJob.message_id).where(EmailJob.status == "sent"))).all()}
                refused_status = Counter(
                    status for (status,) in (await s.execute(select(EmailJob.status).where(EmailJob.to_email.in_(refused)))).all()
                )
        finally:
            await services.close()
            mail.stop()
    times: dict[str, list[float]] = {}
    for mid, at in mail.recorder.accepted:
        times.setdefault(mid, []).append(at)
    received = set(times)
    window = other = 0
    unexplained: list[str] = []
    for mid, ts in times.items():
        for first, again in zip(ts, ts[1:]):
            if any(first <= k <= again for k in kills):
                window += 1
            else:
                other += 1
                before = [first - k for k in kills if k <= again]
                unexplained.append(f"copies {1000 * (again - first):.0f} ms apart, last kill {1000 * min(before, default=-1):.0f} ms before the first")
    unsent = sum(n for status, n in st.items() if status != "sent") - refused_jobs
    result.posted = len(sent_ids) + max(0, unsent)
    result.lost = max(0, unsent) + len(sent_ids - received)
    result.duplicates = other
    result.figures.update({
        "mention jobs queued": queued,
        "emails recorded sent (distinct Message-IDs) / accepted by the mail server": f"{len(sent_ids)} / {len(received)}",
        "duplicates in the accept-then-crash window (same Message-ID, a kill between the copies)": window,
        "jobs by status at the end": dict(st),
        f"jobs of the {refused_users} recipients answered 550": f"{dict(refused_status)}; received {sum(t in refused for t in mail.recorder.to)}",
        "worker kills": len(kills),
        "duplicates outside that window": unexplained or 0,
        "took": f"{elapsed:.0f} s",
    })
    if refused_status.get("failed", 0) != refused_jobs:
        result.failures.append("550 recipients' jobs are not all failed")
    if len(kills) < kill_count:
        result.failures.append(f"only {len(kills)} kills happened")
    return result
