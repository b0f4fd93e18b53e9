"""The browser client: its page, its static files, the Centrifuge SDK from npm, and the limits it checks.

The client is plain HTML, CSS and ES modules in `feeds_server/web/app/` (no build step). The
real-time SDK is the `centrifuge` npm package installed under `feeds_server/web/node_modules` by
`npm ci` (run.sh and test.sh do it); without it the page still works and says real time is off.
Every file is sent with `Cache-Control: no-cache` and an ETag, so browsers revalidate cheaply and
never run a stale module after an upgrade.
"""

from __future__ import annotations

import hashlib
from stat import S_ISREG
from dataclasses import dataclass
from pathlib import Path

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from feeds_server import limits

WEB_DIR = Path(__file__).resolve().parent.parent / "web"
APP_DIR = WEB_DIR / "app"
# At the root so its scope is the whole origin (a worker's scope cannot be above its own path).
SERVICE_WORKER = WEB_DIR / "sw.js"
CENTRIFUGE_ESM = WEB_DIR / "node_modules" / "centrifuge" / "build" / "index.mjs"

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".json": "application/json",
}

# The page loads only its own files and talks only to its own origin (WebSocket included); its one
# worker is the service worker that shows Web Push notifications.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; worker-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}

# The numbers the composer checks before uploading, generated from `limits` so they never drift.
LIMITS_MODULE = "\n".join(
    f"export const {name} = {getattr(limits, name)};"
    for name in (
        "MAX_POST_CHARS", "MAX_FILES_PER_POST", "MAX_FILE_BYTES", "MAX_FILES_TOTAL_BYTES", "MIN_DORMANT_DAYS",
        "MAX_DORMANT_DAYS", "MAX_RULES_PER_MODULE_PER_CREATOR", "DEFAULT_PAGE_SIZE", "MAX_PAGE_SIZE",
    )
).encode() + b"\n"


@dataclass(frozen=True)
class _Cached:
    mtime_ns: int
    body: bytes
    etag: str


_cache: dict[Path, _Cached] = {}


def _load(path: Path) -> _Cached | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    if not S_ISREG(stat.st_mode):
        return None
    mtime_ns = stat.st_mtime_ns
    hit = _cache.get(path)
    if hit is None or hit.mtime_ns != mtime_ns:
        body = path.read_bytes()
        hit = _Cached(mtime_ns, body, _etag(body))
        _cache[path] = hit
    return hit


def _etag(body: bytes) -> str:
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def _send(request: Request, body: bytes, etag: str, content_type: str, extra: dict[str, str] | None = None) -> Response:
    headers = {"ETag": etag, "Cache-Control": "no-cache", **SECURITY_HEADERS, **(extra or {})}
    if etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    return Response(body, media_type=content_type, headers=headers)


def _not_found() -> Response:
    return Response(b"not found\n", status_code=404, media_type="text/plain; charset=utf-8", headers=SECURITY_HEADERS)


async def index(request: Request) -> Response:
    page = _load(WEB_DIR / "index.html")
    if page is None:
        return _not_found()
    return _send(request, page.body, page.etag, CONTENT_TYPES[".html"], {"Content-Security-Policy": CONTENT_SECURITY_POLICY})


async def app_file(request: Request) -> Response:
    """A file of `web/app/`: known types only, nothing outside the folder, no hidden files."""
    relative = request.path_params["path"]
    path = (APP_DIR / relative).resolve()
    if not path.is_relative_to(APP_DIR) or any(part.startswith(".") for part in Path(relative).parts):
        return _not_found()
    content_type = CONTENT_TYPES.get(path.suffix)
    found = _load(path) if content_type else None
    if found is None or content_type is None:
        return _not_found()
    return _send(request, found.body, found.etag, content_type)


async def service_worker(request: Request) -> Response:
    """The service worker, under the page's policy: it loads nothing and talks to no one else."""
    worker = _load(SERVICE_WORKER)
    if worker is None:
        return _not_found()
    return _send(request, worker.body, worker.etag, CONTENT_TYPES[".js"], {"Content-Security-Policy": CONTENT_SECURITY_POLICY})


async def limits_module(request: Request) -> Response:
    return _send(request, LIMITS_MODULE, _etag(LIMITS_MODULE), CONTENT_TYPES[".js"])


async def centrifuge_sdk(request: Request) -> Response:
    """The SDK's self-contained ES module build; 404 when `npm ci` has not been run."""
    sdk = _load(CENTRIFUGE_ESM)
    if sdk is None:
        return _not_found()
    return _send(request, sdk.body, sdk.etag, CONTENT_TYPES[".js"])


def routes() -> list[BaseRoute]:
    return [
        Route("/", index, methods=["GET", "HEAD"]),
        Route("/sw.js", service_worker, methods=["GET", "HEAD"]),
        Route("/app/limits.js", limits_module, methods=["GET", "HEAD"]),
        Route("/app/{path:path}", app_file, methods=["GET", "HEAD"]),
        Route("/vendor/centrifuge.js", centrifuge_sdk, methods=["GET", "HEAD"]),
    ]
