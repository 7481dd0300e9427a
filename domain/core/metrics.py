"""What one instance counts for Prometheus (GET /metrics): one registry per application.

Labels only ever hold values from small fixed sets (route templates, methods, status codes, job
kinds and statuses, service names), never ids or anything a user typed: the number of series
stays bounded however the server is called.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
CountCall = Callable[[str, str], None]  # (service, operation): one call to a service (Metrics.backend_call)
UNMATCHED_ROUTE = "unmatched"  # a path no route serves (404, or a method a route does not take)
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
JOB_BUCKETS = (0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        self._http_children: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        self.http_requests = Counter(
            "labhub_http_requests", "HTTP requests answered, by method, route template and status",
            ["method", "route", "status"], registry=r,
        )  # fmt: skip
        self.http_duration = Histogram(
            "labhub_http_request_duration_seconds", "Time to answer an HTTP request (to the end of its body)",
            ["method", "route"], buckets=HTTP_BUCKETS, registry=r,
        )  # fmt: skip
        self.jobs_finished = Counter(
            "labhub_jobs_finished", "Jobs this instance ran to a final status", ["kind", "status"], registry=r
        )
        self.job_duration = Histogram(
            "labhub_job_duration_seconds", "Time from claim to final status of the attempts this instance ran",
            ["kind", "status"], buckets=JOB_BUCKETS, registry=r,
        )  # fmt: skip
        self.job_retries = Counter(
            "labhub_job_retries", "Jobs put back in the queue for another attempt (worker lost, lease expired)",
            ["kind", "reason"], registry=r,
        )  # fmt: skip
        self.worker_crashes = Counter(
            "labhub_worker_crashes", "Pool workers lost in the middle of a job (crashed, or killed at a "
            "timeout or cancellation)", ["reason"], registry=r,
        )  # fmt: skip
        self.pool_rebuilds = Counter("labhub_pool_rebuilds", "Times the worker pool was rebuilt", registry=r)
        self.sse_delivered = Counter(
            "labhub_sse_events_delivered", "Events written to open event streams", registry=r
        )
        self.sse_dropped = Counter(
            "labhub_sse_streams_dropped",
            "Event streams closed because the client fell too far behind",
            registry=r,
        )
        self.ingested_bytes = Counter(
            "labhub_ingested_bytes", "Bytes of files ingested into datasets", registry=r
        )
        self.ingested_rows = Counter(
            "labhub_ingested_rows", "Rows written to datasets by ingestion", registry=r
        )
        # read when scraped
        self.jobs = Gauge(
            "labhub_jobs", "Jobs in the database by status (every instance's)", ["status"], registry=r
        )
        self.queue_depth = Gauge(
            "labhub_job_queue_depth", "Jobs waiting to be claimed (every instance's)", registry=r
        )
        self.jobs_running = Gauge("labhub_jobs_running", "Jobs running on this instance", registry=r)
        self.pool_workers = Gauge(
            "labhub_pool_workers", "Worker processes in this instance's pool", registry=r
        )
        self.sse_open = Gauge("labhub_sse_streams_open", "Event streams open on this instance", registry=r)
        self.service_up = Gauge(
            "labhub_service_up", "1 when the service answers this instance (MongoDB, Redis, S3, the worker pool)",
            ["service"], registry=r,
        )  # fmt: skip
        self.service_restarts = Gauge(
            "labhub_embedded_service_restarts", "Times an embedded service died and was started again (since start)",
            ["service"], registry=r,
        )  # fmt: skip
        self.backend_calls = Counter(
            "labhub_backend_calls", "Calls this instance made to its services: MongoDB commands, Redis round "
            "trips (a pipeline is one), S3 HTTP requests (a retry is another)", ["service", "operation"], registry=r,
        )  # fmt: skip
        self.pool_tasks = Counter(
            "labhub_pool_tasks", "Tasks handed to the worker pool (one per job attempt that reached a worker)",
            ["kind"], registry=r,
        )  # fmt: skip
        self._backend_children: dict[tuple[str, str], Any] = {}
        self.info = Gauge("labhub_build_info", "This instance's LabHub version", ["version"], registry=r)

    def http(self, method: str, route: str, status: int, seconds: float) -> None:
        method = method if method in KNOWN_METHODS else "OTHER"
        key = (method, route, status)
        children = self._http_children.get(key)  # labels() validates and locks on every call: once per series
        if children is None:
            children = self._http_children[key] = (
                self.http_requests.labels(method, route, str(status)),
                self.http_duration.labels(method, route),
            )
        children[0].inc()
        children[1].observe(seconds)

    def backend_call(self, service: str, operation: str) -> None:
        """One call to a service; operation comes from the client library (command or API names)."""
        child = self._backend_children.get((service, operation))
        if child is None:
            child = self._backend_children[(service, operation)] = self.backend_calls.labels(service, operation)
        child.inc()

    def job_finished(self, kind: str, status: str, seconds: float | None) -> None:
        """seconds None: ended without running here (its lease ran out elsewhere)."""
        self.jobs_finished.labels(kind, status).inc()
        if seconds is not None:
            self.job_duration.labels(kind, status).observe(seconds)
