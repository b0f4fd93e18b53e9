"""The world the fault runs break: two nodes, a Redis of its own, PostgreSQL, an org with members.

Everything listens on loopback. The Redis is a `redis-server` started on a free port for the run
(so freezing or restarting it never touches the machine's Redis on 6379); the database is a fresh
`feeds_bench_fault<pid>` dropped at the end; the nodes run bench/faults/node.py (the real server
plus a loop-lag probe and `/_fault/stats`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from bench.harness import PY, ROOT, Member, Node, bench_database, free_port, scratch_dir, server_env, setup_org

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


class RedisServer:
    """A private redis-server: start, kill -9, SIGSTOP/SIGCONT, restart on the same port."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> "RedisServer":
        self.proc = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--loglevel", "warning"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.ping():
                return self
            time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def ping(self) -> bool:
        import redis

        try:
            r = redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=2, socket_connect_timeout=1)
            try:
                return bool(r.ping())
            finally:
                r.close()
        except Exception:  # noqa: BLE001 - "not answering" is an answer here
            return False

    def numsub(self, pattern: str) -> int:
        """Subscriptions on channels matching `pattern` (PUBSUB NUMSUB of each)."""
        import redis

        r = redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=2, decode_responses=True)
        try:
            channels = r.pubsub_channels(pattern)
            return sum(n for _, n in r.pubsub_numsub(*channels)) if channels else 0
        finally:
            r.close()

    def clients(self) -> int:
        import redis

        r = redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=2)
        try:
            return len(r.client_list()) - 1  # not counting this one
        finally:
            r.close()

    def freeze(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
            self.proc.wait(10)

    def stop(self) -> None:
        self.kill()


class Cluster:
    """Two nodes on one database and one Redis, and an org whose members' tokens clients use."""

    def __init__(self, db: str, data_dir: Path, redis: RedisServer, n_nodes: int = 2, **extra_env: str) -> None:
        self.db, self.data_dir, self.redis = db, data_dir, redis
        self.env = server_env(
            db, data_dir,
            FEEDS_REDIS_URL=redis.url,
            FEEDS_RATE_LIMITS="false",
            FEEDS_WS_CONNECTIONS_PER_USER="100000",
            FEEDS_CONNECTION_TOKEN_TTL_SECONDS="36000",
            FEEDS_REDIS_PREFIX=f"fault{os.getpid()}",
            **extra_env,
        )
        self.nodes = [
            Node(self.env, log_path=data_dir / f"node-{i}.log", cmd=[PY, str(ROOT / "bench" / "faults" / "node.py")]) for i in range(n_nodes)
        ]
        self.members: list[Member] = []
        self.tokens: list[str] = []
        self.slug = "fault"

    @property
    def ws_urls(self) -> list[str]:
        return [n.ws_url for n in self.nodes]

    def start(self) -> "Cluster":
        for n in self.nodes:
            n.start()
        return self

    def stop(self) -> None:
        for n in self.nodes:
            with contextlib.suppress(Exception):
                n.stop()

    async def setup(self, n_members: int) -> None:
        self.members = await setup_org(self.nodes[-1], self.data_dir / "mail", self.slug, n_members)
        async with httpx.AsyncClient(base_url=self.nodes[-1].url, timeout=30) as c:
            for m in self.members:
                r = await c.post(f"/api/v1/orgs/{self.slug}/realtime/token", headers=m.headers)
                assert r.status_code == 200, r.text
                self.tokens.append(r.json()["token"])

    async def stats(self, i: int) -> dict[str, Any]:
        async with httpx.AsyncClient(timeout=10) as c:
            return (await c.get(self.nodes[i].url + "/_fault/stats")).json()


class Poster:
    """Posts `fault N` as the org's admin, trying each node in turn (as a load balancer would)."""

    def __init__(self, cluster: Cluster, first: int = 0, pad: int = 0) -> None:
        self.cluster = cluster
        self.first = first
        self.pad = " " + "x" * pad if pad else ""
        self.sent: dict[int, float] = {}  # number -> monotonic time of the first attempt
        self.posted: set[int] = set()
        self.failed = 0
        self.latencies: list[float] = []
        self.next = 0
        self._client = httpx.AsyncClient(timeout=30, headers=cluster.members[0].headers)

    async def post(self) -> bool:
        i = self.next
        self.next += 1
        nodes = self.cluster.nodes
        self.sent[i] = time.monotonic()
        for k in range(len(nodes)):
            node = nodes[(self.first + k) % len(nodes)]
            t = time.monotonic()
            try:
                r = await self._client.post(f"{node.url}/api/v1/orgs/{self.cluster.slug}/posts", json={"body": f"fault {i}{self.pad}"})
            except httpx.HTTPError:
                continue
            if r.status_code == 201:
                self.latencies.append(time.monotonic() - t)
                self.posted.add(i)
                return True
            if r.status_code < 500 and r.status_code != 429:
                break
        self.failed += 1
        return False

    async def stream(self, rate: float, seconds: float) -> None:
        """Post at `rate` per second for `seconds` (one at a time, so commit order = number order)."""
        start = time.monotonic()
        n = 0
        while time.monotonic() - start < seconds:
            await self.post()
            n += 1
            delay = start + n / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)

    async def close(self) -> None:
        await self._client.aclose()


@contextlib.contextmanager
def world(n_nodes: int = 2, **extra_env: str) -> Iterator[Cluster]:
    """A private Redis, a fresh database and `n_nodes` started nodes; all gone at the end."""
    redis = RedisServer().start()
    try:
        with scratch_dir("faults") as data_dir, bench_database(f"fault{os.getpid()}") as db:
            cluster = Cluster(db, data_dir, redis, n_nodes, **extra_env)
            try:
                yield cluster.start()
            finally:
                cluster.stop()
    finally:
        redis.stop()
