"""Helpers shared by the tests: a small project on disk and a real server process."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:
    from collections.abc import Callable

    from mlprod.settings import Settings

SMALL_SPEC = """\
name: churn
data:
  source: customers.csv
  target: churned
  positive: true
  time: event_time
  entity: customer_id
features:
  numeric: [tenure_months, monthly_charges, total_charges, support_calls, last_login_days]
  categorical: [plan, region, payment_method]
  boolean: [has_partner, paperless_billing]
  datetime: [signup_date]
split: {method: time, test_size: 0.2, gap: 3d}
candidates: [logistic_regression, lightgbm]
gates:
  roc_auc: ">= 0.7"
"""


IN_CI = os.environ.get("CI", "").lower() == "true"


def need_service(name: str, reason: str) -> NoReturn:
    """Skip with `reason` when a service is missing, but fail under CI=true."""
    import pytest

    if IN_CI:
        pytest.fail(f"{name} is required under CI=true: {reason}")
    pytest.skip(f"{name} unavailable: {reason}")


class Project:
    """A folder with data, spec and store, trained once per session.

    `store` is the store folder by default; a database URL puts the metadata there and the
    bundles in `root/artifacts`.
    """

    def __init__(self, root: Path, store: str | None = None) -> None:
        self.root = root
        self.spec = root / "mlprod.yaml"
        self.store = store or str(root / ".mlprod")

    def settings(self) -> Settings:
        """What the project's processes use: its store, and its artifacts beside it."""
        from mlprod.settings import Settings

        if "://" in self.store:
            return Settings(store=self.store, artifacts=str(self.root / "artifacts"))
        return Settings(store=self.store)

    def env(self) -> dict[str, str]:
        """Environment for CLI subprocesses: the project's store, no colour codes."""
        env = dict(os.environ)
        env.update({"MLPROD_STORE": self.store, "NO_COLOR": "1", "COLUMNS": "200"})
        if "://" in self.store:
            env["MLPROD_ARTIFACTS"] = str(self.root / "artifacts")
        return env


