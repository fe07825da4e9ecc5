"""Tuning workers: they share the cores (their OpenMP threads sleep while they wait,
unless the user chose otherwise), and the coordinator shows the count they reached."""

from __future__ import annotations

import io
import time
from pathlib import Path

import numpy as np
import optuna
import pytest
from rich.console import Console

from mlprod._threads import WAIT_POLICY, wait_passively
from mlprod.pipelines._progress import Steps
from mlprod.pipelines._tuning import Experiment, _reap, _spawn, _tune_one
from mlprod.spec import CandidateSpec, TuningSpec
from mlprod.store import Store
from mlprod.training import (
    TuneTask,
    create_study,
    run_worker,
    search_space,
    study_name,
    tuning_folds,
)


def test_passive_waiting_never_overrides_a_choice() -> None:
    assert wait_passively({}) == {WAIT_POLICY: "PASSIVE"}
    assert wait_passively({WAIT_POLICY: "ACTIVE"}) == {WAIT_POLICY: "ACTIVE"}


@pytest.mark.parametrize(("ours", "theirs"), [(None, "PASSIVE"), ("ACTIVE", "ACTIVE")])
def test_spawned_workers_get_the_wait_policy(
    ours: str | None, theirs: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if ours is None:
        monkeypatch.delenv(WAIT_POLICY, raising=False)
    else:
        monkeypatch.setenv(WAIT_POLICY, ours)
    url = f"sqlite:///{tmp_path / 'meta.db'}"
    with Store.open(url) as store:
        experiment = Experiment(store, "no-such-run", url, workers=2)
        workers = _spawn(experiment, 1)
        try:
            ((process, _),) = workers
            environ = _environ(process.pid)
        finally:
            for process, _ in workers:
                process.kill()
            _reap(workers, Steps(quiet=True))
    assert f"{WAIT_POLICY}={theirs}".encode() in environ


def _environ(pid: int) -> list[bytes]:
    """A child's environment. Popen returns once the child's exec has begun; until the exec
    has laid out the new environment, the kernel shows an empty one."""
    deadline = time.monotonic() + 10
    while not (environ := Path(f"/proc/{pid}/environ").read_bytes()):
        if time.monotonic() > deadline:
            break
        time.sleep(0.005)
    return environ.split(b"\0")


def test_the_coordinator_shows_the_final_count_when_others_ran_the_last_trials() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 3))
    y = (X[:, 0] + rng.normal(size=300) > 0).astype(int)
    settings = TuningSpec(trials=3, folds=2, sampler="random")
    candidate = CandidateSpec(type="logistic_regression")
    task = TuneTask("logit", candidate, search_space(candidate), X, y,
                    tuning_folds(y, settings.folds, 0), settings, "roc_auc", 0)  # fmt: skip
    storage = optuna.storages.InMemoryStorage()
    run_worker(create_study(task, storage, study_name("run", "logit"), worker=1), task)
    shown = io.StringIO()
    steps = Steps(Console(file=shown, width=200))
    _, ran = _tune_one(task, storage, "run", 0, steps, coordinator=True)
    assert ran == 0  # the other worker used the whole budget
    (line,) = shown.getvalue().splitlines()
    assert "logit trial 3/3 settled, best 0." in line and "ETA 0s" in line
