"""The runner's own counters: what this process saw happen (runs ended, requests answered,
retries, waits for a rate-limiter slot, webhooks refused).

They live in a ``CollectorRegistry`` of their own, one per runner (never prometheus_client's
global one): two runners in one process (tests) keep their counts apart, and nothing another
library registers globally ends up on ``/metrics``. Counters start at zero with the process,
as Prometheus counters do (``rate()`` and ``increase()`` handle the restart); counts that must
hold across restarts and nodes are read from the store at scrape time (``collectors``).

Labels carry recipe names, connection names (``quo``, ``loops``, ``http``), HTTP statuses and
fixed words only: never a key, a URL, a phone number or an e-mail address.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from automations.connections.observer import SendObserver
from automations.metrics.collectors import StoreCollector
from automations.records import RunRecord, RunStatus

__all__ = ["REJECTION_REASONS", "RunnerMetrics"]

#: Why the intake refused a request (``automations_intake_rejections_total{reason}``).
REJECTION_REASONS = (
    "signature",  # 401: a bad or missing signature
    "size",  # 413: a body over --max-body
    "header_size",  # 431: request line and headers over 32 KiB
    "bad_body",  # 400: not JSON the engine takes
    "disconnected",  # 400: the client went away before its body arrived
    "not_found",  # 404: no recipe on that path
    "method",  # 405: not a POST
    "timeout",  # 408: head or body not sent in time
    "busy",  # 503: too many connections
    "not_configured",  # 503: the recipe's webhook secret is not set on this runner
    "store",  # 503: the store could not record the event
    "shutting_down",  # 503: the runner is stopping
)

_WAIT_BUCKETS = (0.0, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
_RUN_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0)


class RunnerMetrics(SendObserver):
    """The counters of one runner, in ``registry``; also the ``SendObserver`` of its
    ``Connections``. ``process=False`` leaves out the process, platform and GC collectors."""

    def __init__(self, registry: CollectorRegistry | None = None, *, process: bool = True) -> None:
        self.registry = r = registry or CollectorRegistry()
        if process:
            ProcessCollector(registry=r)
            PlatformCollector(registry=r)
            GCCollector(registry=r)
        self.runs = Counter(
            "automations_runs",
            "Runs this process ended, by recipe and final status (succeeded, failed, skipped, "
            "unknown).",
            ["recipe", "status"],
            registry=r,
        )
        self.run_seconds = Histogram(
            "automations_run_duration_seconds",
            "How long the runs this process ended took, from their start to their end.",
            ["recipe"],
            buckets=_RUN_BUCKETS,
            registry=r,
        )
        self.unknown_steps = Counter(
            "automations_unknown_steps",
            "Steps this process left unknown (may or may not have been delivered: a person "
            "resolves them).",
            ["recipe"],
            registry=r,
        )
        self.requests = Counter(
            "automations_requests",
            "Attempts sent to a provider, by connection and the HTTP status answered "
            "(not_reached: no connection; no_answer: no complete answer).",
            ["connection", "status"],
            registry=r,
        )
        self.rate_limited = Counter(
            "automations_rate_limited",
            "Attempts a provider answered 429 (too many requests).",
            ["connection"],
            registry=r,
        )
        self.retries = Counter(
            "automations_retries",
            "Attempts tried again after a wait, by connection and why (the status answered, "
            "not_reached or no_answer).",
            ["connection", "reason"],
            registry=r,
        )
        self.limiter_wait = Histogram(
            "automations_limiter_wait_seconds",
            "How long requests waited for their connection's rate-limiter slot.",
            ["connection"],
            buckets=_WAIT_BUCKETS,
            registry=r,
        )
        self.limiter_waiting = Gauge(
            "automations_limiter_waiting",
            "Requests of this process waiting for their connection's rate-limiter slot now.",
            ["connection"],
            registry=r,
        )
        self.rejections = Counter(
            "automations_intake_rejections",
            "Requests the webhook intake refused, by reason.",
            ["reason"],
            registry=r,
        )
        for reason in REJECTION_REASONS:  # every reason shows, at 0 until it happens
            self.rejections.labels(reason)
        #: The gauges read from the store at scrape time (``instrument`` registers them).
        self.store_gauges: StoreCollector | None = None

    # -- the executor ------------------------------------------------------------------------

    def run_finished(self, run: RunRecord) -> None:
        """A run ended (``Executor.finished``)."""
        self.runs.labels(run.recipe, run.status.value).inc()
        if run.started_at is not None and run.finished_at is not None:
            self.run_seconds.labels(run.recipe).observe(max(0.0, run.finished_at - run.started_at))
        if run.status is RunStatus.UNKNOWN:
            self.unknown_steps.labels(run.recipe).inc()  # a run stops at its unknown step

    # -- the intake --------------------------------------------------------------------------

    def intake_rejected(self, reason: str, count: int = 1) -> None:
        """The intake refused ``count`` requests for ``reason`` (one of ``REJECTION_REASONS``)."""
        self.rejections.labels(reason).inc(count)

    # -- SendObserver ------------------------------------------------------------------------

    def waiting(self, connection: str, delta: int) -> None:
        self.limiter_waiting.labels(connection).inc(delta)

    def waited(self, connection: str, seconds: float) -> None:
        self.limiter_wait.labels(connection).observe(max(0.0, seconds))

    def answered(self, connection: str, status: int) -> None:
        self.requests.labels(connection, str(status)).inc()
        if status == 429:
            self.rate_limited.labels(connection).inc()

    def unanswered(self, connection: str, reason: str) -> None:
        self.requests.labels(connection, reason).inc()

    def retrying(self, connection: str, reason: str) -> None:
        self.retries.labels(connection, reason).inc()
