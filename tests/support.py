"""Helpers shared by the tests: a small project on disk and a real server process."""

from __future__ import annotations

import os
from pathlib import Path

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


class Project:
    """A folder with data, spec and store, trained once per session."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.spec = root / "mlprod.yaml"
        self.store = str(root / ".mlprod")

    def env(self) -> dict[str, str]:
        """Environment for CLI subprocesses: the project's store, no colour codes."""
        env = dict(os.environ)
        env.update({"MLPROD_STORE": self.store, "NO_COLOR": "1", "COLUMNS": "200"})
        return env


def write_project(root: Path, rows: int = 3000, seed: int = 3, spec: str = SMALL_SPEC) -> Project:
    """Data from the churn generator plus a spec, ready for `mlprod train`."""
    from mlprod.data import make_churn_table

    root.mkdir(parents=True, exist_ok=True)
    make_churn_table(rows, seed=seed).to_csv(root / "customers.csv", index=False)
    (root / "mlprod.yaml").write_text(spec, encoding="utf-8")
    return Project(root)


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """A real `mlprod serve` process on 127.0.0.1."""

    def __init__(self, project: Project, *args: str, env: dict[str, str] | None = None) -> None:
        """Start `mlprod serve`; `env` adds variables (MLPROD_...) to the project's."""
        import subprocess
        import sys

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        command = [sys.executable, "-m", "mlprod", "serve", "--port", str(self.port), *args]
        self.process = subprocess.Popen(
            command,
            cwd=project.root,
            env={**project.env(), **(env or {})},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )

    def wait_ready(self, timeout: float = 60.0) -> None:
        import time

        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    self.process.stderr.read().decode() if self.process.stderr else ""
                )
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
        if self.process.stderr:
            self.process.stderr.close()
