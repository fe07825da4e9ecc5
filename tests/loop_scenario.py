"""A closed-loop scenario: a model, a real server, live traffic with outcomes, and a concept
change at a known point; the scheduler runs over simulated time (a clock, no sleeping for
days). Shared by the loop tests and `benchmarks/loop.py`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd

from support import Project

MODEL = "loop"
SPEC = """\
name: loop
data:
  source: accounts.csv
  target: converted
  positive: true
  time: event_time
  entity: account_id
features:
  numeric: [a, b, c, d]
  categorical: [segment]
split: {method: time, test_size: 0.25}
candidates: [logistic_regression]
gates:
  roc_auc: ">= 0.7"
monitor: {window: 1h, min_labels: 30}
schedule:
  jobs:
    retrain: {triggers: [performance, drift]}  # no cron: a weekly run would fire mid-scenario
    monitor: {cron: "*/10 * * * *"}
retrain:
  window: 50d
  canary: {weight: 30, min_labels: 60, margin: 0.01, max_duration: 3d}
"""
TICK = timedelta(minutes=10)
ROWS = 3000


def write_loop_project(root: Path, *, now: pd.Timestamp) -> Project:
    """Regime 0 data from 120 to 60 days ago, and the loop's spec."""
    from mlprod.data import make_regime_table

    root.mkdir(parents=True, exist_ok=True)
    before = make_regime_table(ROWS, 1, start=now - pd.Timedelta(days=120),
                               end=now - pd.Timedelta(days=60), regime=0)  # fmt: skip
    before.to_csv(root / "accounts.csv", index=False)
    (root / "mlprod.yaml").write_text(SPEC, encoding="utf-8")
    return Project(root)


def change_regime(project: Project, *, now: pd.Timestamp, shuffle: bool = False) -> None:
    """The concept changes: regime 1 rows from 60 days ago to yesterday join the data.

    `shuffle` scrambles their labels: a deliberately bad challenger learns nothing.
    """
    from mlprod.data import make_regime_table

    after = make_regime_table(ROWS, 2, start=now - pd.Timedelta(days=60),
                              end=now - pd.Timedelta(days=1), regime=1)  # fmt: skip
    if shuffle:
        after["converted"] = np.random.default_rng(0).permutation(after["converted"].to_numpy())
    after.to_csv(project.root / "accounts.csv", mode="a", header=False, index=False)


@dataclass
class Traffic:
    """Live requests of the new regime to a real server, each followed by its outcome.

    Counts every request that did not get a 200, and every prediction by version.
    """

    url: str
    rows: pd.DataFrame
    failures: list[str] = field(default_factory=list)
    answered: int = 0
    by_version: dict[int, int] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    @classmethod
    def of_regime(cls, url: str, regime: int, rows: int = 40_000) -> Traffic:
        from mlprod.data import make_regime_table

        now = pd.Timestamp.now(tz="UTC")
        table = make_regime_table(
            rows, 7, start=now, end=now + pd.Timedelta(hours=1), regime=regime
        )
        return cls(url, table.drop(columns=["event_time"]))

    def start(self) -> None:
        self._thread = threading.Thread(target=self._send, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)

    def _send(self) -> None:
        labels = self.rows.pop("converted").tolist()
        records = self.rows.to_dict("records")
        outcomes: list[dict[str, Any]] = []
        with httpx.Client(timeout=10) as client:
            for record, label in zip(records, labels, strict=True):
                if self._stop.is_set():
                    break
                answer = self._predict(client, record)
                if answer is not None:
                    outcomes.append({"prediction_id": answer["id"], "label": bool(label)})
                if len(outcomes) >= 20:
                    client.post(self.url + "/v1/outcomes", json={"outcomes": outcomes})
                    outcomes = []
                time.sleep(0.005)

    def _predict(self, client: httpx.Client, record: dict[str, Any]) -> dict[str, Any] | None:
        try:
            answer = client.post(
                self.url + f"/v1/models/{MODEL}/predict", json={"records": [record]}
            )
        except httpx.HTTPError as exc:
            self.failures.append(f"{type(exc).__name__}: {exc}")
            return None
        if answer.status_code != 200:
            self.failures.append(f"{answer.status_code}: {answer.text[:200]}")
            return None
        prediction: dict[str, Any] = answer.json()["predictions"][0]
        self.answered += 1
        self.by_version[prediction["version"]] = self.by_version.get(prediction["version"], 0) + 1
        return prediction


def drive(
    scheduler: Any,
    clock: Any,
    until: Callable[[], bool],
    *,
    timeout: float = 600.0,
    explain: Callable[[], str] = lambda: "",
) -> int:
    """Tick the scheduler, moving the clock `TICK` each time, until `until()`; ticks taken.

    Between ticks the real server needs a moment to log predictions and match outcomes.
    `explain` says where the loop stands when it does not get there.
    """
    deadline = time.monotonic() + timeout
    ticks = 0
    while not until():
        if time.monotonic() >= deadline:
            raise AssertionError(
                f"the loop did not get there in {timeout:.0f} s ({ticks} ticks): {explain()}"
            )
        scheduler.tick()
        clock.advance(TICK)
        ticks += 1
        time.sleep(0.5)
    return ticks
