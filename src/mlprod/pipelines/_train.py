"""``mlprod.train``: spec to registered, gated version, in one call.

data -> features -> split -> candidates -> threshold (validation) -> evaluation (test)
-> gates -> bundle -> registry. A run row is written first and closed last, so a failed
or killed run is visible, and the version row is the commit point: a run killed before
it leaves no version behind.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlprod.bundle import REPORT, Manifest, bundle_files, write_bundle
from mlprod.data import DataCache
from mlprod.errors import MlprodError
from mlprod.evaluation import (
    GateResult,
    MetricValue,
    build_charts,
    build_multiclass_charts,
    check_gates,
    choose_threshold,
    experiment_charts,
    telemetry_charts,
    write_report,
)
from mlprod.features import build_signature, check_contract
from mlprod.monitoring import build_reference
from mlprod.pipelines._candidates import add_ensemble, candidate_curves
from mlprod.pipelines._context import git_commit, library_versions, open_store
from mlprod.pipelines._final import (
    describe_effect,
    final_fit,
    final_fit_effect,
    held_out_metrics,
    live_curves,
)
from mlprod.pipelines._multiclass import (
    NO_THRESHOLD,
    is_multiclass,
    multiclass_metrics,
    reference_scores,
    refuse_unsupported,
)
from mlprod.pipelines._prepare import prepare, training_folds
from mlprod.pipelines._progress import Steps
from mlprod.pipelines._tuning import Experiment, store_argument, tune_candidates
from mlprod.registry import (
    VersionRecord,
    create_run,
    finish_run,
    record_curves,
    record_trials,
    register_version,
)
from mlprod.settings import Settings
from mlprod.spec import CandidateSpec, ProjectSpec, load_spec
from mlprod.training import (
    CandidateResult,
    class_scores,
    feature_importance,
    fit_cross_validated,
    fit_holdout,
    pick_winner,
)


@dataclass
class TrainedRun:
    """What a training run produced: the run id, the registered version and its evidence."""

    id: str
    model: str
    version: int
    metrics: dict[str, MetricValue]
    gates: list[GateResult]
    threshold: float
    winner: str
    candidates: list[dict[str, Any]] = field(default_factory=list)
    report: Path | None = None
    target: str | None = None  # the predicted column
    positive: Any = None  # the target's value that counts as positive (what scores estimate)
    classes: list[Any] = field(default_factory=list)  # every class, in the probabilities' order

    @property
    def gates_passed(self) -> bool:
        return all(gate.passed for gate in self.gates)


def train(
    spec: str | Path | ProjectSpec = "mlprod.yaml",
    *,
    store: str | None = None,
    settings: Settings | None = None,
    quiet: bool = True,
    parent_run_id: str | None = None,
    workers: int = 1,
) -> TrainedRun:
    """Train, evaluate, gate and register a model from its spec.

    `store` (a folder or SQLAlchemy URL) beats ``MLPROD_STORE``; the default is
    ``.mlprod/`` in the working directory. With a ``tuning:`` section, `workers`
    processes (this one and ``workers - 1`` children) share each candidate's study.

    Example::

        run = mlprod.train("mlprod.yaml")
        run.version, run.metrics["roc_auc"].value, run.gates_passed
    """
    folder = Path.cwd()
    if not isinstance(spec, ProjectSpec):
        folder = Path(spec).resolve().parent if not Path(spec).is_dir() else Path(spec).resolve()
        spec = load_spec(spec)
    steps = Steps(quiet=quiet)
    settings = settings or Settings()
    meta, artifacts = open_store(store, settings)
    run_id = create_run(
        meta,
        spec.name,
        user=settings.user,
        spec=spec.resolved(),
        git_commit=git_commit(folder),
        library_versions=library_versions(),
        parent_run_id=parent_run_id,
    )
    experiment = Experiment(
        meta, run_id, store_argument(store, settings), workers, settings.tune_heartbeat
    )
    cache = DataCache.open(settings.cache, prefix=settings.redis_prefix) if settings.cache else None
    try:
        with steps.live(f"training {spec.name}"), tempfile.TemporaryDirectory() as tmp:
            outcome = _run(spec, experiment, Path(tmp), steps, cache)
            record_trials(meta, run_id, experiment.trials)
            record_curves(meta, run_id, outcome.curves)
            steps("storing the bundle")
            bundle_id = artifacts.put_dir(Path(tmp) / "bundle")
            files = bundle_files(artifacts.path(bundle_id))  # hashed as stored, kept apart
            version = register_version(
                meta, spec.name, bundle_id=bundle_id, files=files, **outcome.registration
            )
            finish_run(meta, run_id, status="finished", version=version.version, **outcome.record)
    except (MlprodError, KeyboardInterrupt) as exc:
        finish_run(meta, run_id, status="failed", error=str(exc) or type(exc).__name__)
        meta.close()
        raise
    finally:
        if cache is not None:
            cache.close()
    meta.close()
    steps(f"registered {spec.name}@{version.version}")
    return outcome.result(run_id, version, artifacts.path(bundle_id) / "report.html")


@dataclass
class _Outcome:
    registration: dict[str, Any]
    record: dict[str, Any]
    metrics: dict[str, MetricValue]
    gates: list[GateResult]
    threshold: float
    winner: str
    candidates: list[dict[str, Any]]
    curves: dict[str, dict[str, Any]] = field(default_factory=dict)

    def result(self, run_id: str, version: VersionRecord, report: Path) -> TrainedRun:
        classes = list(version.signature.get("classes") or [])
        return TrainedRun(
            id=run_id,
            model=version.model,
            version=version.version,
            metrics=self.metrics,
            gates=self.gates,
            threshold=self.threshold,
            winner=self.winner,
            candidates=self.candidates,
            report=report,
            target=version.signature.get("target"),
            positive=classes[-1] if len(classes) == 2 else None,
            classes=classes,
        )


def _run(
    spec: ProjectSpec, experiment: Experiment, tmp: Path, steps: Steps, cache: DataCache | None
) -> _Outcome:
    run_id = experiment.run_id
    data = prepare(spec, steps, cache=cache)
    df, y, classes, kinds, print_ = data.df, data.y, data.classes, data.kinds, data.fingerprint
    split, transformer, X = data.split, data.transformer, data.X
    if spec.interface is not None:  # refuse before any fitting: the contract comes first
        around = [c for c in (spec.data.entity, spec.data.time, spec.aggregate_key()) if c]
        computed = data.plan.names() if data.plan is not None else ()
        check_contract(spec.interface, kinds, classes, context=around, computed=computed)
    refuse_unsupported(spec, classes)
    to_fit = spec.candidates
    if spec.tuning is not None:
        to_fit = tune_candidates(spec, data, experiment, steps)
    winner, results, y_val, val_scores = _select(spec, to_fit, X, y, split, steps, experiment)
    curves = candidate_curves(spec, results, X, y, split)

    threshold = _threshold(spec, classes, y_val, val_scores, steps)
    y_test = y[split.test]
    steps(f"evaluating {winner.name} on {len(split.test):,} test rows")
    test_scores = class_scores(winner.estimator, X[split.test])
    metrics = _test_metrics(spec, classes, y_test, test_scores, threshold)
    effect: dict[str, dict[str, float]] = {}
    if final_fit(spec, winner, X, y, split, steps):
        selected = metrics
        test_scores = class_scores(winner.estimator, X[split.test])
        metrics = _test_metrics(spec, classes, y_test, test_scores, threshold)
        effect = final_fit_effect(selected, metrics)
    gates = check_gates(metrics, spec.gates)
    held_out = split.validation if len(split.validation) else split.train  # cv: no holdout left
    importance = feature_importance(
        winner.estimator, data.names, data.source, X[held_out], y[held_out]
    )

    steps("writing the bundle and report")
    signature = build_signature(
        df,
        kinds,
        target=spec.data.target,
        classes=classes,
        entity=spec.data.entity,
        time=spec.data.time,
    )
    if data.plan is not None:  # the server looks these up; the skew check recomputes them
        signature["online"] = data.plan.document()
    if spec.interface is not None:  # the server enforces it, the OpenAPI document shows it
        signature["interface"] = spec.interface.model_dump(mode="json")
    test_frame = df.iloc[split.test][list(kinds)].reset_index(drop=True)
    candidates = [{**r.summary(), **experiment.summaries.get(r.name, {})} for r in results]
    context = {
        "spec": spec,
        "run_id": run_id,
        "winner": winner,
        "threshold": threshold,
        "signature": signature,
        "metrics": metrics,
        "gates": gates,
        "importance": importance,
        "fingerprint": print_.model_dump(mode="json"),
        "candidates": candidates,
        "curves": curves,
        "final_fit": describe_effect(effect, spec.selection_metric) if effect else "train",
        "split": split,
        "reference": build_reference(
            df.iloc[split.train],
            kinds,
            *_reference_scores(test_scores, y_test),
            predicted=_predicted_classes(test_scores, classes),
        ),
        "classes": classes,
        "experiment": experiment_charts(
            experiment.trials, experiment.summaries, curves, [r.summary() for r in results]
        ),
    }
    bundle = tmp / "bundle"
    bundle.mkdir()
    manifest = _write_bundle(bundle, transformer, test_frame, y_test, test_scores, context)
    params = {"model": winner.type, "winner": winner.name, **_plain_params(winner.estimator)}
    metric_values = {name: m.model_dump() for name, m in metrics.items()}
    gate_rows = [g.model_dump() for g in gates]
    return _Outcome(
        registration={
            "run_id": run_id,
            "flavor": manifest.flavor,
            "metrics": metric_values,
            "gates": gate_rows,
            "gates_passed": all(g.passed for g in gates),
            "signature": signature,
            "threshold": threshold,
        },
        record={
            "params": {
                **params,
                "threshold": threshold,
                "features": dict(kinds),
                "split": _split_facts(split),
                # test metrics of the selected model (train) and of its refit
                "final_fit": effect or spec.training.final_fit,
            },
            "metrics": {**metric_values, "validation": winner.validation_score},
            "fingerprint": print_.model_dump(mode="json"),
            "candidates": candidates,
        },
        metrics=metrics,
        gates=gates,
        threshold=threshold,
        winner=winner.name,
        candidates=candidates,
        curves=curves,
    )


def _threshold(
    spec: ProjectSpec, classes: list[Any], y_val: np.ndarray, scores: np.ndarray, steps: Steps
) -> float:
    """The spec's threshold policy on validation data; none for multiclass (the argmax)."""
    if is_multiclass(classes):
        return NO_THRESHOLD
    steps("choosing the threshold on validation data")
    matrix = spec.value.matrix() if spec.value is not None else None
    return choose_threshold(
        y_val, scores, spec.threshold.policy, spec.threshold.value, matrix=matrix
    )


