"""Tuning inside a run: the coordinator (`mlprod tune`, `mlprod train`) and joiners.

The coordinator creates the run, starts ``workers - 1`` extra processes that join it,
tunes alongside them, waits until every trial has settled (a dead worker's trial is
retried, not lost), then fits each candidate with its best params. A joiner
(`mlprod tune --join RUN`, on this machine or another that reaches the same store and
data) rebuilds the same training matrix from the run's recorded spec and adds trials.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlprod._threads import wait_passively
from mlprod.errors import ConflictError, SpecError
from mlprod.pipelines._context import open_store
from mlprod.pipelines._prepare import Prepared, prepare, training_folds
from mlprod.pipelines._progress import Steps, TrialProgress
from mlprod.registry import get_run
from mlprod.settings import Settings
from mlprod.spec import CandidateSpec, ProjectSpec, parse_spec
from mlprod.store import Store
from mlprod.training import (
    TuneTask,
    candidate_names,
    create_study,
    describe_space,
    run_worker,
    search_space,
    study_name,
    study_storage,
    trial_rows,
    tuned_candidate,
    tuning_folds,
    uses_budget,
)

POLL_SECONDS = 0.5


@dataclass
class Experiment:
    """What a run needs beyond its spec to tune, and what tuning leaves to record."""

    store: Store
    run_id: str
    store_arg: str
    workers: int = 1
    heartbeat: int = 10
    trials: list[dict[str, Any]] = field(default_factory=list)
    summaries: dict[str, dict[str, Any]] = field(default_factory=dict)


def tuning_tasks(spec: ProjectSpec, data: Prepared) -> list[TuneTask]:
    """One task per candidate over the training rows only (never validation or test)."""
    assert spec.tuning is not None
    train_idx, cv_folds = training_folds(data.split)
    X, y = data.X[train_idx], data.y[train_idx]
    folds = cv_folds if cv_folds else tuning_folds(y, spec.tuning.folds, spec.seed)
    # multiclass trials optimise log loss unless the spec names a metric for them
    default = "log_loss" if len(data.classes) > 2 else spec.selection_metric
    metric = spec.tuning.metric or default
    names = candidate_names(spec.candidates)
    return [
        TuneTask(name, c, search_space(c, i), X, y, folds, spec.tuning, metric, spec.seed)
        for i, (name, c) in enumerate(zip(names, spec.candidates, strict=True))
    ]


def _tune_one(
    task: TuneTask, storage: Any, run_id: str, worker: int, steps: Steps, *, coordinator: bool
) -> tuple[Any, int]:
    """Run this process's share of one candidate's trials; returns (study, trials run)."""
    assert task.settings is not None
    study = create_study(task, storage, study_name(run_id, task.name), worker)
    progress = TrialProgress(steps, task.name, task.budget)
    shown = 0  # the count on the last line printed

    def report(done: list[Any], state: str) -> None:
        nonlocal shown
        values = [t.value for t in done if t.value is not None and t.state.name == "COMPLETE"]
        progress.update(len(done), max(values) if values else None, state)
        shown = len(done)

    def on_trial(study_: Any, trial: Any) -> None:
        report(_finished(study_), trial.state.name.lower())

    timeout = task.settings.timeout
    deadline = time.monotonic() + timeout if timeout else None
    outcome = run_worker(
        study, task, deadline=deadline, poll=POLL_SECONDS, on_trial=on_trial,
        wait_for_others=coordinator,
    )  # fmt: skip
    done = _finished(study)
    if coordinator and len(done) != shown:  # other workers ran the last trials
        report(done, "timed out" if outcome.stopped_by == "timeout" else "settled")
    return study, outcome.ran


def _finished(study: Any) -> list[Any]:
    """The study's finished trials, any worker's, that used budget (not lost, not surplus)."""
    return [t for t in study.get_trials(deepcopy=False) if t.state.is_finished() and uses_budget(t)]


def tune_candidates(
    spec: ProjectSpec, data: Prepared, experiment: Experiment, steps: Steps
) -> list[CandidateSpec]:
    """Tune every candidate with the other workers; the candidates with their best params."""
    tasks = tuning_tasks(spec, data)
    workers = _spawn(experiment, experiment.workers - 1)
    tuned: list[CandidateSpec] = []
    try:
        with study_storage(experiment.store, heartbeat=experiment.heartbeat) as storage:
            for task in tasks:
                steps(f"tuning {task.name}: {task.budget} trials, {len(task.folds)}-fold CV")
                study, _ = _tune_one(task, storage, experiment.run_id, 0, steps, coordinator=True)
                candidate, summary = tuned_candidate(task, study)
                experiment.trials.extend(trial_rows(task.name, study))
                experiment.summaries[task.name] = {**summary, "search": describe_space(task.space)}
                tuned.append(candidate)
    finally:
        _reap(workers, steps)
    return tuned


def _spawn(experiment: Experiment, count: int) -> list[tuple[subprocess.Popen[bytes], Any]]:
    """Start `count` joiners of this run as child processes, stderr kept for the record."""
    started = []
    env = wait_passively({**os.environ, "MLPROD_TUNE_HEARTBEAT": str(experiment.heartbeat)})
    for index in range(1, count + 1):
        log = tempfile.TemporaryFile()  # noqa: SIM115 - closed by _reap once the worker ends
        command = [sys.executable, "-m", "mlprod", "tune", "--join", experiment.run_id,
                   "--store", experiment.store_arg, "--worker", str(index)]  # fmt: skip
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log, env=env)
        started.append((process, log))
    return started


def _reap(workers: list[tuple[subprocess.Popen[bytes], Any]], steps: Steps) -> None:
    """Wait for the joiners (their budget is used once we are here); say if one failed."""
    for process, log in workers:
        try:
            code = process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.terminate()
            code = process.wait()
        if code != 0:
            log.seek(0)
            lines = log.read().decode(errors="replace").strip().splitlines()
            steps(f"a tuning worker exited with {code}: {lines[-1] if lines else 'no output'}")
        log.close()


def spec_from_run(recorded: dict[str, Any], origin: str) -> ProjectSpec:
    """The run's resolved spec as a ProjectSpec again (sources are already absolute)."""
    return parse_spec(recorded, base_dir=None, origin=origin)


