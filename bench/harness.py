"""Shared pieces of the process-level benches (bench/posts.py, bench/realtime.py).

Real `feeds-server serve` processes on free ports, each on its own PostgreSQL database made for
the run and dropped at the end; an org with a handful of members set up through the public API
(invitations delivered by `feeds-server notifier --burst` into a mail folder); machine facts for
the report. Only loopback traffic.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import platform
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from email import message_from_bytes, policy
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = ROOT / ".venv" / "bin"
FEEDS = str(VENV_BIN / "feeds-server")
PY = str(VENV_BIN / "python") if (VENV_BIN / "python").exists() else sys.executable
PG_ADMIN_DSN = os.environ.get("FEEDS_BENCH_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
PG_SA_BASE = "postgresql+asyncpg://postgres@127.0.0.1:5432"
REDIS_URL = os.environ.get("FEEDS_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
PASSWORD = "bench-password-1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def raise_nofile(want: int = 65536) -> int:
    """Raise this process's open-file limit (children inherit it) as far as the hard limit allows."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = want if hard == resource.RLIM_INFINITY else min(want, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def cpu_seconds(pid: int) -> float:
    """user+system CPU time a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def machine() -> dict[str, str]:
    cpu = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_kib = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))  # type: ignore[union-attr]
    pg = subprocess.run(["psql", PG_ADMIN_DSN, "-Atc", "show server_version"], capture_output=True, text=True).stdout.strip()
    return {
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": str(os.cpu_count()),
        "cpu": cpu,
        "ram": f"{mem_kib / 1024 / 1024:.1f} GiB",
        "python": platform.python_version(),
        "postgres": pg or "?",
    }


def print_machine() -> None:
    m = machine()
    print(f"machine: {m['nproc']} cores, {m['cpu']}, {m['ram']} RAM; Python {m['python']}; PostgreSQL {m['postgres']}; {m['date']}")


# --- database --------------------------------------------------------------------------------


def psql(sql: str, db: str = "postgres") -> str:
    dsn = PG_ADMIN_DSN.rsplit("/", 1)[0] + f"/{db}"
    r = subprocess.run(["psql", dsn, "-v", "ON_ERROR_STOP=1", "-Atqc", sql], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"psql failed: {r.stderr.strip()}")
    return r.stdout.strip()


@contextlib.contextmanager
def bench_database(name: str) -> Iterator[str]:
    """`feeds_bench_<name>`, created fresh, migrated with `feeds-server migrate`, dropped at the end.
    Yields the database name."""
    db = f"feeds_bench_{name}"
    psql(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
    psql(f'CREATE DATABASE "{db}"')
    try:
        env = {**os.environ, "FEEDS_DATABASE_URL": f"{PG_SA_BASE}/{db}", "FEEDS_LOG_LEVEL": "warning"}
        subprocess.run([FEEDS, "migrate"], env=env, check=True, capture_output=True)
        yield db
    finally:
        psql(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


def server_env(db: str, data_dir: Path, **extra: str) -> dict[str, str]:
    env = {
        "FEEDS_DATABASE_URL": f"{PG_SA_BASE}/{db}",
        "FEEDS_DATA_DIR": str(data_dir),
        "FEEDS_MAIL_DIR": str(data_dir / "mail"),
        "FEEDS_ARGON2_TIME_COST": "1",
        "FEEDS_ARGON2_MEMORY_KIB": "64",
        "FEEDS_LOG_LEVEL": "warning",
        "FEEDS_SECRET_KEY": "bench-secret-key-bench-secret-key-0123456789",
        "FEEDS_CONNECTION_TOKEN_TTL_SECONDS": "3600",
        "FEEDS_REDIS_PREFIX": f"feedsbench{os.getpid()}",
        # A few users post thousands a second and open thousands of sockets: no rate limits, no cap.
        "FEEDS_RATE_LIMITS": "off",
    }
    env.update(extra)
    return env


class Node:
    """One `feeds-server serve` process."""

    def __init__(self, env: dict[str, str], port: int | None = None, log_path: Path | None = None, cmd: list[str] | None = None) -> None:
        self.env = env
        self.port = port or free_port()
        self.log_path = log_path
        self.cmd = cmd
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/connection/websocket"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, timeout: float = 30.0) -> "Node":
        env = {**os.environ, **self.env, "FEEDS_PORT": str(self.port), "FEEDS_HOST": "127.0.0.1"}
        log = open(self.log_path or os.devnull, "ab")  # noqa: SIM115 - lives as long as the process
        cmd = self.cmd or [FEEDS, "serve", "--no-migrate"]
        self.proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}; log: {self.log_path}")
            try:
                if httpx.get(self.url + "/healthz", timeout=0.5).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError("server did not become healthy")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.send_signal(signal.SIGKILL)
                self.proc.wait(10)


@contextlib.contextmanager
def scratch_dir(name: str) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix=f"feeds-bench-{name}-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


# --- an org with members, through the public API ----------------------------------------------


class Member:
    def __init__(self, user_id: int, email: str, token: str) -> None:
        self.user_id, self.email, self.token = user_id, email, token

    @property
    def headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.token}"}


async def _signup(c: httpx.AsyncClient, email: str, name: str) -> Member:
    r = await c.post("/api/v1/auth/signup", json={"email": email, "password": PASSWORD, "name": name})
    assert r.status_code == 201, r.text
    r = await c.post("/api/v1/auth/signin", json={"email": email, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return Member(r.json()["user"]["id"], email, r.json()["token"])


async def org_on_a_setup_node(db: str, data_dir: Path, slug: str, n_members: int) -> list[Member]:
    """The org and its members, made through the API of a node started for that and stopped after."""
    setup = Node(server_env(db, data_dir), log_path=data_dir / "setup.log").start()
    try:
        return await setup_org(setup, data_dir / "mail", slug, n_members)
    finally:
        setup.stop()


async def setup_org(node: Node, mail_dir: Path, slug: str, n_members: int) -> list[Member]:
    """An org `slug` whose creator is members[0] and n_members-1 invited colleagues who joined."""
    async with httpx.AsyncClient(base_url=node.url, timeout=60) as c:
        admin = await _signup(c, f"admin@{slug}.bench", "Admin")
        r = await c.post("/api/v1/orgs", json={"name": f"Bench {slug}", "slug": slug, "time_zone": "UTC"}, headers=admin.headers)
        assert r.status_code == 201, r.text
        members = [admin]
        others = [await _signup(c, f"m{i}@{slug}.bench", f"Member {i}") for i in range(1, n_members)]
        for m in others:
            r = await c.post(f"/api/v1/orgs/{slug}/invitations", json={"email": m.email}, headers=admin.headers)
            assert r.status_code == 201, r.text
        if others:
            env = {**os.environ, **node.env}
            subprocess.run([FEEDS, "notifier", "--burst"], env=env, check=True, capture_output=True, timeout=120)
            for m in others:
                token = _invitation_token(mail_dir, m.email)
                r = await c.post("/api/v1/invitations/accept", json={"token": token}, headers=m.headers)
                assert r.status_code == 200, r.text
                members.append(m)
        return members


def _invitation_token(mail_dir: Path, email: str) -> str:
    for p in sorted(mail_dir.glob("*.eml"), reverse=True):
        msg = message_from_bytes(p.read_bytes(), policy=policy.default)
        if msg["To"] == email:
            body = msg.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
            match = re.search(r"/invitation/(fsi_[A-Za-z0-9_-]+)", body)
            if match:
                return match.group(1)
    raise RuntimeError(f"no invitation email to {email} in {mail_dir}")


# --- figures ---------------------------------------------------------------------------------


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    line = lambda r: "| " + " | ".join(str(x).ljust(w) for x, w in zip(r, widths)) + " |"  # noqa: E731
    return "\n".join([line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|"] + [line(r) for r in rows])


def verdict(ratio: float, higher_is_better: bool = True) -> str:
    ok = ratio >= 1.0
    return "MET" if ok else "MISSED"


async def run_json_subprocess(args: list[str], stdin: bytes | None = None, timeout: float = 600) -> bytes:
    proc = await asyncio.create_subprocess_exec(*args, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
    out, _ = await asyncio.wait_for(proc.communicate(stdin), timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"{args[:3]} exited with {proc.returncode}")
    return out


@contextlib.asynccontextmanager
async def nodes_running(*nodes: Node) -> AsyncIterator[None]:
    try:
        for n in nodes:
            await asyncio.to_thread(n.start)
        yield
    finally:
        for n in nodes:
            await asyncio.to_thread(n.stop)
