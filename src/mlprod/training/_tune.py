"""Tuning with Optuna: cross-validated trials on training rows, shared by many workers.

One study per candidate, held in the store's Optuna storage, so any number of processes
(`mlprod tune --workers N`, `mlprod tune --join RUN` on other machines) add trials to it.
Each worker runs one trial at a time through ``study.optimize``, which keeps a heartbeat;
a worker that dies leaves a stale trial that the next worker fails and re-queues with the
same params (a retry, never a second count). The budget counts finished, running and
queued trials, so workers together run exactly `trials` trials per candidate.

Only training rows reach this module: the caller passes them and nothing else.
"""

from __future__ import annotations

import inspect
import logging
import math
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC
from typing import Any

import numpy as np
from sklearn.model_selection import StratifiedKFold, train_test_split

from mlprod.spec import CandidateSpec, Dimension, TuningSpec
from mlprod.training._catalogue import make_estimator
from mlprod.training._fit import class_scores, multiclass_metric, selection_score
from mlprod.training._space import grid, sample

log = logging.getLogger("mlprod.training")

MAX_ROUNDS = 1000
EARLY_STOPPING_SHARE = 0.15
ROUNDS_PARAM = {"lightgbm": "n_estimators", "xgboost": "n_estimators", "hist_gbm": "max_iter"}
_MODEL_ERRORS = (ValueError, ArithmeticError, MemoryError)
Folds = Sequence[tuple[np.ndarray, np.ndarray]]
TrialCallback = Callable[[Any, Any], None]


@contextmanager
def quiet_optuna() -> Iterator[None]:
    """Optuna's experimental-API warnings and INFO logs are noise for our users."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        yield


class _SkippedError(Exception):
    """A trial that must not run: beyond the budget, or its model failed to fit."""


@dataclass
class TuneTask:
    """One candidate's tuning problem: a space, training rows and the folds over them."""

    name: str
    candidate: CandidateSpec
    space: dict[str, Dimension]
    X: np.ndarray
    y: np.ndarray
    folds: Folds
    settings: TuningSpec
    metric: str
    seed: int

    @property
    def budget(self) -> int:
        """Trials to run: the spec's count, or the grid's size when that is smaller."""
        if self.settings.sampler == "grid":
            size = math.prod(len(values) for values in grid(self.space).values())
            return min(self.settings.trials, max(size, 1))
        return self.settings.trials


