"""Prometheus metrics: requests, errors and latency per model and version, plus gauges
read at scrape time from the prediction log and the request guard.

Each app gets its own registry (no global state), so several apps in one process, as in
tests, never share counters.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
Stats = Callable[[], Mapping[str, float]]


class ServerMetrics:
    """The server's instruments, registered in a registry of its own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        labels = ("model", "version")
        self.requests = Counter(
            "mlprod_predictions", "Records scored", labels, registry=self.registry
        )
        self.errors = Counter(
            "mlprod_request_errors", "Requests answered with an error", ("model", "code"),
            registry=self.registry,
        )  # fmt: skip
        self.latency = Histogram(
            "mlprod_request_seconds", "Time to answer a predict request", labels,
            buckets=LATENCY_BUCKETS, registry=self.registry,
        )  # fmt: skip
        self.loaded = Gauge(
            "mlprod_versions_loaded", "Versions loaded and serving", registry=self.registry
        )
        # labelled children by (model, version): `labels()` takes a lock and builds its key
        # on every call, a cost each request paid twice; the set is as small as the models'
        self._scored: dict[tuple[str, object], Any] = {}
        self._timed: dict[tuple[str, object], Any] = {}

    def scored(self, model: str, version: object, records: int) -> None:
        """Count `records` answered by `model`'s `version`."""
        child = self._scored.get((model, version))
        if child is None:
            child = self._scored[model, version] = self.requests.labels(model, str(version))
        child.inc(records)

    def timed(self, model: str, version: object, seconds: float) -> None:
        """Observe one predict request's scoring time under its first record's version."""
        child = self._timed.get((model, version))
        if child is None:
            child = self._timed[model, version] = self.latency.labels(model, str(version))
        child.observe(seconds)

    def watch(self, prefix: str, stats: Stats) -> None:
        """Expose every number `stats()` returns as a gauge ``mlprod_<prefix>_<key>``."""
        self.registry.register(_StatsCollector(prefix, stats))

    def watch_failures(self, failures: Callable[[], list[tuple[str, int]]]) -> None:
        """``mlprod_version_failed{model, version} 1`` per routed version that will not load."""
        self.registry.register(_FailuresCollector(failures))

    def render(self) -> bytes:
        """The text exposition format."""
        return generate_latest(self.registry)


class _StatsCollector(Collector):
    def __init__(self, prefix: str, stats: Stats) -> None:
        self.prefix = prefix
        self.stats = stats

    def collect(self) -> list[GaugeMetricFamily]:
        return [
            GaugeMetricFamily(f"mlprod_{self.prefix}_{key}", f"{self.prefix} {key}", value=value)
            for key, value in sorted(self.stats().items())
        ]


class _FailuresCollector(Collector):
    def __init__(self, failures: Callable[[], list[tuple[str, int]]]) -> None:
        self.failures = failures

    def collect(self) -> list[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "mlprod_version_failed",
            "Routed versions that will not load",
            labels=("model", "version"),
        )
        for model, version in self.failures():
            family.add_metric([model, str(version)], 1.0)
        return [family]