def records_from(project: Project, n: int) -> list[dict[str, Any]]:
    """`n` request records from the project's data (repeated if needed), unique entity ids."""
    import pandas as pd

    from mlprod.features import json_safe

    frame = pd.read_csv(project.root / "customers.csv").drop(columns=["churned"])
    frame = pd.concat([frame] * (n // len(frame) + 1)).head(n).reset_index(drop=True)
    frame["customer_id"] = [f"X{i:07d}" for i in range(n)]
    return [{k: json_safe(v) for k, v in row.items()} for row in frame.to_dict("records")]


def write_project(
    root: Path, rows: int = 3000, seed: int = 3, spec: str = SMALL_SPEC, store: str | None = None
) -> Project:
    """Data from the churn generator plus a spec, ready for `mlprod train`."""
    from mlprod.data import make_churn_table

    root.mkdir(parents=True, exist_ok=True)
    make_churn_table(rows, seed=seed).to_csv(root / "customers.csv", index=False)
    (root / "mlprod.yaml").write_text(spec, encoding="utf-8")
    return Project(root, store)


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """A real `mlprod serve` process on 127.0.0.1."""

    def __init__(
        self,
        project: Project,
        *args: str,
        env: dict[str, str] | None = None,
        command: str = "serve",
    ) -> None:
        """Start `mlprod serve` (or `command`); `env` adds variables to the project's."""
        import subprocess
        import sys
        import tempfile

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        argv = [sys.executable, "-m", "mlprod", command, "--port", str(self.port), *args]
        # a file, not a pipe: a pipe nobody drains blocks the server once it fills up
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 - closed by stop()
        self.process = subprocess.Popen(
            argv,
            cwd=project.root,
            env={**project.env(), **(env or {})},
            stdout=subprocess.DEVNULL,
            stderr=self.log,
        )

    def output(self) -> str:
        """What the server wrote to stderr so far (all of it, once stopped)."""
        if self.log.closed:
            return self._output
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def wait_ready(self, timeout: float = 300.0) -> None:
        """Until /healthz answers; generous, so a busy machine slows a test, never fails it."""
        import time

        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(self.output())
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.1)
        raise TimeoutError(f"server on {self.url} did not start")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except Exception:
            self.process.kill()
            self.process.wait()
        self._output = self.output()
        self.log.close()


class PrivatePostgres:
    """A PostgreSQL cluster of the test's own, on a free port, that it may stop and start.

    Outage tests stop the database for real; doing that to the machine's shared server
    would break everything else using it, so they get a throwaway cluster instead.
    """

    def __init__(self) -> None:
        import glob
        import shutil
        import tempfile

        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl")) or [
            shutil.which("pg_ctl") or ""
        ]
        self.bin = Path(found[-1]).parent
        if not (self.bin / "initdb").exists():
            raise FileNotFoundError("PostgreSQL's initdb and pg_ctl are not installed")
        self.root = Path(tempfile.mkdtemp(prefix="mlprod-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"
        if os.geteuid() == 0:  # initdb refuses root: run the cluster as the postgres user
            shutil.chown(self.root, "postgres")
        self._pg("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")

    def _pg(self, tool: str, *args: str) -> None:
        import subprocess

        command = [str(self.bin / tool), *args]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=60)

    def start(self) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        log = str(self.root / "server.log")
        self._pg("pg_ctl", "-D", str(self.data), "-o", options, "-l", log, "-w", "start")

    def stop(self) -> None:
        """A fast shutdown: open connections are cut, new ones refused."""
        self._pg("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def destroy(self) -> None:
        import contextlib
        import shutil
        import subprocess

        with contextlib.suppress(subprocess.CalledProcessError):
            self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


def run_cli(
    project: Project, *args: str, check: bool = True, env: dict[str, str] | None = None
) -> Any:
    """`mlprod ARGS` as a user runs it, in the project's folder; a failure shows its stderr.

    `env`: the whole environment, when the project's own (`Project.env`) is not it.
    """
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "mlprod", *args],
        cwd=project.root,
        env=project.env() if env is None else env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if check and done.returncode != 0:
        raise AssertionError(f"mlprod {' '.join(args)} failed ({done.returncode}):\n{done.stderr}")
    return done


def cli_json(project: Project, *args: str) -> Any:
    """The one JSON document `mlprod ARGS --json` prints."""
    import json

    return json.loads(run_cli(project, *args, "--json").stdout)


def trained(
    root: Path,
    *,
    versions: int = 1,
    rows: int = 1500,
    production: int = 1,
    store: str | None = None,
) -> Project:
    """A project with `versions` trained versions and `production` promoted (`store`: a URL)."""
    from mlprod.pipelines import promote, train

    project = write_project(root, rows=rows, store=store)
    settings = project.settings()  # with a database URL, the bundles go beside the project
    for _ in range(versions):
        train(project.spec, settings=settings)
    promote("churn", production, "production", settings=settings, actor="test")
    return project


class Receiver:
    """An HTTP endpoint on 127.0.0.1 keeping every JSON document posted to it.

    `redirect` makes it answer 307 to that URL, to prove a client does not follow.
    """

    def __init__(self, redirect: str | None = None) -> None:
        import json
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        received: list[dict[str, Any]] = []
        self.received = received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers["content-length"])
                received.append(json.loads(self.rfile.read(length)))
                self.send_response(307 if redirect else 204)
                if redirect:
                    self.send_header("location", redirect)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def wait_until(
    condition: Callable[[], object], what: str | Callable[[], str], timeout: float = 120.0
) -> None:
    """Poll `condition` until it holds: background threads run at low priority, so on a
    busy machine they lag by seconds, and a fixed sleep would fail the test by chance.
    `what` names the awaited state (a callable is asked at the deadline, to show it)."""
    import time

    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            awaited = what() if callable(what) else what
            raise AssertionError(f"{awaited}: not within {timeout:.0f} s")
        time.sleep(0.1)


def live_totals(project: Project, model: str = "churn") -> tuple[int, int]:
    """(predictions, labelled ones) in the model's live windows, as the counter stored them."""
    from mlprod.monitoring._live import read_window_stats
    from mlprod.store import Store

    with Store.open(project.settings().store_url()) as store:
        windows = read_window_stats(store, model)
    return sum(w["predictions"] for w in windows), sum(w["labelled"] for w in windows)


def wait_for_totals(project: Project, predictions: int, labelled: int = 0) -> None:
    """Until the server's live counter has stored these totals (it runs at low priority)."""
    wait_until(
        lambda: live_totals(project) == (predictions, labelled),
        lambda: (
            f"{predictions:,} predictions and {labelled:,} labels counted "
            f"(stored: {live_totals(project)})"
        ),
    )