def tuning_folds(y: np.ndarray, folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stratified folds over the training rows (positions into `y`)."""
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    return [(fit, val) for fit, val in splitter.split(np.zeros(len(y)), y)]


def fit_early_stopped(
    kind: str, estimator: Any, X: np.ndarray, y: np.ndarray, rounds: int, seed: int
) -> tuple[Any, int | None]:
    """Fit `estimator`; boosters stop early on a slice carved from these rows only.

    Returns the fitted estimator and the number of rounds it kept (None for others).
    """
    if kind not in ROUNDS_PARAM:
        return estimator.fit(X, y), None
    if kind == "hist_gbm":  # carves its own validation slice from X, the training rows
        estimator.set_params(
            early_stopping=True,
            n_iter_no_change=rounds,
            validation_fraction=EARLY_STOPPING_SHARE,
        )
        estimator.fit(X, y)
        return estimator, int(estimator.n_iter_)
    fit, stop = train_test_split(
        np.arange(len(y)), test_size=EARLY_STOPPING_SHARE, stratify=y, random_state=seed
    )
    if kind == "lightgbm":
        import lightgbm

        stopper = lightgbm.early_stopping(rounds, verbose=False)
        # LightGBM 4.7 renamed eval_set to eval_X/eval_y; older ones only know eval_set
        if "eval_X" in inspect.signature(estimator.fit).parameters:
            evals: dict[str, Any] = {"eval_X": (X[stop],), "eval_y": (y[stop],)}
        else:
            evals = {"eval_set": [(X[stop], y[stop])]}
        estimator.fit(X[fit], y[fit], callbacks=[stopper], **evals)
        kept = estimator.best_iteration_ or estimator.n_estimators
        return estimator, int(kept)
    multiclass_metric(estimator, y)
    estimator.set_params(early_stopping_rounds=rounds)
    estimator.fit(X[fit], y[fit], eval_set=[(X[stop], y[stop])], verbose=False)
    return estimator, int(estimator.best_iteration) + 1


def _trial_params(task: TuneTask, sampled: dict[str, Any]) -> dict[str, Any]:
    params = {**task.candidate.params, **sampled}
    key = ROUNDS_PARAM.get(task.candidate.type)
    if key is not None and key not in params:
        params[key] = MAX_ROUNDS
    return params


def _score_folds(trial: Any, task: TuneTask, params: dict[str, Any]) -> float:
    """Mean out-of-fold score, reported fold by fold so hopeless trials are pruned."""
    import optuna

    scores: list[float] = []
    kept: list[int] = []
    for step, (fit_idx, val_idx) in enumerate(task.folds):
        estimator = make_estimator(task.candidate.type, params, task.seed)
        rounds = task.settings.early_stopping_rounds
        estimator, stopped = fit_early_stopped(
            task.candidate.type, estimator, task.X[fit_idx], task.y[fit_idx], rounds, task.seed
        )
        proba = class_scores(estimator, task.X[val_idx])
        scores.append(selection_score(task.metric, task.y[val_idx], proba))
        if stopped is not None:
            kept.append(stopped)
        trial.set_user_attr("fold_scores", scores)
        trial.report(float(np.mean(scores)), step)
        if step + 1 < len(task.folds) and trial.should_prune():
            raise optuna.TrialPruned()
    if kept:
        trial.set_user_attr("best_iteration", round(float(np.mean(kept))))
    return float(np.mean(scores))


def uses_budget(trial: Any) -> bool:
    """Whether a trial uses budget: a killed worker's trial and surplus ones do not."""
    from optuna.trial import TrialState

    if trial.state != TrialState.FAIL:
        return True
    return "error" in trial.user_attrs and not trial.user_attrs.get("surplus")


def make_objective(task: TuneTask) -> Callable[[Any], float]:
    """The Optuna objective for `task`; the first thing it does is claim a budget slot."""

    def objective(trial: Any) -> float:
        trials = trial.study.get_trials(deepcopy=False)
        ahead = sum(1 for t in trials if uses_budget(t) and t.number < trial.number)
        if ahead >= task.budget:
            trial.set_user_attr("surplus", True)
            raise _SkippedError("budget already used by other workers")
        params = _trial_params(task, sample(trial, task.space))
        try:
            return _score_folds(trial, task, params)
        except _MODEL_ERRORS as exc:
            trial.set_user_attr("error", f"{type(exc).__name__}: {exc}")
            raise _SkippedError(str(exc)) from exc

    return objective


def create_study(task: TuneTask, storage: Any, study_name: str, worker: int) -> Any:
    """Create or load the candidate's study; each worker seeds its sampler differently."""
    import optuna

    seed = (task.seed + 7919 * worker) % 2**32
    sampler: Any
    if task.settings.sampler == "grid":
        sampler = optuna.samplers.GridSampler(grid(task.space), seed=seed)
    elif task.settings.sampler == "random":
        sampler = optuna.samplers.RandomSampler(seed=seed)
    else:
        startup = max(2, min(10, task.budget // 3))
        sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup)
    pruner: Any = (
        optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1)
        if task.settings.pruning
        else optuna.pruners.NopPruner()
    )
    with quiet_optuna():
        return optuna.create_study(
            storage=storage,
            study_name=study_name,
            direction="maximize",
            sampler=sampler,
            pruner=pruner,
            load_if_exists=True,
        )


@dataclass
class WorkerOutcome:
    """What one worker did for one study."""

    ran: int = 0
    stopped_by: str = "budget"
    finished: list[Any] = field(default_factory=list)
    overtaken: int = 0  # trials another worker failed as stale while this one ran them


def run_worker(
    study: Any,
    task: TuneTask,
    *,
    deadline: float | None = None,
    poll: float = 1.0,
    on_trial: TrialCallback | None = None,
    wait_for_others: bool = False,
) -> WorkerOutcome:
    """Run trials until the study's budget is used (or `deadline`, a monotonic time).

    With `wait_for_others` the worker then waits until no trial is running anywhere,
    failing stale ones so their retries run here: the coordinator reads a settled study.
    A trial another worker failed under this one (`overtaken`) is left to its retry.
    """
    from optuna import TrialPruned
    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.trial import TrialState

    outcome = WorkerOutcome()
    objective = make_objective(task)
    ended: list[int] = []  # the id of the trial whose objective just ended as designed
    told: list[bool] = []  # Optuna stored that trial's result (its callbacks run after)

    def tracked(trial: Any) -> float:
        try:
            value = objective(trial)
        except (TrialPruned, _SkippedError, UpdateFinishedTrialError):  # the last: failed under it
            ended.append(trial._trial_id)
            raise
        ended.append(trial._trial_id)
        return value

    def finished(study_: Any, trial: Any) -> None:
        told.append(True)
        outcome.finished.append(trial)
        if on_trial is not None and not trial.user_attrs.get("surplus"):
            on_trial(study_, trial)

    with quiet_optuna():
        while True:
            _fail_stale(study)
            trials = study.get_trials(deepcopy=False)
            used = sum(1 for t in trials if uses_budget(t))
            waiting = any(t.state == TrialState.WAITING for t in trials)
            running = any(t.state == TrialState.RUNNING for t in trials)
            late = deadline is not None and time.monotonic() >= deadline
            if late or (used >= task.budget and not waiting):
                if late:
                    outcome.stopped_by = "timeout"
                if not (wait_for_others and running):
                    return outcome
                time.sleep(poll)
                continue
            ended.clear()
            told.clear()
            try:
                study.optimize(tracked, n_trials=1, catch=(_SkippedError,), callbacks=[finished])
            # Optuna refuses to store a result for a trial that is no longer running: a
            # ValueError, which its own clean-up turns into an AssertionError
            except (ValueError, AssertionError, UpdateFinishedTrialError):
                if told or not ended or not _failed_meanwhile(study, ended[0]):
                    raise
                outcome.overtaken += 1
                log.warning(
                    "a trial of %s was failed as stale by another worker while this one ran "
                    "it (a starved process?); its retry runs instead",
                    task.name,
                )
                continue
            outcome.ran += 1


def _failed_meanwhile(study: Any, trial_id: int) -> bool:
    """Whether the trial this worker ran has been failed meanwhile, which only another
    worker does: one starved past its heartbeats' grace (a loaded machine, a paused VM)
    still finishes its trial, but by then another has failed it as stale and queued a
    retry with the same params. Optuna refuses the late result; nothing is lost, so the
    worker carries on instead of dying."""
    from optuna.trial import TrialState

    return bool(study._storage.get_trial(trial_id).state == TrialState.FAIL)


def _fail_stale(study: Any) -> None:
    from optuna.storages import fail_stale_trials

    _adopt_silent(study)
    fail_stale_trials(study)


def _adopt_silent(study: Any) -> None:
    """Beat once for running trials that never beat, so they can go stale and be retried.

    Optuna only fails trials whose heartbeat went quiet: a worker killed between creating
    its trial and its first beat would leave that trial running forever. A live worker
    beats within moments, so a trial silent for a whole grace period has no worker.
    """
    from datetime import datetime

    import sqlalchemy as sa
    from optuna.trial import TrialState

    # the study's RDB storage, behind Optuna's cache wrapper; there is no public accessor
    storage = getattr(study._storage, "_backend", study._storage)
    engine = getattr(storage, "engine", None)
    grace = getattr(storage, "grace_period", None)
    if engine is None or grace is None:
        return
    now = datetime.now()  # Optuna's own clock: naive local time
    silent = {
        t._trial_id: t
        for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        if t.datetime_start is not None and (now - t.datetime_start).total_seconds() > grace
    }
    if not silent:
        return
    query = sa.text("SELECT trial_id FROM trial_heartbeats WHERE trial_id IN :ids").bindparams(
        sa.bindparam("ids", expanding=True)
    )
    with engine.connect() as conn:
        beating = set(conn.execute(query, {"ids": list(silent)}).scalars())
    for trial_id in set(silent) - beating:
        storage.record_heartbeat(trial_id)


def tuned_candidate(task: TuneTask, study: Any) -> tuple[CandidateSpec, dict[str, Any]]:
    """The candidate with its best trial's params, and a summary of its tuning.

    A candidate with no complete trial keeps its own params; the summary says why.
    """
    from optuna.trial import TrialState

    complete = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE]
    summary: dict[str, Any] = {
        "trials": sum(1 for t in study.get_trials(deepcopy=False) if uses_budget(t)),
        "pruned": sum(1 for t in study.get_trials(deepcopy=False) if t.state == TrialState.PRUNED),
    }
    if not complete:
        summary["note"] = "no trial completed; the candidate keeps its own params"
        return task.candidate, summary
    best = max(complete, key=lambda t: (t.value, -t.number))
    params = {**task.candidate.params, **best.params}
    key = ROUNDS_PARAM.get(task.candidate.type)
    if key is not None and "best_iteration" in best.user_attrs:
        params[key] = int(best.user_attrs["best_iteration"])
    summary.update(
        best_trial=best.number,
        best_value=float(best.value),
        best_params=params,
        param_importance=param_importance(study),
    )
    return task.candidate.model_copy(update={"params": params}), summary


