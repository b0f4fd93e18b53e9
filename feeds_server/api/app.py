"""The ASGI application: every API module's routes, the OpenAPI document, health checks, the web client."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from importlib import import_module

from sqlalchemy import text
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket

from feeds_server.api import security_headers
from feeds_server.api.pipeline import build_route
from feeds_server.api.responses import error_response, json_response
from feeds_server.api.openapi import build_openapi
from feeds_server.api.routing import Endpoint
from feeds_server.api.scrape import metrics_endpoint
from feeds_server.api.throttle import Rates
from feeds_server.api.web import routes as web_routes
from feeds_server.config import Settings
from feeds_server.realtime.broker import create_broker
from feeds_server.realtime.endpoint import PATH as WS_PATH
from feeds_server.realtime.endpoint import websocket_endpoint
from feeds_server.realtime.hub import Hub
from feeds_server.errors import FeedsError, InternalError
from feeds_server.runtime.metrics import NodeState
from feeds_server.ratelimit.limiter import create_limiter
from feeds_server.runtime.services import Services

log = logging.getLogger("feeds_server.api")

# API modules, each with a `routes` table. New resources are added here.
API_MODULES = ["accounts", "credentials", "sessions", "orgs", "invitations", "directory", "integrations", "feed", "posts", "groups", "realtime", "notifications", "mutes", "records", "rules", "security", "audit", "privacy", "edits", "saved", "pins", "reactions", "previews", "search", "push"]


# The busiest endpoints are matched first: Starlette tries routes in order, and a post would otherwise
# be tried against some forty patterns before its own. No other route matches their paths, so the
# order changes nothing else (tests/api/test_app.py checks it).
HOT_ROUTES = [("POST", "/api/v1/orgs/{slug}/posts"), ("GET", "/api/v1/orgs/{slug}/feed")]


def all_endpoints() -> list[Endpoint]:
    endpoints: list[Endpoint] = []
    for name in API_MODULES:
        endpoints.extend(import_module(f"feeds_server.api.{name}").routes.endpoints)
    return endpoints


def routes_markdown() -> str:
    """The route table as Markdown: method, path, who may call it, what it does."""
    lines = ["| Method | Path | Who | What |", "|---|---|---|---|"]
    for ep in all_endpoints():
        who = ep.access if ep.permission is None else f"{ep.access}: `{ep.permission}`"
        lines.append(f"| {ep.method} | `{ep.path.replace(':int', '')}` | {who} | {ep.summary} |")
    return "\n".join(lines)


def create_app(settings: Settings | None = None, services: Services | None = None) -> Starlette:
    services = services or Services.build(settings or Settings.from_env())
    endpoints = all_endpoints()
    openapi = build_openapi(endpoints)

    async def openapi_json(_: Request) -> Response:
        return json_response(openapi)

    async def healthz(_: Request) -> Response:
        return json_response({"status": "ok"})

    async def readyz(request: Request) -> Response:
        if request.app.state.draining:  # shutting down (feeds_server/runtime/shutdown.py): balancers look elsewhere
            return json_response({"status": "shutting_down"}, 503)
        try:
            async with services.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        except Exception as exc:  # the database is down: not ready, with the reason
            return json_response({"status": "unavailable", "database": str(exc)[:200]}, 503)
        return json_response({"status": "ok", "database": "ok"})

    hot = sorted((ep for ep in endpoints if (ep.method, ep.path) in HOT_ROUTES), key=lambda ep: HOT_ROUTES.index((ep.method, ep.path)))
    routes: list[BaseRoute] = [build_route(ep) for ep in hot + [ep for ep in endpoints if ep not in hot]]
    routes += [
        Route("/openapi.json", openapi_json, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics_endpoint, methods=["GET"]),
        WebSocketRoute(WS_PATH, websocket_endpoint),
        *web_routes(),
    ]
    hub = Hub(services, create_broker(services.settings))
    services.event_sinks.append(hub.publish)
    services.control_sinks.append(hub.control)
    limiter = create_limiter(services.settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await hub.start()
        try:
            yield
        finally:
            await hub.stop()
            await limiter.close()
            await services.close()

    app = _App(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={HTTPException: _http_error, Exception: _internal_error},
    )
    app.state.services = services
    app.state.hub = hub
    app.state.limiter = limiter
    app.state.rates = Rates(services.settings)
    app.state.metrics = NodeState(services.settings.node_name or f"{services.settings.host}:{services.settings.port}", lambda: hub.connection_count)
    app.state.draining = False
    app.state.endpoints = endpoints
    app.state.security_headers = security_headers.header_list(services.settings)
    return app


class _App(Starlette):
    """Starlette, with the WebSocket endpoint called directly: a reconnecting crowd skips the
    middleware and the route table (it needs neither), which is a good share of a connect's cost."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket" and scope["path"] == WS_PATH:
            scope["app"] = self
            await websocket_endpoint(WebSocket(scope, receive, send))
            return
        if scope["type"] == "http":
            send = security_headers.adding(send, self.state.security_headers)
        await super().__call__(scope, receive, send)


async def _http_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    codes = {404: ("not_found", "no such endpoint"), 405: ("method_not_allowed", "method not allowed here")}
    code, message = codes.get(exc.status_code, ("http_error", str(exc.detail)))
    err = FeedsError(code, message)
    err.status = exc.status_code
    return error_response(err)


async def _internal_error(request: Request, exc: Exception) -> Response:
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(InternalError())
