"""Prometheus metrics: one registry per application, never prometheus_client's global one.

Counters and histograms are fed where things happen, once each: appends and
group-commit transactions in ``store/base.py``, request creation and
decisions in ``commands/requests.py`` (by the process whose append won, so a
decision is counted once however many processes share the database),
deliveries in the channel senders, HTTP responses in ``web/metrics.py``.
What describes the present (parked waiters, open streams, reactor lag) is
read at scrape time from the objects that hold it (:meth:`Metrics.gauge`,
:meth:`Metrics.reactor`), so no increment and decrement can drift apart.

Label values are bounded words (outcome, channel, backend, reactor, route
template, method, status), never an id, a key or a message.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector

CONTENT_TYPE = CONTENT_TYPE_LATEST
# Humans answer in seconds to a day; an expiry lands on the request's timeout.
DECISION_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400, 43200, 86400)
APPEND_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)
# A transaction takes at most store.base.MAX_BATCH appends, each of one event or a few.
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class _Live(Collector):
    """A collector that reads gauges from their owners at scrape time."""

    def __init__(self) -> None:
        self.gauges: dict[str, tuple[str, Callable[[], float]]] = {}
        self.reactors: dict[str, Callable[[], int | None]] = {}

    def collect(self) -> Iterator[Metric]:
        for name, (documentation, read) in self.gauges.items():
            yield GaugeMetricFamily(name, documentation, value=read())
        lag = GaugeMetricFamily(
            "loopgate_reactor_lag_events",
            "Events between the log's head and the reactor's checkpoint, for each reactor "
            "whose lease this process holds.",
            labels=["reactor"],
        )
        for reactor, read_lag in self.reactors.items():
            value = read_lag()
            if value is not None:
                lag.add_metric([reactor], value)
        yield lag


class Metrics:
    """The application's metrics; ``registry`` is what ``/metrics`` exposes."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._live = _Live()
        self.registry.register(self._live)
        self._created = Counter(
            "loopgate_requests_created",
            "Requests created by this process.",
            registry=self.registry,
        )
        self._decided = Counter(
            "loopgate_requests_decided",
            "Requests decided by this process's append, by outcome and channel.",
            ["outcome", "channel"],
            registry=self.registry,
        )
        self._decision_seconds = Histogram(
            "loopgate_decision_seconds",
            "Seconds from a request's creation to its decision, by outcome.",
            ["outcome"],
            buckets=DECISION_BUCKETS,
            registry=self.registry,
        )
        self._append_seconds = Histogram(
            "loopgate_store_append_seconds",
            "Seconds one append waited: its queue and its group-commit transaction.",
            ["backend"],
            buckets=APPEND_BUCKETS,
            registry=self.registry,
        )
        self._batch_events = Histogram(
            "loopgate_store_batch_events",
            "Events written by one group-commit transaction.",
            ["backend"],
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )
        self._delivered = Counter(
            "loopgate_deliveries",
            "Requests shown on a channel (telegram) or decisions posted (webhook).",
            ["channel"],
            registry=self.registry,
        )
        self._delivery_failures = Counter(
            "loopgate_delivery_failures",
            "Failed delivery attempts, retries included, by channel.",
            ["channel"],
            registry=self.registry,
        )
        self._http = Counter(
            "loopgate_http_requests",
            "HTTP responses by route template (unmatched for no route), method and status.",
            ["route", "method", "status"],
            registry=self.registry,
        )

    def gauge(self, name: str, documentation: str, read: Callable[[], float]) -> None:
        """Expose ``read()`` as the gauge ``name`` at every scrape (a second call replaces it)."""
        self._live.gauges[name] = (documentation, read)

    def reactor(self, name: str, lag: Callable[[], int | None]) -> None:
        """Expose ``lag()`` as the reactor's lag; ``None`` (not running here) shows nothing."""
        self._live.reactors[name] = lag

    def request_created(self) -> None:
        self._created.inc()

    def request_decided(self, outcome: str, channel: str, seconds: float) -> None:
        self._decided.labels(outcome, channel).inc()
        self._decision_seconds.labels(outcome).observe(seconds)

    def appended(self, backend: str, seconds: float) -> None:
        self._append_seconds.labels(backend).observe(seconds)

    def committed(self, backend: str, events: int) -> None:
        self._batch_events.labels(backend).observe(events)

    def delivered(self, channel: str) -> None:
        self._delivered.labels(channel).inc()

    def delivery_failed(self, channel: str) -> None:
        self._delivery_failures.labels(channel).inc()

    def http_response(self, route: str, method: str, status: int) -> None:
        self._http.labels(route, method, str(status)).inc()

    def exposition(self) -> bytes:
        """Everything, in the Prometheus text format (``CONTENT_TYPE``)."""
        return generate_latest(self.registry)
