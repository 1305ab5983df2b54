"""One structured log line and Prometheus figures per API request.

Request lines are JSON objects written to the request-log stream (stderr by default). They
are collected during one event-loop tick and written together: one write per tick instead of
a `logging` record per request, which cost a fifth of the whole request.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import sys
import time
from collections.abc import Iterator
from typing import Any, TextIO

import msgspec
from prometheus_client import REGISTRY
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric

_encoder = msgspec.json.Encoder()


class RequestLog:
    def __init__(self, stream: TextIO | None = None, enabled: bool = True) -> None:
        self.stream = stream
        self.enabled = enabled
        self._pending: list[bytes] = []

    def emit(self, fields: dict[str, Any]) -> None:
        if not self.enabled:
            return
        self._pending.append(_encoder.encode(fields))
        if len(self._pending) == 1:
            try:
                asyncio.get_running_loop().call_soon(self.flush)
            except RuntimeError:
                self.flush()

    def flush(self) -> None:
        lines, self._pending = self._pending, []
        if not lines:
            return
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
        prefix = b'{"time":"' + stamp.encode() + b'Z",'
        text = b"".join(prefix + line[1:] + b"\n" for line in lines).decode()
        stream = self.stream or sys.stderr
        stream.write(text)
        stream.flush()


REQUEST_LOG = RequestLog()

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class ApiFigures:
    """Requests by (action, code) and latency by action, counted without locks.

    Counting happens on the event loop, so plain dict and list updates suffice; Prometheus
    reads them through `collect` at scrape time. (prometheus_client's own metrics take a lock
    and look up label children on every call, a cost paid per request.)
    """

    def __init__(self) -> None:
        self.requests: dict[tuple[str, str], int] = {}
        self.latency: dict[str, list[float]] = {}  # per action: bucket counts..., +Inf, sum

    def count(self, action: str, code: str, duration: float) -> None:
        key = (action, code)
        self.requests[key] = self.requests.get(key, 0) + 1
        cells = self.latency.get(action)
        if cells is None:
            cells = self.latency[action] = [0.0] * (len(LATENCY_BUCKETS) + 2)
        cells[bisect.bisect_left(LATENCY_BUCKETS, duration)] += 1
        cells[-1] += duration

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "vulfix_api_requests",
            "API requests answered, by action and response code",
            labels=["action", "code"],
        )
        for (action, code), value in list(self.requests.items()):
            requests.add_metric([action, code], value)
        yield requests
        latency = HistogramMetricFamily(
            "vulfix_api_request_duration_seconds",
            "Time to answer an API request, by action",
            labels=["action"],
        )
        for action, cells in list(self.latency.items()):
            cumulative, buckets = 0.0, []
            for bound, count in zip((*map(str, LATENCY_BUCKETS), "+Inf"), cells[:-1], strict=True):
                cumulative += count
                buckets.append((bound, cumulative))
            latency.add_metric([action], buckets, cells[-1])
        yield latency


API_FIGURES = ApiFigures()
REGISTRY.register(API_FIGURES)


def make_logging_cheap() -> None:
    """The logging module's documented optimisations: a request line needs no caller frame,
    thread, process or task names, and computing them costs more than writing the line."""
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False


def record_request(
    *, request_id: str, action: str, account: str, code: str, duration: float, client: str
) -> None:
    API_FIGURES.count(action, code, duration)
    REQUEST_LOG.emit(
        {
            "request_id": request_id,
            "action": action,
            "account": account,
            "code": code,
            "duration_ms": round(duration * 1000, 3),
            "client": client,
        }
    )
