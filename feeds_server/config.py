"""Settings, read once from the environment.

Every knob is an environment variable listed in `docs/configuration.md`. The defaults run on one
laptop with nothing installed: a SQLite file, an in-process broker and a local mail folder.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from dataclasses import dataclass, field, fields
from pathlib import Path

from feeds_server import limits


def _env(name: str, default: str) -> str:
    return os.environ.get(name, default).strip()


def _env_int(name: str, default: int) -> int:
    raw = _env(name, str(default))
    try:
        return int(raw)
    except ValueError as exc:
        raise SystemExit(f"{name} must be a whole number, got {raw!r}") from exc


def _env_seconds(name: str, default: float) -> float:
    """A positive duration in seconds (fractions allowed)."""
    raw = _env(name, str(default))
    try:
        value = float(raw)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise SystemExit(f"{name} must be a number of seconds above 0, got {raw!r}")
    return value


def _env_bool(name: str, default: bool) -> bool:
    raw = _env(name, "1" if default else "0").lower()
    if raw in {"1", "true", "yes", "on"}:
        return True
    if raw in {"0", "false", "no", "off", ""}:
        return False
    raise SystemExit(f"{name} must be true or false, got {raw!r}")


def _env_list(name: str, default: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in _env(name, default).split(",") if item.strip())


def _env_networks(name: str) -> tuple[str, ...]:
    """Comma-separated IP ranges (`10.0.0.0/8`, `::1/128`, a single address), normalized; anything else stops the start."""
    try:
        return tuple(str(ipaddress.ip_network(item, strict=False)) for item in _env_list(name, ""))
    except ValueError as exc:
        raise SystemExit(f"{name} must be comma-separated IP ranges: {exc}") from exc


def _env_rate(name: str, default: tuple[int, int]) -> tuple[int, int]:
    """`REQUESTS/SECONDS`, e.g. `60/60`: a burst of REQUESTS, all of it back after SECONDS."""
    raw = _env(name, f"{default[0]}/{default[1]}")
    count, _, seconds = raw.partition("/")
    try:
        rate = (int(count), int(seconds))
    except ValueError:
        rate = (0, 0)
    if rate[0] < 1 or rate[1] < 1:
        raise SystemExit(f"{name} must be REQUESTS/SECONDS with both above 0, got {raw!r}")
    return rate


@dataclass(frozen=True)
class Settings:
    """All configuration of one process. Build with `Settings.from_env()`."""

    data_dir: Path = Path("var")
    database_url: str = ""
    redis_url: str = ""
    redis_prefix: str = "feeds"
    host: str = "127.0.0.1"
    port: int = 8000
    public_url: str = "http://localhost:8000"
    allowed_origins: tuple[str, ...] = ()
    trusted_proxies: tuple[str, ...] = ()
    token_ttl_seconds: int = 7 * 24 * 3600
    argon2_time_cost: int = 3
    argon2_memory_kib: int = 65_536
    files_dir: Path = Path("var/files")
    mail_dir: Path = Path("var/mail")
    mail_from: str = "Feeds <feeds@localhost>"
    smtp_host: str = ""
    smtp_port: int = 587
    smtp_user: str = ""
    smtp_password: str = field(default="", repr=False)
    smtp_tls: str = "starttls"
    db_pool_size: int = 20
    log_level: str = "info"
    secret_key: str = field(default="", repr=False)
    ws_ping_interval: float = 25.0
    ws_pong_timeout: float = 10.0
    ws_compression: bool = False
    connection_token_ttl_seconds: int = 300
    history_days: int = 7
    history_publications: int = 10_000
    notifier_lease_seconds: float = 60.0
    node_name: str = ""
    metrics_enabled: bool = True
    metrics_allow: tuple[str, ...] = ("127.0.0.0/8", "::1/128")
    webhook_allow_networks: tuple[str, ...] = ()
    # Push endpoints are chosen by any member, not the operator: their own, normally empty, allowlist.
    push_allow_networks: tuple[str, ...] = ()
    vapid_private_key: str = field(default="", repr=False)  # empty: derived from secret_key (notify/push.py)
    vapid_subject: str = ""
    shutdown_timeout: float = 10.0
    header_timeout: float = float(limits.HEADER_TIMEOUT_SECONDS)
    body_timeout: float = float(limits.BODY_TIMEOUT_SECONDS)
    upload_timeout: float = float(limits.UPLOAD_TIMEOUT_SECONDS)
    rate_limits: bool = True
    rate_posts_per_user: tuple[int, int] = limits.RATE_POSTS_PER_USER
    rate_posts_per_ip: tuple[int, int] = limits.RATE_POSTS_PER_IP
    rate_uploads_per_user: tuple[int, int] = limits.RATE_UPLOADS_PER_USER
    rate_uploads_per_ip: tuple[int, int] = limits.RATE_UPLOADS_PER_IP
    rate_signins_per_ip: tuple[int, int] = limits.RATE_SIGNINS_PER_IP
    rate_signins_per_account_address: tuple[int, int] = limits.RATE_SIGNINS_PER_ACCOUNT_ADDRESS
    rate_signins_per_account: tuple[int, int] = limits.RATE_SIGNINS_PER_ACCOUNT
    rate_signups_per_ip: tuple[int, int] = limits.RATE_SIGNUPS_PER_IP
    rate_account_emails: tuple[int, int] = limits.RATE_ACCOUNT_EMAILS
    rate_reactions_per_user: tuple[int, int] = limits.RATE_REACTIONS_PER_USER
    ws_connections_per_user: int = limits.MAX_WS_CONNECTIONS_PER_USER

    @classmethod
    def from_env(cls) -> "Settings":
        if _env("FEEDS_RATE_SIGNINS_PER_EMAIL", ""):
            # Counting every address's tries against one account let a stranger lock its owner out.
            raise SystemExit(
                "FEEDS_RATE_SIGNINS_PER_EMAIL is no longer read: set FEEDS_RATE_SIGNINS_PER_ACCOUNT_ADDRESS "
                "(tries per account from one address) and FEEDS_RATE_SIGNINS_PER_ACCOUNT (the ceiling from all addresses)"
            )
        data_dir = Path(_env("FEEDS_DATA_DIR", "var"))
        database_url = _env("FEEDS_DATABASE_URL", "") or f"sqlite+aiosqlite:///{data_dir / 'feeds.db'}"
        port = _env_int("FEEDS_PORT", 8000)
        public_url = _env("FEEDS_PUBLIC_URL", f"http://localhost:{port}").rstrip("/")
        return cls(
            data_dir=data_dir,
            database_url=database_url,
            redis_url=_env("FEEDS_REDIS_URL", ""),
            redis_prefix=_env("FEEDS_REDIS_PREFIX", "feeds"),
            host=_env("FEEDS_HOST", "127.0.0.1"),
            port=port,
            public_url=public_url,
            allowed_origins=_env_list(
                "FEEDS_ALLOWED_ORIGINS", f"{public_url},http://localhost:{port},http://127.0.0.1:{port}"
            ),
            trusted_proxies=_env_list("FEEDS_TRUSTED_PROXIES", ""),
            token_ttl_seconds=_env_int("FEEDS_TOKEN_TTL_SECONDS", 7 * 24 * 3600),
            argon2_time_cost=_env_int("FEEDS_ARGON2_TIME_COST", 3),
            argon2_memory_kib=_env_int("FEEDS_ARGON2_MEMORY_KIB", 65_536),
            files_dir=Path(_env("FEEDS_FILES_DIR", str(data_dir / "files"))),
            mail_dir=Path(_env("FEEDS_MAIL_DIR", str(data_dir / "mail"))),
            mail_from=_env("FEEDS_MAIL_FROM", "Feeds <feeds@localhost>"),
            smtp_host=_env("FEEDS_SMTP_HOST", ""),
            smtp_port=_env_int("FEEDS_SMTP_PORT", 587),
            smtp_user=_env("FEEDS_SMTP_USER", ""),
            smtp_password=_env("FEEDS_SMTP_PASSWORD", ""),
            smtp_tls=_env("FEEDS_SMTP_TLS", "starttls"),
            db_pool_size=_env_int("FEEDS_DB_POOL_SIZE", 20),
            log_level=_env("FEEDS_LOG_LEVEL", "info"),
            secret_key=_env("FEEDS_SECRET_KEY", "") or _local_secret(data_dir),
            ws_ping_interval=float(_env_int("FEEDS_WS_PING_INTERVAL", 25)),
            ws_pong_timeout=float(_env_int("FEEDS_WS_PONG_TIMEOUT", 10)),
            ws_compression=_env_bool("FEEDS_WS_COMPRESSION", False),
            connection_token_ttl_seconds=_env_int("FEEDS_CONNECTION_TOKEN_TTL_SECONDS", 300),
            history_days=_env_int("FEEDS_HISTORY_DAYS", 7),
            history_publications=_env_int("FEEDS_HISTORY_PUBLICATIONS", 10_000),
            notifier_lease_seconds=float(_env_int("FEEDS_NOTIFIER_LEASE_SECONDS", 60)),
            node_name=_env("FEEDS_NODE_NAME", "") or f"{socket.gethostname()}:{port}",
            metrics_enabled=_env_bool("FEEDS_METRICS", True),
            metrics_allow=_env_list("FEEDS_METRICS_ALLOW", "127.0.0.0/8,::1/128"),
            webhook_allow_networks=_env_networks("FEEDS_WEBHOOK_ALLOW_NETWORKS"),
            push_allow_networks=_env_networks("FEEDS_PUSH_ALLOW_NETWORKS"),
            vapid_private_key=_env("FEEDS_VAPID_PRIVATE_KEY", ""),
            vapid_subject=_env("FEEDS_VAPID_SUBJECT", ""),
            shutdown_timeout=float(_env_int("FEEDS_SHUTDOWN_TIMEOUT", 10)),
            header_timeout=_env_seconds("FEEDS_HEADER_TIMEOUT", limits.HEADER_TIMEOUT_SECONDS),
            body_timeout=_env_seconds("FEEDS_BODY_TIMEOUT", limits.BODY_TIMEOUT_SECONDS),
            upload_timeout=_env_seconds("FEEDS_UPLOAD_TIMEOUT", limits.UPLOAD_TIMEOUT_SECONDS),
            rate_limits=_env_bool("FEEDS_RATE_LIMITS", True),
            rate_posts_per_user=_env_rate("FEEDS_RATE_POSTS_PER_USER", limits.RATE_POSTS_PER_USER),
            rate_posts_per_ip=_env_rate("FEEDS_RATE_POSTS_PER_IP", limits.RATE_POSTS_PER_IP),
            rate_uploads_per_user=_env_rate("FEEDS_RATE_UPLOADS_PER_USER", limits.RATE_UPLOADS_PER_USER),
            rate_uploads_per_ip=_env_rate("FEEDS_RATE_UPLOADS_PER_IP", limits.RATE_UPLOADS_PER_IP),
            rate_signins_per_ip=_env_rate("FEEDS_RATE_SIGNINS_PER_IP", limits.RATE_SIGNINS_PER_IP),
            rate_signins_per_account_address=_env_rate(
                "FEEDS_RATE_SIGNINS_PER_ACCOUNT_ADDRESS", limits.RATE_SIGNINS_PER_ACCOUNT_ADDRESS
            ),
            rate_signins_per_account=_env_rate("FEEDS_RATE_SIGNINS_PER_ACCOUNT", limits.RATE_SIGNINS_PER_ACCOUNT),
            rate_signups_per_ip=_env_rate("FEEDS_RATE_SIGNUPS_PER_IP", limits.RATE_SIGNUPS_PER_IP),
            rate_account_emails=_env_rate("FEEDS_RATE_ACCOUNT_EMAILS", limits.RATE_ACCOUNT_EMAILS),
            rate_reactions_per_user=_env_rate("FEEDS_RATE_REACTIONS_PER_USER", limits.RATE_REACTIONS_PER_USER),
            ws_connections_per_user=_env_int("FEEDS_WS_CONNECTIONS_PER_USER", limits.MAX_WS_CONNECTIONS_PER_USER),
        )

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    def describe(self) -> dict[str, object]:
        """Settings safe to print: secrets and passwords in URLs are masked."""
        out: dict[str, object] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in {"smtp_password", "secret_key", "vapid_private_key"}:
                value = "***" if value else ""
            elif f.name in {"database_url", "redis_url"}:
                value = _mask_url_password(str(value))
            out[f.name] = str(value) if isinstance(value, Path) else value
        return out


def _mask_url_password(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    creds, _, host = rest.rpartition("@")
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}" if ":" in creds else url


def _local_secret(data_dir: Path) -> str:
    """A signing key kept in the data folder, made on first use. Several nodes must share
    `FEEDS_SECRET_KEY` instead (deploy/ sets it)."""
    path = data_dir / "secret.key"
    if path.exists():
        return path.read_text().strip()
    import secrets

    data_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_hex(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it first
        return path.read_text().strip()
    with os.fdopen(fd, "w") as fh:
        fh.write(key)
    return key