def wait_until_blocked(url: str, timeout: float = 10.0) -> None:
    """Return once some session of this PostgreSQL database waits on a lock."""
    import time

    import sqlalchemy as sa

    engine = sa.create_engine(url)
    query = sa.text(
        "SELECT count(*) FROM pg_stat_activity "
        "WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    try:
        deadline = time.monotonic() + timeout
        with engine.connect() as conn:
            while conn.execute(query).scalar_one() == 0:
                assert time.monotonic() < deadline, "nothing waited for the other writer"
                conn.rollback()
                time.sleep(0.005)
    finally:
        engine.dispose()


def run_and_kill(script: str, *args: str, acked: int, tmp_path: Path) -> int:
    """Run `script`, SIGKILL it once it acknowledged `acked` appends; returns the count acked."""
    import signal
    import subprocess
    import sys

    path = tmp_path / "child.py"
    path.write_text(script)
    child = subprocess.Popen([sys.executable, str(path), *args], stdout=subprocess.PIPE)
    assert child.stdout is not None
    last = -1
    try:
        while last + 1 < acked:
            line = child.stdout.readline()
            assert line, f"the child exited early with {child.poll()}"
            last = int(line)
    finally:
        os.kill(child.pid, signal.SIGKILL)
        tail = child.stdout.read()
        child.stdout.close()
        child.wait()
    lines = tail.split()
    if lines and tail.endswith(b"\n"):
        last = int(lines[-1])
    assert child.returncode == -signal.SIGKILL
    return last + 1


# --- Redis: the shared instance (keys under a per-test prefix) and private ones


REDIS_URL = os.environ.get("MLPROD_TEST_REDIS", "redis://127.0.0.1:6379/0")


def need_redis(url: str = REDIS_URL) -> None:
    """Skip (fail under CI=true) when the Redis at `url` does not answer."""
    import redis

    try:
        client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        client.ping()
        client.close()
    except redis.RedisError as exc:
        need_service("Redis", f"cannot reach {url}: {exc}")


def drop_prefix(url: str, prefix: str) -> None:
    """Delete every key under `prefix` (a test's own namespace on the shared Redis)."""
    import redis

    client = redis.Redis.from_url(url)
    keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
    for start in range(0, len(keys), 1000):
        client.delete(*keys[start : start + 1000])
    client.close()


class PrivateRedis:
    """A redis-server of the test's own on a free port, to stop, start, pause and resume.

    Outage tests stop Redis for real; the shared one on 6379 is never touched.
    """

    def __init__(self, *args: str) -> None:
        import shutil

        self.binary = shutil.which("redis-server")
        if self.binary is None:
            need_service("redis-server", "the redis-server program is not installed")
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.args = args
        self.process: Any = None

    def start(self) -> None:
        import subprocess
        import time

        import redis

        command = [str(self.binary), "--port", str(self.port), "--bind", "127.0.0.1",
                   "--save", "", "--appendonly", "no", *self.args]  # fmt: skip
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                redis.Redis(port=self.port, socket_timeout=1).ping()
                return
            except redis.RedisError:
                time.sleep(0.05)
        raise TimeoutError(f"redis-server on port {self.port} did not start")

    def stop(self) -> None:
        """Kill it for real: connections drop, new ones are refused."""
        import signal

        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)
            self.process.kill()
            self.process.wait()

    def pause(self) -> None:
        """SIGSTOP: the port still accepts connections but nothing answers (a blackhole)."""
        import signal

        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        import signal

        self.process.send_signal(signal.SIGCONT)

    def client(self) -> Any:
        import redis

        return redis.Redis(port=self.port, socket_timeout=5)


# --- events for aggregate features


AGGREGATE_SPEC = """\
name: churn
data:
  source: customers.csv
  target: churned
  positive: true
  time: event_time
  entity: customer_id
features:
  numeric: [tenure_months, monthly_charges, support_calls]
  categorical: [plan]
  aggregates:
    delay: 0s
    on_missing: {on_missing}
    events:
      activity: {{source: events.csv, time: at}}
    define:
      - {{name: events, events: activity, function: count, windows: [1d, 7d]}}
      - {{name: tickets, events: activity, function: count, windows: [7d], where: {{kind: ticket}}}}
      - {{name: spend, events: activity, function: sum, column: amount, windows: [7d, 30d],
         where: {{kind: buy}}}}
      - {{name: basket, events: activity, function: mean, column: amount, windows: [30d]}}
      - {{name: kinds, events: activity, function: distinct_count, column: kind, windows: [7d]}}
      - {{name: last_kind, events: activity, function: last, column: kind, windows: [30d]}}
split: {{method: time, test_size: 0.2}}
candidates: [logistic_regression]
"""


def make_events(table: Any, seed: int = 7, per_customer: int = 12) -> Any:
    """Activity events around each customer's event time: churners file more tickets.

    Some events fall after each customer's time: a leak if they ever counted.
    """
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    rows = []
    for customer, when, churned in zip(
        table["customer_id"], pd.to_datetime(table["event_time"]), table["churned"], strict=True
    ):
        count = int(rng.poisson(per_customer))
        offsets = rng.uniform(-40 * 86400, 5 * 86400, size=count)  # days before (and after)
        for offset in offsets:
            ticket_p = 0.5 if churned and -7 * 86400 < offset < 0 else 0.1
            kind = "ticket" if rng.random() < ticket_p else rng.choice(["view", "buy"])
            amount = round(float(rng.gamma(2.0, 20.0)), 2) if kind == "buy" else None
            at = when + pd.Timedelta(milliseconds=int(offset * 1000))
            rows.append({"customer_id": customer, "at": at, "kind": kind, "amount": amount})
    return pd.DataFrame(rows).sort_values("at").reset_index(drop=True)


