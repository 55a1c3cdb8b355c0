"""Prometheus metrics shared by every service (docs/architecture.md, decision 11)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

events_consumed = Counter(
    "parindex_events_consumed_total", "Events applied or handled", ["handler"]
)
events_failed = Counter(
    "parindex_events_failed_total", "Events dead-lettered or failed", ["handler"]
)
applied_seq = Gauge("parindex_applied_sequence", "Last stream sequence applied", ["handler"])
stream_last_seq = Gauge("parindex_stream_last_sequence", "Last sequence in the event stream")
consumer_lag = Gauge(
    "parindex_consumer_lag", "Stream last sequence minus the sequence applied", ["handler"]
)
projection_log_mismatch = Gauge(
    "parindex_projection_log_mismatch",
    "1 while a projection rebuilds because the log no longer holds its offset's event",
    ["projection"],
)
http_latency = Histogram(
    "parindex_http_request_seconds", "HTTP latency", ["service", "method", "route", "status"]
)
