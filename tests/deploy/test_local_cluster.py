"""deploy/: the cluster — nginx in front of two nodes, the notifier, PostgreSQL and Redis — started on
one machine by `deploy/local-cluster.sh`, and `deploy/docker-compose.yml` kept equivalent to it
(F-RT-3: an event made on one node reaches clients on every node)."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import orjson
import pytest
import websockets
import yaml
from websockets.exceptions import InvalidStatus

from feeds_server.config import Settings
from tests import factory
from tests.conftest import PG_ADMIN_URL, REDIS_URL, unavailable
from tests.realtime.helpers import Recorder, centrifuge_client, connection_token
from tests.server import free_port

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
SCRIPT = DEPLOY / "local-cluster.sh"
# The address test clients come from when they go through nginx: not a trusted proxy (127.0.0.1 is).
CLIENT_ADDRESS = "127.0.0.2"
# FEEDS_* variables the script does not set itself: they pass through from the environment.
PASSED_THROUGH = {"FEEDS_LOG_LEVEL", "FEEDS_MAIL_FROM", "FEEDS_SMTP_HOST", "FEEDS_SMTP_PORT", "FEEDS_SMTP_USER",
                  "FEEDS_SMTP_PASSWORD", "FEEDS_SMTP_TLS"}


@dataclass
class Cluster:
    env: dict[str, str]
    run_dir: Path
    http_port: int
    node_ports: list[int]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def node_url(self, i: int) -> str:
        return f"http://127.0.0.1:{self.node_ports[i]}"

    def script(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(SCRIPT), *args], env=self.env, capture_output=True, text=True, timeout=timeout)

    def pids(self) -> dict[str, int]:
        pid_dir = self.run_dir / "pids"
        return {p.stem: int(p.read_text()) for p in pid_dir.glob("*.pid")} if pid_dir.exists() else {}

    def log(self, name: str) -> str:
        path = self.run_dir / "logs" / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""


def _nginx() -> str | None:
    return shutil.which("nginx") or ("/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None)


def _consecutive_free_ports(count: int) -> int:
    for _ in range(50):
        first = free_port()
        try:
            for port in range(first, first + count):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", port))
        except OSError:
            continue
        return first
    raise RuntimeError("no free consecutive ports")


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _require_services(pg_server: str) -> None:
    if _nginx() is None:
        unavailable("nginx", "not installed (./test.sh installs Debian's package)")
    if shutil.which("psql") is None or shutil.which("pg_isready") is None:
        unavailable("PostgreSQL", "psql / pg_isready not installed")
    pg = urlsplit(pg_server)
    if subprocess.run(["pg_isready", "-q", "-h", pg.hostname or "127.0.0.1", "-p", str(pg.port or 5432)]).returncode != 0:
        unavailable("PostgreSQL", f"pg_isready failed for {pg.hostname}:{pg.port}")
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
    except Exception as exc:  # noqa: BLE001 - any failure means "unavailable"
        unavailable("Redis", repr(exc))


def _script_env(run_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEEDS_")}
    bin_dir = Path(sys.executable).parent
    if not (bin_dir / "feeds-server").exists():
        bin_dir = REPO / ".venv" / "bin"
    env.update(FEEDS_CLUSTER_RUN_DIR=str(run_dir), FEEDS_CLUSTER_BIN=str(bin_dir), **extra)
    return env


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    """`local-cluster.sh start 2` on free ports, its own database and Redis prefix; `clean` after."""
    pg_server = PG_ADMIN_URL.replace("+asyncpg", "").rsplit("/", 1)[0]
    _require_services(pg_server)
    http_port, node_port = free_port(), _consecutive_free_ports(2)
    run_dir = tmp_path / "run"
    env = _script_env(
        run_dir,
        FEEDS_CLUSTER_HTTP_PORT=str(http_port),
        FEEDS_CLUSTER_NODE_PORT=str(node_port),
        FEEDS_CLUSTER_PG_URL=pg_server,
        FEEDS_CLUSTER_DB=f"feeds_cluster_test_{os.getpid()}_{uuid.uuid4().hex[:8]}",
        FEEDS_CLUSTER_REDIS_URL=REDIS_URL,
        FEEDS_CLUSTER_NGINX=_nginx() or "nginx",
        FEEDS_REDIS_PREFIX=f"test-cluster-{uuid.uuid4().hex[:8]}",
        FEEDS_ARGON2_TIME_COST="1",
        FEEDS_ARGON2_MEMORY_KIB="64",
    )
    c = Cluster(env, run_dir, http_port, [node_port, node_port + 1])
    started = c.script("start", "2")
    try:
        assert started.returncode == 0, f"{started.stdout}\n{started.stderr}\n{c.log('node-1')[-2000:]}"
        yield c
    finally:
        pids = c.pids()
        c.script("clean")
        for pid in pids.values():  # whatever `clean` left behind must not outlive the test
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


async def _wait_for_invitation(mail_dir: Path, email: str, timeout: float = 15) -> str:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return factory.invitation_token(mail_dir, email)
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


async def test_cluster_behind_nginx_delivers_across_nodes_and_stops_cleanly(cluster: Cluster):
    """F-RT-3: a client on node 1 and one through nginx both receive posts made on node 2 and
    through nginx; nginx forwards the client address and request ids; `stop` leaves no process."""
    status = cluster.script("status")
    assert status.returncode == 0, status.stdout + status.stderr
    for name in ("nginx", "node-1", "node-2", "notifier"):
        assert re.search(rf"^{name}\s+pid \d+\s+running", status.stdout, re.M), status.stdout

    lb = httpx.AsyncClient(base_url=cluster.url, timeout=10, transport=httpx.AsyncHTTPTransport(local_address=CLIENT_ADDRESS))
    node2 = httpx.AsyncClient(base_url=cluster.node_url(1), timeout=10)
    r = await lb.get("/readyz")
    assert (r.status_code, r.json()) == (200, {"status": "ok", "database": "ok"})
    for i in range(2):
        assert (await node2.get(cluster.node_url(i) + "/readyz")).status_code == 200

    # The nodes connect as the cluster's own role, which row-level security applies to.
    pg_server = cluster.env["FEEDS_CLUSTER_PG_URL"]
    roles = subprocess.run(
        ["psql", f"{pg_server}/postgres", "-qtAc",
         "SELECT DISTINCT r.rolname, r.rolsuper OR r.rolbypassrls FROM pg_stat_activity a JOIN pg_roles r ON r.oid = a.usesysid "
         f"WHERE a.datname = '{cluster.env['FEEDS_CLUSTER_DB']}'"],
        capture_output=True, text=True, check=True,
    ).stdout.split()
    assert roles == ["feeds_cluster|f"], roles

    # Sign-up, sign-in, an org and an invitation, all through nginx; the cluster's notifier mails it.
    alice = await factory.sign_up(lb, factory.unique("Alice"))
    bob = await factory.sign_up(lb, factory.unique("Bob"))
    slug = (await factory.create_org(alice, factory.unique("cluster")))["slug"]
    r = await alice.post(f"/api/v1/orgs/{slug}/invitations", json={"email": bob.email})
    assert r.status_code == 201, r.text
    token = await _wait_for_invitation(cluster.run_dir / "mail", bob.email)
    assert (await bob.post("/api/v1/invitations/accept", json={"token": token})).status_code == 200

    # nginx appends the client's address to X-Forwarded-For and the nodes trust nginx alone:
    # the address seen is the client's, not nginx's, nor the one the client claims.
    r = await alice.get(f"/api/v1/orgs/{slug}/ip-allowlist", headers={"X-Forwarded-For": "203.0.113.9"})
    assert r.status_code == 200, r.text
    assert r.json()["your_address"] == CLIENT_ADDRESS
    request_id = r.headers["x-request-id"]

    # The WebSocket Origin allow-list follows the public URL (nginx's address), not a node's.
    for origin, allowed in ((f"http://localhost:{cluster.http_port}", True), ("http://evil.example", False)):
        ws_url = f"ws://127.0.0.1:{cluster.http_port}/connection/websocket"
        if not allowed:
            with pytest.raises(InvalidStatus):
                await websockets.connect(ws_url, origin=origin)
            continue
        async with websockets.connect(ws_url, origin=origin) as ws:
            await ws.send(orjson.dumps({"id": 1, "connect": {"token": await connection_token(bob, slug)}}).decode())
            assert "connect" in orjson.loads(await asyncio.wait_for(ws.recv(), 5))

    # One reader pinned to node 1, another through nginx; posts made on node 2 and through nginx.
    on_node1, via_lb = Recorder(), Recorder()
    clients = [
        centrifuge_client(cluster.node_url(0).replace("http", "ws") + "/connection/websocket", bob, slug, on_node1),
        centrifuge_client(f"ws://127.0.0.1:{cluster.http_port}/connection/websocket", bob, slug, via_lb),
    ]
    for client, rec in zip(clients, (on_node1, via_lb)):
        await client.connect()
        await asyncio.wait_for(rec.connected.wait(), 5)
    alice_on_node2 = factory.Actor(node2, alice.id, alice.email, alice.name, alice.token)
    assert (await alice_on_node2.post(f"/api/v1/orgs/{slug}/posts", json={"body": "made on node 2"})).status_code == 201
    assert (await alice.post(f"/api/v1/orgs/{slug}/posts", json={"body": "made through nginx"})).status_code == 201
    for rec in (on_node1, via_lb):
        await rec.wait_for(lambda rec=rec: len(rec.of_type("post.created")) >= 2, timeout=10)
        bodies = [d["payload"]["post"]["body"] for d in rec.of_type("post.created")]
        assert bodies == ["made on node 2", "made through nginx"]
    for client in clients:
        await client.disconnect()
    await lb.aclose()
    await node2.aclose()

    # nginx spread requests over both nodes, and one request id is in nginx's log and a node's.
    access = [orjson.loads(line) for line in cluster.log("nginx-access").splitlines()]
    assert {f"127.0.0.1:{p}" for p in cluster.node_ports} <= {e["upstream"] for e in access}
    assert any(e["request_id"] == request_id for e in access)
    assert request_id in cluster.log("node-1") + cluster.log("node-2")

    pids = cluster.pids()
    assert set(pids) == {"nginx", "node-1", "node-2", "notifier"}
    stopped = cluster.script("stop")
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    assert [name for name, pid in pids.items() if _alive(pid)] == []
    assert [p for p in (cluster.http_port, *cluster.node_ports) if _listening(p)] == []
    assert cluster.pids() == {}
    assert "killed" not in stopped.stdout, stopped.stdout  # every process stopped on its signal
    assert cluster.script("status").returncode == 3


def _normalized_nginx(path: Path) -> list[str]:
    """The lines both nginx configurations must share: no comments, no blank and no `site:` lines."""
    lines = (line.split("#", 1)[0].rstrip() for line in path.read_text().splitlines() if "# site:" not in line)
    return [line for line in lines if line.strip()]


def test_nginx_configs_differ_only_in_site_lines():
    """Compose's nginx.conf and the local template: the same proxying, timeouts and headers."""
    compose_conf = _normalized_nginx(DEPLOY / "nginx.conf")
    assert compose_conf == _normalized_nginx(DEPLOY / "nginx-local.conf.template")
    text = "\n".join(compose_conf)
    defaults = Settings()
    silent_limit = defaults.ws_ping_interval + defaults.ws_pong_timeout
    for timeout in re.findall(r"proxy_(?:read|send)_timeout (\d+)s;", text):
        assert int(timeout) > silent_limit
    for header in ("X-Forwarded-For $proxy_add_x_forwarded_for", "Upgrade $http_upgrade", "Connection $connection_upgrade"):
        assert f"proxy_set_header {header};" in text


