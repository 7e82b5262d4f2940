"""Request and model metrics in Prometheus text format, one registry per server.

A registry per app (not prometheus_client's global one) keeps two servers in one
process, as in the tests, from double-registering or mixing their counts.
Route labels are route templates, never raw paths, so label sets stay bounded.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("faceqa_http_requests", "HTTP requests answered.", ["method", "route", "status"],
                                registry=self.registry)
        self.latency = Histogram("faceqa_http_request_duration_seconds", "Time to answer an HTTP request.",
                                 ["method", "route"], buckets=_LATENCY_BUCKETS, registry=self.registry)
        self.errors = Counter("faceqa_http_errors", "Requests answered with an error, by error code.",
                              ["route", "code"], registry=self.registry)
        self.model_seconds = Histogram("faceqa_model_seconds",
                                       "Photo decoding and model work per request, waits for a worker included.",
                                       ["model"], buckets=_LATENCY_BUCKETS, registry=self.registry)
        self.pending = Gauge("faceqa_model_pending", "Requests waiting for or using a model worker.",
                             registry=self.registry)
        self.cache_entries = Gauge("faceqa_analysis_cache_entries", "Image analyses held in memory.",
                                   registry=self.registry)
        self.cache = Counter("faceqa_analysis_cache", "Image analyses served from memory or computed.", ["result"],
                             registry=self.registry)

    def render(self) -> bytes:
        return generate_latest(self.registry)