def param_importance(study: Any) -> dict[str, float]:
    """fANOVA importance of each tuned parameter; empty when there is too little to tell."""
    import optuna

    try:
        with quiet_optuna():
            found = optuna.importance.get_param_importances(study)
    except (ValueError, RuntimeError, ZeroDivisionError):
        return {}
    return {name: round(float(value), 6) for name, value in found.items()}


def trial_rows(candidate: str, study: Any) -> list[dict[str, Any]]:
    """Every trial that used budget, or was lost to a dead worker, as plain data."""
    rows = []
    for trial in study.get_trials(deepcopy=False):
        if trial.user_attrs.get("surplus"):
            continue
        # Optuna keeps naive local times; the store keeps aware UTC ones
        started = trial.datetime_start.astimezone(UTC) if trial.datetime_start else None
        ended = trial.datetime_complete.astimezone(UTC) if trial.datetime_complete else None
        rows.append(
            {
                "candidate": candidate,
                "number": trial.number,
                "state": trial.state.name.lower(),
                "value": trial.value,
                "params": dict(trial.params),
                "fold_scores": list(trial.user_attrs.get("fold_scores", [])),
                "best_iteration": trial.user_attrs.get("best_iteration"),
                "error": trial.user_attrs.get("error"),
                "retry_of": trial.system_attrs.get("failed_trial"),
                "started_at": started,
                "finished_at": ended,
                "seconds": (ended - started).total_seconds() if started and ended else None,
            }
        )
    return rows
