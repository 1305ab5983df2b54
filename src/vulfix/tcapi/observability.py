"""One structured log line and Prometheus figures per API request."""

from __future__ import annotations

import logging

import msgspec
from prometheus_client import Counter, Histogram

REQUEST_LOG = logging.getLogger("vulfix.api")
_encoder = msgspec.json.Encoder()

API_REQUESTS = Counter(
    "vulfix_api_requests_total",
    "API requests answered, by action and response code",
    ["action", "code"],
)
API_LATENCY = Histogram(
    "vulfix_api_request_duration_seconds",
    "Time to answer an API request, by action",
    ["action"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)


def record_request(
    *, request_id: str, action: str, account: str, code: str, duration: float, client: str
) -> None:
    API_REQUESTS.labels(action, code).inc()
    API_LATENCY.labels(action).observe(duration)
    if REQUEST_LOG.isEnabledFor(logging.INFO):
        line = {
            "request_id": request_id,
            "action": action,
            "account": account,
            "code": code,
            "duration_ms": round(duration * 1000, 3),
            "client": client,
        }
        REQUEST_LOG.info(_encoder.encode(line).decode())
