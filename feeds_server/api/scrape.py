"""`GET /metrics`: Prometheus scrapes a node here (docs/operations.md, "Metrics").

Only addresses in `FEEDS_METRICS_ALLOW` may scrape (loopback by default; empty means anyone), the
address being the peer's or, from a trusted proxy, the client's behind it; `FEEDS_METRICS=false`
removes the endpoint. The outbox figures are three indexed queries per outbox (email, webhook,
preview), run per scrape.
"""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy import func, select
from starlette.requests import Request
from starlette.responses import Response

from feeds_server.runtime import metrics
from feeds_server.api.responses import error_response
from feeds_server.domain import network
from feeds_server.errors import Forbidden, NotFound
from feeds_server.notify import dead_letters
from feeds_server.runtime.services import Services
from feeds_server.store.models import EmailJob, PreviewJob, WebhookDelivery
from feeds_server.store.scope import account_session

log = logging.getLogger("feeds_server.metrics")

OUTBOX_QUERY_TIMEOUT = 2.0
OUTBOXES = {"email": EmailJob, "webhook": WebhookDelivery, "preview": PreviewJob}
# Not done yet: due or waiting for a retry, or being worked on ("working" is the preview outbox's word).
WAITING = ("pending", "sending", "working")


async def metrics_endpoint(request: Request) -> Response:
    services: Services = request.app.state.services
    settings = services.settings
    if not settings.metrics_enabled:
        return error_response(NotFound("not_found", "no such endpoint"))
    peer = request.client.host if request.client else None
    address = network.client_address(peer, request.headers.get("x-forwarded-for"), settings.trusted_proxies)
    if not network.allowed(address, settings.metrics_allow):
        return error_response(Forbidden("metrics_not_allowed", "this address may not read the metrics (FEEDS_METRICS_ALLOW)"))
    node: metrics.NodeState = request.app.state.metrics
    try:
        node.outbox, node.dead_letters = await asyncio.wait_for(outbox_figures(services), OUTBOX_QUERY_TIMEOUT)
    except Exception as exc:  # the database is slow or down: report the rest without the outboxes
        log.warning("outbox figures not read for /metrics: %r", exc)
        node.outbox, node.dead_letters = {}, {}
    return Response(metrics.render(node), media_type=metrics.CONTENT_TYPE)


async def outbox_figures(services: Services) -> tuple[dict[str, tuple[int, float]], dict[tuple[str, str], int]]:
    """Per outbox: items pending or being sent, and seconds since the oldest pending one fell due;
    and the dead letters by outbox and reason."""
    now = services.clock()
    out: dict[str, tuple[int, float]] = {}
    async with account_session(services.sessions) as session:
        for name, model in OUTBOXES.items():
            depth = (await session.execute(select(func.count()).where(model.status.in_(WAITING)))).scalar_one()
            oldest = (
                await session.execute(select(func.min(model.next_attempt_at)).where(model.status == "pending", model.next_attempt_at <= now))
            ).scalar_one()
            out[name] = (int(depth), max(0.0, (now - oldest).total_seconds()) if oldest is not None else 0.0)
        dead = await dead_letters.counts(session)
    return out, dead