def test_compose_file_matches_the_local_cluster(tmp_path: Path):
    """docker-compose.yml runs what local-cluster.sh runs: PostgreSQL, Redis, migrations once, two
    or more nodes with the same settings, the notifier, and nginx with health checks on /readyz."""
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    services = compose["services"]
    nodes = sorted(name for name in services if re.fullmatch(r"feeds-\d+", name))
    assert len(nodes) >= 2
    assert {"postgres", "redis", "migrate", "notifier", "nginx"} <= set(services)
    for name, service in services.items():
        for dep in service.get("depends_on", {}):
            assert dep in services, f"{name} depends on unknown {dep}"
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            assert source.startswith("./") and (DEPLOY / source).exists() or source in compose["volumes"]

    # The nodes: migrated first, serve without migrating, ready means /readyz answers.
    for name in nodes:
        node = services[name]
        assert node["command"] == ["feeds-server", "serve", "--no-migrate"]
        assert node["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        assert "/readyz" in " ".join(node["healthcheck"]["test"])
        assert node["environment"] == services["notifier"]["environment"]
    assert services["migrate"]["command"] == ["feeds-server", "migrate"]
    assert services["notifier"]["command"] == ["feeds-server", "notifier"]

    # nginx: waits for healthy nodes, proxies to each, is the only trusted proxy, on the script's port.
    nginx = services["nginx"]
    assert {dep: cond["condition"] for dep, cond in nginx["depends_on"].items()} == {n: "service_healthy" for n in nodes}
    assert "/readyz" in " ".join(nginx["healthcheck"]["test"])
    nginx_conf = (DEPLOY / "nginx.conf").read_text()
    assert sorted(re.findall(r"server (feeds-\d+):8000 ", nginx_conf)) == nodes
    env = services[nodes[0]]["environment"]
    # The processes connect as the role postgres-init.sh makes, never as the image's superuser.
    assert "./postgres-init.sh:/docker-entrypoint-initdb.d/10-feeds-role.sh:ro" in services["postgres"]["volumes"]
    assert env["FEEDS_DATABASE_URL"].startswith("postgresql+asyncpg://feeds:")
    assert services["postgres"]["environment"]["POSTGRES_USER"] != "feeds"
    assert "NOSUPERUSER" in (DEPLOY / "postgres-init.sh").read_text() and "NOBYPASSRLS" in (DEPLOY / "postgres-init.sh").read_text()
    nginx_ip = nginx["networks"]["feeds"]["ipv4_address"]
    assert env["FEEDS_TRUSTED_PROXIES"] == f"{nginx_ip}/32"
    script = SCRIPT.read_text()
    default_port = re.search(r"HTTP_PORT=\$\{FEEDS_CLUSTER_HTTP_PORT:-(\d+)\}", script).group(1)  # type: ignore[union-attr]
    assert nginx["ports"] == [f"${{FEEDS_CLUSTER_HTTP_PORT:-{default_port}}}:80"]
    assert env["FEEDS_PUBLIC_URL"].endswith(f":-http://localhost:{default_port}}}")

    # The same FEEDS_* settings as the script gives its nodes, each a documented one; one secret
    # key for all nodes, never a default.
    printed = _script_env(tmp_path / "run", FEEDS_SECRET_KEY="k")
    out = subprocess.run([str(SCRIPT), "env"], env=printed, capture_output=True, text=True, timeout=30, check=True).stdout
    local_vars = set(re.findall(r"^export (FEEDS_\w+)=", out, re.M))
    assert {"FEEDS_SECRET_KEY", "FEEDS_TRUSTED_PROXIES", "FEEDS_REDIS_URL", "FEEDS_DATABASE_URL"} <= local_vars
    assert set(env) - local_vars == PASSED_THROUGH & set(env)
    assert local_vars <= set(env)
    documented = (REPO / "docs" / "configuration.md").read_text()
    assert [v for v in env if f"`{v}`" not in documented] == []
    assert ":?" in env["FEEDS_SECRET_KEY"]
