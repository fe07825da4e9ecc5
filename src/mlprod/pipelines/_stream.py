"""``mlprod features stream``: the spec's event streams kept flowing into the online store.

A process of its own rather than a task inside ``mlprod serve``: a replica's core belongs
to its requests, replicas come and go with traffic while the streams need the same
readers whatever the traffic, and a reader that dies (or is killed) takes no server down
with it. Several may run at once: they share each stream's consumer group.

Example::

    stop = threading.Event()
    stream_features("mlprod.yaml", settings=Settings(online="redis://..."), stop=stop)
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from mlprod.errors import SpecError
from mlprod.online import StreamReader, StreamStats
from mlprod.pipelines._features import _spec, online_store, spec_plan
from mlprod.pipelines._progress import Steps
from mlprod.settings import Settings
from mlprod.spec import ProjectSpec

QUIET_SECONDS = 10.0  # outside a terminal, an unchanged status is repeated this often


class _ReaderCollector(Collector):
    """The reader's counts and lag as ``mlprod_stream_<name>`` gauges, read at scrape time."""

    def __init__(self, reader: StreamReader) -> None:
        self.reader = reader

    def collect(self) -> list[GaugeMetricFamily]:
        return [
            GaugeMetricFamily(f"mlprod_stream_{key}", f"stream reader {key}", value=value)
            for key, value in sorted(self.reader.stats.document().items())
        ]


def status_line(stats: StreamStats, problem: str = "") -> str:
    """One line: what was applied, refused and dead-lettered, and how far behind."""
    line = (
        f"applied {stats.applied:,}, waiting {stats.waiting:,}, late {stats.late:,}, "
        f"duplicates {stats.duplicates:,}, dead {stats.dead:,}; "
        f"lag {stats.lag_entries:,} entries, {stats.lag_seconds:.1f}s"
    )
    return f"{line}; {problem}" if problem else line


def _reporter(steps: Steps, reader: StreamReader) -> Callable[[StreamStats], None]:
    last = {"line": "", "at": 0.0}

    def report(stats: StreamStats) -> None:
        line = status_line(stats, reader.problem)
        quiet = time.monotonic() - last["at"] < QUIET_SECONDS  # type: ignore[operator]
        if line == last["line"] and quiet:
            return
        last.update(line=line, at=time.monotonic())
        steps(line)

    return report


def stream_features(
    spec: str | Path | ProjectSpec = "mlprod.yaml",
    *,
    stop: threading.Event,
    settings: Settings | None = None,
    consumer: str | None = None,
    batch: int = 500,
    metrics_port: int | None = None,
    quiet: bool = True,
) -> StreamStats:
    """Read the spec's event streams into the online store until `stop` is set.

    `consumer` names this reader in the groups (default: the host name, so a restarted
    reader finishes what it was given); `metrics_port` serves ``/metrics`` (Prometheus)
    on 127.0.0.1 with the counts and the lag.
    """
    if batch < 1:
        raise SpecError(f"--batch must be at least 1, got {batch}")
    settings = settings or Settings()
    plan = spec_plan(_spec(spec))
    online = online_store(settings)
    reader = StreamReader(online, plan, consumer=consumer or socket.gethostname(), batch=batch)
    server = None
    if metrics_port is not None:
        registry = CollectorRegistry(auto_describe=True)
        registry.register(_ReaderCollector(reader))
        try:
            server, _ = start_http_server(metrics_port, addr="127.0.0.1", registry=registry)
        except OSError as exc:
            online.close()
            raise SpecError(
                f"--metrics-port {metrics_port}: cannot listen on 127.0.0.1 ({exc.strerror}); "
                "pick a free port or leave the option out"
            ) from None
    steps = Steps(quiet=quiet)
    keys = ", ".join(stream.key for stream in reader.sources.values())
    try:
        with steps.live(f"reading {keys} into namespace {plan.namespace} as {reader.consumer}"):
            steps(f"reading {keys} into namespace {plan.namespace} as {reader.consumer}")
            stats = reader.run(stop, report=_reporter(steps, reader))
            reader.refresh_lag()
    finally:
        if server is not None:
            server.shutdown()
            server.server_close()
        online.close()
    steps(f"stopped: {status_line(stats)}")
    return stats
