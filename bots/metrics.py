"""Prometheus metrics of one running Careline process (served at /metrics).

Each app gets its own registry, so tests can build many apps in one process and read the
numbers of the one they drive.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

# Webhook answers are expected in milliseconds; the tail buckets catch slow databases.
LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

CONTENT_TYPE = CONTENT_TYPE_LATEST


class Metrics:
    """The counters and histograms the adapters and the relay update."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.turns = Counter(
            "careline_turns",
            "Dialog turns handled, by channel and outcome (ok, failed).",
            ["channel", "outcome"],
            registry=self.registry,
        )
        self.turn_seconds = Histogram(
            "careline_turn_seconds",
            "Time the dialog engine took for one turn.",
            ["channel"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.webhooks = Counter(
            "careline_webhook_requests",
            "Inbound webhook calls by source and result "
            "(ok, duplicate, resent, rejected, retry, parked, ignored).",
            ["source", "result"],
            registry=self.registry,
        )
        self.webhook_seconds = Histogram(
            "careline_webhook_seconds",
            "Time from a webhook call's arrival to its answer.",
            ["source"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.platform_errors = Counter(
            "careline_platform_errors",
            "Errors answered by a platform API, by kind "
            "(blocked, rate_limited, bad_request, network, server).",
            ["platform", "kind"],
            registry=self.registry,
        )
        self.rate_limited = Counter(
            "careline_platform_rate_limited",
            "429 Too Many Requests answers received (each one honoured with a wait).",
            ["platform"],
            registry=self.registry,
        )
        self.sent = Counter(
            "careline_messages_sent",
            "Messages delivered to a platform, by how (api, webhook_answer).",
            ["platform", "via"],
            registry=self.registry,
        )

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