def write_aggregate_project(
    root: Path, rows: int = 1500, on_missing: str = "defaults", store: str | None = None
) -> Project:
    """A churn project whose spec adds aggregates over an activity table (events.csv)."""
    from mlprod.data import make_churn_table

    root.mkdir(parents=True, exist_ok=True)
    table = make_churn_table(rows, seed=3)
    table.to_csv(root / "customers.csv", index=False)
    make_events(table).to_csv(root / "events.csv", index=False)
    spec = AGGREGATE_SPEC.format(on_missing=on_missing)
    (root / "mlprod.yaml").write_text(spec, encoding="utf-8")
    return Project(root, store)


# --- random events, rows and a join table for the aggregate tests

T0 = "2026-03-01T00:00:00"

AGGREGATES: dict[str, Any] = {
    "delay": "90s",
    "events": {"clicks": {"source": "-", "time": "at", "entity": "user"}},
    "define": [
        {"name": "n", "events": "clicks", "function": "count", "windows": ["1h", "1d"]},
        {"name": "buys", "events": "clicks", "function": "count", "windows": ["1d"],
         "where": {"kind": "buy"}},
        {"name": "spend", "events": "clicks", "function": "sum", "column": "amount",
         "windows": ["6h"], "where": [{"column": "amount", "op": ">", "value": 5}]},
        {"name": "avg", "events": "clicks", "function": "mean", "column": "amount",
         "windows": ["1d"]},
        {"name": "lo", "events": "clicks", "function": "min", "column": "amount",
         "windows": ["1d"]},
        {"name": "hi", "events": "clicks", "function": "max", "column": "amount",
         "windows": ["7d"], "hop": "1d"},
        {"name": "kinds", "events": "clicks", "function": "distinct_count", "column": "kind",
         "windows": ["1d"], "where": {"kind": ["buy", "view"]}},
        {"name": "last", "events": "clicks", "function": "last", "column": "kind",
         "windows": ["1h"]},
    ],
    "joins": [{"name": "plan", "source": "-", "time": "since", "key": "user_id",
               "on": "user", "columns": ["tier", "limit"]}],
}  # fmt: skip


def plan_for(raw: dict[str, Any] | None = None) -> Any:
    """The test plan (or `raw`) compiled with the key ``user``."""
    from mlprod.features import compile_plan
    from mlprod.spec import AggregatesSpec

    return compile_plan(AggregatesSpec.model_validate(raw or AGGREGATES), key="user")


def random_events(rng: Any, n: int = 3000, users: int = 40) -> Any:
    """Clicks of `users` users over eight days, amounts sometimes missing."""
    import numpy as np
    import pandas as pd

    seconds = rng.integers(0, 8 * 86400, size=n)
    ms = rng.integers(0, 1000, size=n)
    amount = np.round(rng.gamma(2.0, 5.0, size=n), 2)
    amount[rng.random(n) < 0.1] = np.nan
    return pd.DataFrame(
        {
            "user": rng.integers(0, users, size=n).astype(str),
            "at": pd.Timestamp(T0)
            + pd.to_timedelta(seconds, unit="s")
            + pd.to_timedelta(ms, unit="ms"),
            "kind": rng.choice(["buy", "view", "ticket"], size=n),
            "amount": amount,
        }
    )


def random_rows(rng: Any, n: int = 200, users: int = 45) -> Any:
    """Rows to compute features for; users 40-44 never click."""
    import pandas as pd

    seconds = rng.integers(3600, 9 * 86400, size=n)
    return pd.DataFrame(
        {"user": rng.integers(0, users, size=n).astype(str),
         "t": pd.Timestamp(T0) + pd.to_timedelta(seconds, unit="s")}
    )  # fmt: skip


def random_plans(rng: Any, users: int = 40) -> Any:
    """A plan table for the as-of join: tier and limit per user, changing over time."""
    import pandas as pd

    n = 300
    return pd.DataFrame(
        {
            "user_id": rng.integers(0, users, size=n).astype(str),
            "since": pd.Timestamp(T0)
            + pd.to_timedelta(rng.integers(0, 9 * 86, size=n) * 1000, unit="s"),
            "tier": rng.choice(["gold", "silver", "bronze"], size=n),
            "limit": rng.integers(1, 4, size=n) * 100,
        }
    )
