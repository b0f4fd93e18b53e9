"""Prometheus metrics of one node (docs/operations.md, "Metrics").

Counters and histograms live in one registry per process; code on hot paths holds children bound
to their labels once (at import or when a route is built), so counting costs no label lookup.
Connections and the outboxes are read when Prometheus scrapes, not kept up to date on every change.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.process_collector import ProcessCollector

disable_created_metrics()
REGISTRY = CollectorRegistry()
ProcessCollector(registry=REGISTRY)

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

DELIVERIES = Counter(
    "feeds_deliveries", "Publications queued to a client connection (one per connection and channel).", registry=REGISTRY
)
DELIVERY_LATENCY = Histogram(
    "feeds_delivery_latency_seconds",
    "From an event's publication after commit (or its creation, when filled from the database) to its frames queued to this node's connections.",
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)
_RECOVERIES = Counter(
    "feeds_recoveries", "Channels a reconnecting client asked to recover, by result (recovered, failed).", ["result"], registry=REGISTRY
)
RECOVERED = _RECOVERIES.labels("recovered")
RECOVERY_FAILED = _RECOVERIES.labels("failed")
HTTP_LATENCY = Histogram(
    "feeds_http_request_duration_seconds",
    "API requests by method and route template, from routing to the response.",
    ["method", "route"],
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)
HTTP_ERRORS = Counter("feeds_http_errors", "API error responses by HTTP status and error code.", ["status", "code"], registry=REGISTRY)
HTTP_REFUSED = Counter(
    "feeds_http_refused", "Connections closed by the node's HTTP bounds (api/http_wire.py), by reason.", ["reason"], registry=REGISTRY
)
RATE_LIMITED = Counter(
    "feeds_rate_limited", "Requests and connections refused by a rate limit or the connection cap, by limit.", ["limit"], registry=REGISTRY
)
WS_DISCONNECTS = Counter(
    "feeds_ws_disconnects", "WebSocket connections closed by the server, by protocol disconnect code.", ["code"], registry=REGISTRY
)


@dataclass(eq=False)
class NodeState:
    """What a scrape reports beside the counters: read from the hub and the database at scrape time."""

    node: str
    connection_count: Any  # () -> int
    outbox: dict[str, tuple[int, float]] = field(default_factory=dict)  # outbox -> (depth, oldest due, seconds)
    dead_letters: dict[tuple[str, str], int] = field(default_factory=dict)  # (outbox, reason) -> failed items

    def collect(self) -> Iterator[Metric]:
        connections = GaugeMetricFamily("feeds_connections", "Open client WebSocket connections on this node.", labels=["node"])
        connections.add_metric([self.node], self.connection_count())
        yield connections
        if not self.outbox:
            return
        depth = GaugeMetricFamily(
            "feeds_outbox_depth", "Emails, webhook calls and file previews waiting (pending, or being sent or made), by outbox.", labels=["outbox"]
        )
        age = GaugeMetricFamily(
            "feeds_outbox_oldest_due_seconds", "How long the oldest due item of an outbox has waited (0 when none is due).", labels=["outbox"]
        )
        for name, (count, oldest) in sorted(self.outbox.items()):
            depth.add_metric([name], count)
            age.add_metric([name], oldest)
        yield depth
        yield age
        dead = GaugeMetricFamily(
            "feeds_outbox_dead_letters",
            "Emails, webhook calls and file previews set aside as failed, not tried again unless an operator retries them "
            "(feeds-server notifier --failed), by outbox and reason (error, refused, gave_up, revoked, other).",
            labels=["outbox", "reason"],
        )
        for (name, reason), count in sorted(self.dead_letters.items()):
            dead.add_metric([name, reason], count)
        yield dead


def render(node: NodeState) -> bytes:
    """The exposition text: the process's counters and histograms, then the node's gauges."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(node)  # type: ignore[arg-type]
    return generate_latest(REGISTRY) + generate_latest(registry)


CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
