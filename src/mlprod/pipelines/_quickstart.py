"""``mlprod quickstart DIR``: a realistic example project, run end to end.

Generates a churn table, writes its spec, trains, gates, registers, promotes, starts
the server, answers one HTTP prediction, stops the server and says what to try next.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.text import Text

from mlprod.data import make_churn_table
from mlprod.errors import MlprodError
from mlprod.features import json_safe
from mlprod.pipelines._lifecycle import promote
from mlprod.pipelines._train import train
from mlprod.settings import Settings

SPEC = """\
# The quickstart's spec: a churn model on generated customer snapshots.
name: churn
description: Will this customer cancel within the next month?

data:
  source: customers.csv
  target: churned
  positive: true
  time: event_time        # snapshot time: the test set is the latest 20%
  entity: customer_id     # never a feature

features:
  numeric: [tenure_months, monthly_charges, total_charges, support_calls, last_login_days]
  categorical: [plan, region, payment_method]
  boolean: [has_partner, paperless_billing]
  datetime: [signup_date]

split:
  method: time
  test_size: 0.2
  gap: 7d                 # a week between the last training row and the test window

candidates:
  - logistic_regression
  - lightgbm
  - type: xgboost
    params: {max_depth: 4}

threshold:
  policy: max_f1

gates:
  roc_auc: {threshold: ">= 0.75", bound: lower}
  recall: ">= 0.5"
"""


def run_quickstart(
    directory: Path, *, rows: int = 20_000, console: Console | None = None
) -> dict[str, Any]:
    """Create and run the example project in `directory`; returns what it did."""
    console = console or Console()
    directory = directory.resolve()
    directory.mkdir(parents=True, exist_ok=True)
    if (directory / "mlprod.yaml").exists():
        raise MlprodError(f"{directory} already holds an mlprod.yaml; pick an empty folder")
    console.print(_step(1, f"writing {rows:,} customer rows and mlprod.yaml to {directory}"))
    table = make_churn_table(rows, seed=7)
    table.to_csv(directory / "customers.csv", index=False)
    fresh = make_churn_table(1_000, seed=8).drop(columns=["churned"])
    fresh.to_csv(directory / "new_customers.csv", index=False)
    (directory / "mlprod.yaml").write_text(SPEC, encoding="utf-8")

    settings = Settings(store=str(directory / ".mlprod"))
    console.print(_step(2, "training the candidates, evaluating and gating the winner"))
    run = train(directory / "mlprod.yaml", settings=settings, quiet=False)
    auc = run.metrics["roc_auc"]
    console.print(
        f"      churn@{run.version}: {run.winner}, "
        f"ROC AUC {auc.value:.3f} ({auc.low:.3f}-{auc.high:.3f}), "
        f"gates {'passed' if run.gates_passed else 'FAILED'}; positive class "
        f"{run.target} = {run.positive!r}",
        markup=False,
    )
    console.print(_step(3, "promoting it to churn@production"))
    promote(
        "churn",
        run.version,
        "production",
        settings=settings,
        force=not run.gates_passed,
        reason=None if run.gates_passed else "quickstart demo",
        actor="quickstart",
    )
    console.print(_step(4, "starting the server and asking for one prediction"))
    record = {str(k): json_safe(v) for k, v in fresh.iloc[0].to_dict().items()}
    answer = _one_prediction(directory, settings, record)
    console.print_json(json.dumps(answer))
    _next_steps(console, directory, run.report)
    return {"version": run.version, "report": str(run.report), "answer": answer}


def _step(number: int, text: str) -> Text:
    """``1/4 text`` with the step in bold; the text is printed as it is, never as markup."""
    return Text.assemble((f"{number}/4", "bold"), " ", text)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _one_prediction(directory: Path, settings: Settings, record: dict[str, Any]) -> Any:
    port = _free_port()
    command = [
        sys.executable,
        "-m",
        "mlprod",
        "serve",
        "--port",
        str(port),
        "--store",
        settings.store,
    ]
    server = subprocess.Popen(
        command, cwd=directory, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(base, server)
        response = httpx.post(
            f"{base}/v1/models/churn/predict", json={"records": [record]}, timeout=10
        )
        response.raise_for_status()
        return response.json()
    finally:
        server.terminate()
        server.wait(timeout=15)


def _wait_ready(base: str, server: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            stderr = server.stderr.read().decode() if server.stderr else ""
            raise MlprodError(f"the server exited early: {stderr[-500:]}")
        try:
            if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise MlprodError(f"the server at {base} did not become ready within {timeout:.0f}s")


def _next_steps(console: Console, directory: Path, report: Path | None) -> None:
    console.print(
        Text.assemble("\n", ("done.", "bold green"), f" The training report is at {report}"),
        soft_wrap=True,
    )
    console.print(
        f"Try next, from {directory}:\n"
        "  mlprod models show churn\n"
        "  mlprod runs list\n"
        "  mlprod gates churn@production --junit gates.xml\n"
        "  mlprod predict churn@production --input new_customers.csv --output scored.parquet\n"
        "  mlprod serve --ui --port 8000 &      # the dashboard at http://127.0.0.1:8000/ui/\n"
        "  curl -s -X POST localhost:8000/v1/models/churn/predict \\\n"
        "       -H 'content-type: application/json' \\\n"
        f"       -d '{{\"records\": [{json.dumps(_example_record(directory))}]}}'\n"
        "  mlprod monitor churn                  # traffic, live vs test, drift, alerts\n"
        "  mlprod tune --trials 20               # tune the candidates with Optuna",
        soft_wrap=True,
        markup=False,
    )


def _example_record(directory: Path) -> dict[str, Any]:
    import pandas as pd

    row = pd.read_csv(directory / "new_customers.csv", nrows=1).iloc[0].to_dict()
    return {str(k): json_safe(v) for k, v in row.items()}
