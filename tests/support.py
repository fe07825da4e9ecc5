"""Helpers shared by the tests: a small project on disk and a real server process."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:
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

    def wait_ready(self, timeout: float = 60.0) -> None:
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


def run_cli(project: Project, *args: str, check: bool = True) -> Any:
    """`mlprod ARGS` as a user runs it, in the project's folder; a failure shows its stderr."""
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "mlprod", *args],
        cwd=project.root,
        env=project.env(),
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