def join_tuning(
    run_id: str,
    *,
    store: str | None = None,
    settings: Settings | None = None,
    worker: int | None = None,
    quiet: bool = True,
) -> int:
    """Add trials to a running run's studies until their budgets are used; returns how many.

    Example::

        mlprod.pipelines.join_tuning("3f9c2a1b", store="postgresql+psycopg://db/mlprod")
    """
    steps = Steps(quiet=quiet)
    settings = settings or Settings()
    meta, _ = open_store(store, settings)
    with meta:
        run = get_run(meta, run_id)
        if run.status != "running":
            raise ConflictError(
                f"run {run.id[:12]} is {run.status}; only a running run can be joined "
                "(start one with `mlprod tune`)"
            )
        spec = spec_from_run(run.spec, f"the spec of run {run.id[:12]}")
        if spec.tuning is None:
            raise SpecError(f"run {run.id[:12]} does not tune: its spec has no tuning section")
        data = prepare(spec, steps)
        index = worker if worker is not None else random.SystemRandom().randrange(1000, 10**6)
        ran = 0
        with study_storage(meta, heartbeat=settings.tune_heartbeat) as storage:
            for task in tuning_tasks(spec, data):
                _, count = _tune_one(task, storage, run.id, index, steps, coordinator=False)
                ran += count
    return ran


def store_argument(store: str | None, settings: Settings) -> str:
    """The --store value that lets a child process open the same store."""
    chosen = store if store is not None else settings.store
    return chosen if "://" in chosen else str(Path(chosen).expanduser().resolve())