def _test_metrics(
    spec: ProjectSpec, classes: list[Any], y: np.ndarray, scores: np.ndarray, threshold: float
) -> dict[str, MetricValue]:
    """The held-out metrics of a binary or a multiclass model, with intervals."""
    if is_multiclass(classes):
        return multiclass_metrics(y, scores, classes)
    return held_out_metrics(spec, y, scores, threshold)


def _select(
    spec: ProjectSpec,
    candidates: list[CandidateSpec],
    X: np.ndarray,
    y: np.ndarray,
    split: Any,
    steps: Steps,
    experiment: Experiment,
) -> tuple[CandidateResult, list[CandidateResult], np.ndarray, np.ndarray]:
    """Fit the candidates; return the winner and the labels/scores to set the threshold on."""
    metric = spec.selection_metric
    if spec.split.method == "cv":
        train_idx, folds = training_folds(split)
        results = fit_cross_validated(
            candidates,
            X[train_idx],
            y[train_idx],
            folds,
            metric=metric,
            seed=spec.seed,
            progress=steps,
            on_epoch=live_curves(experiment.store, experiment.run_id),
        )
        results = add_ensemble(spec, results, X, y, split)
        winner = pick_winner(results)
        steps(f"refitting {winner.name} on all {len(train_idx):,} training rows")
        winner.estimator.fit(X[train_idx], y[train_idx])
        return winner, results, y[train_idx], winner.validation_scores
    training = spec.training
    results = fit_holdout(
        candidates,
        X[split.train],
        y[split.train],
        X[split.validation],
        y[split.validation],
        metric=metric,
        seed=spec.seed,
        progress=steps,
        spark=(training.master, training.workers) if training.engine == "spark" else None,
        on_epoch=live_curves(experiment.store, experiment.run_id),
    )
    results = add_ensemble(spec, results, X, y, split)
    winner = pick_winner(results)
    return winner, results, y[split.validation], winner.validation_scores


def _write_bundle(
    bundle: Path,
    transformer: Any,
    test_frame: pd.DataFrame,
    y_test: np.ndarray,
    test_scores: np.ndarray,
    ctx: dict[str, Any],
) -> Manifest:
    """The report first (it is sealed with the rest), then every other file and the seal."""
    spec: ProjectSpec = ctx["spec"]
    if test_scores.ndim == 2:
        evaluated = build_multiclass_charts(y_test, test_scores, ctx["classes"], ctx["importance"])
    else:
        evaluated = build_charts(y_test, test_scores, ctx["threshold"], ctx["importance"])
    charts = {**evaluated, **ctx["experiment"]}
    for name, curve in ctx["curves"].items():
        charts.update(telemetry_charts(name, curve))
    summary = {
        "model": spec.name,
        "run": ctx["run_id"],
        "winner": ctx["winner"].name,
        "threshold": round(ctx["threshold"], 6),
        "split": spec.split.method,
        "rows (train / validation / test)": " / ".join(
            f"{len(part):,}"
            for part in (ctx["split"].train, ctx["split"].validation, ctx["split"].test)
        ),
        "data sha256": ctx["fingerprint"]["sha256"][:16],
        "final fit": ctx["final_fit"],
    }
    if test_scores.ndim == 2:  # no threshold: the label is the most probable class
        del summary["threshold"]
        summary["classes"] = ", ".join(str(c) for c in ctx["classes"])
        summary["label"] = "the most probable class"
    if spec.value is not None:
        value = ctx["metrics"]["value"]
        summary["business value (test)"] = (
            f"{value.value:,.2f} {spec.value.unit} (95% CI {value.low:,.2f} to {value.high:,.2f})"
        )
    write_report(
        bundle / REPORT,
        title=f"{spec.name}: training report",
        summary=summary,
        metrics=ctx["metrics"],
        gates=ctx["gates"],
        charts=charts,
        candidates=ctx["candidates"],
    )
    return write_bundle(
        bundle,
        name=spec.name,
        run_id=ctx["run_id"],
        transformer=transformer,
        estimator=ctx["winner"].estimator,
        threshold=ctx["threshold"],
        signature=ctx["signature"],
        test_frame=test_frame,
        y_test=y_test,
        expected_scores=test_scores,
        metrics={name: m.model_dump() for name, m in ctx["metrics"].items()},
        reference=ctx["reference"],
        importance=ctx["importance"],
        libraries=library_versions(),
    )


def _reference_scores(scores: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """What the monitoring reference bins: P(positive) and labels, or the top class's."""
    return reference_scores(scores, y) if scores.ndim == 2 else (scores, y)


def _predicted_classes(scores: np.ndarray, classes: list[Any]) -> list[Any] | None:
    """A multiclass version's predicted class per test row (None for a binary one)."""
    if scores.ndim != 2:
        return None
    return [classes[i] for i in np.argmax(scores, axis=1)]


def _split_facts(split: Any) -> dict[str, Any]:
    """Sizes and time boundaries of the split, so leakage can be audited later."""
    return {
        "train_rows": len(split.train),
        "validation_rows": len(split.validation),
        "test_rows": len(split.test),
        "folds": len(split.folds),
        "test_start": split.test_start.isoformat() if split.test_start is not None else None,
        "train_end": split.train_end.isoformat() if split.train_end is not None else None,
    }


def _plain_params(estimator: Any) -> dict[str, Any]:
    final = estimator.steps[-1][1] if hasattr(estimator, "steps") else estimator
    return {
        key: value
        for key, value in final.get_params(deep=False).items()
        if isinstance(value, str | int | float | bool) or value is None
    }
