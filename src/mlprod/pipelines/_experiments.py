"""Going back to past runs: compare two, or re-run one with a few changes.

A run records its resolved spec (defaults included, sources made absolute), so a re-run
needs nothing but the run id; with no changes and the same data it reproduces the
parent's metrics exactly, because every random choice is seeded by the spec.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import yaml

from mlprod.errors import SpecError
from mlprod.evaluation import (
    compare_metrics,
    compare_multiclass_metrics,
    overlaid_curves,
    overlaid_multiclass,
    write_page,
)
from mlprod.pipelines._context import open_store
from mlprod.pipelines._train import TrainedRun, train
from mlprod.pipelines._tuning import spec_from_run
from mlprod.registry import RunRecord, get_run, get_version, open_version
from mlprod.settings import Settings

if TYPE_CHECKING:
    from plotly.graph_objects import Figure


def apply_changes(spec: dict[str, Any], changes: list[str]) -> dict[str, Any]:
    """`spec` with each ``dotted.key=value`` applied; values are read as YAML scalars.

    Example::

        apply_changes(run.spec, ["tuning.trials=100", "split.gap=14d"])
    """
    changed = copy.deepcopy(spec)
    for change in changes:
        key, sep, raw = change.partition("=")
        path = [part for part in key.strip().split(".") if part]
        if not sep or not path:
            raise SpecError(
                f"--set {change!r} must look like key.path=value, e.g. tuning.trials=50"
            )
        try:
            value = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError:
            raise SpecError(f"--set {change!r}: the value is not valid YAML") from None
        node = changed
        for part in path[:-1]:
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]
        node[path[-1]] = value
    return changed


def rerun(
    run_id: str,
    changes: list[str] | None = None,
    *,
    store: str | None = None,
    settings: Settings | None = None,
    quiet: bool = True,
    workers: int = 1,
) -> TrainedRun:
    """A new run from a past run's resolved spec with `changes`, linked to it as parent.

    Example::

        child = mlprod.pipelines.rerun("3f9c2a1b", ["tuning.trials=100"])
    """
    meta, _ = open_store(store, settings)
    with meta:
        parent = get_run(meta, run_id)
    resolved = apply_changes(parent.spec, list(changes or []))
    spec = spec_from_run(resolved, f"run {parent.id[:12]} with --set changes")
    return train(
        spec, store=store, settings=settings, quiet=quiet, parent_run_id=parent.id, workers=workers
    )


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        flat: dict[str, Any] = {}
        for key, item in value.items():
            flat.update(_flatten(item, f"{prefix}{key}."))
        return flat
    return {prefix.rstrip("."): value}


def config_diff(a: RunRecord, b: RunRecord) -> list[dict[str, Any]]:
    """Every spec or param key whose value differs between two runs."""
    rows = []
    for section in ("spec", "params"):
        left, right = _flatten(getattr(a, section)), _flatten(getattr(b, section))
        for key in sorted(set(left) | set(right)):
            if left.get(key) != right.get(key):
                rows.append({"key": f"{section}.{key}", "a": left.get(key), "b": right.get(key)})
    return rows


@dataclass(frozen=True)
class ScoredTestRows:
    """A version's held-out test rows, their labels and its scores on them.

    `y` holds positions in `classes` (0/1 for a binary version); `scores` is P(positive)
    per row, or the n x k class probabilities of a multiclass version.
    """

    frame: pd.DataFrame
    y: np.ndarray
    scores: np.ndarray
    threshold: float
    classes: list[Any]

    @property
    def multiclass(self) -> bool:
        """Three or more classes: compared on the multiclass metrics."""
        return len(self.classes) > 2


def version_test_scores(run: RunRecord, meta: Any, artifacts: Any) -> ScoredTestRows | None:
    """The run's version's test rows, labels, scores and threshold (None without a version)."""
    if run.version is None:
        return None
    model = open_version(artifacts, get_version(meta, run.model, run.version))
    frame, y = model.test_data()
    return ScoredTestRows(frame, y, model.score(frame), float(model.threshold), model.classes)


def _why_incomparable(scored: Sequence[ScoredTestRows]) -> str | None:
    """Why these runs' test metrics cannot be set side by side, or None when they can.

    Binary runs always can; multiclass runs when they share their classes, in order.
    """
    kinds = {s.multiclass for s in scored}
    if len(kinds) > 1:
        return "a binary run and a multiclass run have no test metric in common"
    classes = {tuple(str(c) for c in s.classes) for s in scored}
    if kinds == {True} and len(classes) > 1:
        shown = " vs ".join("(" + ", ".join(c) + ")" for c in sorted(classes))
        return f"the runs' versions have different classes: {shown}"
    return None


def comparison_charts(scored: Mapping[str, ScoredTestRows]) -> dict[str, Figure]:
    """The runs' test sets drawn together, each under its label.

    Binary runs: ROC and PR curves overlaid. Multiclass runs: confusion matrices side by
    side and each class's ROC curves overlaid. Empty when the runs are not comparable.
    """
    found = list(scored.values())
    if not found or _why_incomparable(found) is not None:
        return {}
    if found[0].multiclass:
        runs = {label: (s.y, s.scores) for label, s in scored.items()}
        return overlaid_multiclass(runs, found[0].classes)
    return overlaid_curves({label: (s.y, s.scores) for label, s in scored.items()})


def compare_runs(
    a: str,
    b: str,
    *,
    output: str | Path | None = None,
    store: str | None = None,
    settings: Settings | None = None,
) -> dict[str, Any]:
    """Config diff, metric deltas (b - a) with 95% intervals, and an HTML page with both
    runs' test sets drawn together (written to `output` when given).

    Binary runs: the binary metrics at each run's threshold, ROC and PR curves overlaid.
    Multiclass runs: accuracy, macro and weighted F1, macro ROC AUC, log loss and every
    class's precision and recall, confusion matrices and per-class ROC curves. The
    interval is paired when both runs were tested on the same rows. Runs whose test
    metrics differ in kind (binary and multiclass, other classes) get no metric rows but a
    ``note`` saying why.
    """
    meta, artifacts = open_store(store, settings)
    with meta:
        run_a, run_b = get_run(meta, a), get_run(meta, b)
        scored_a, scored_b = (
            version_test_scores(run_a, meta, artifacts),
            version_test_scores(run_b, meta, artifacts),
        )
    result: dict[str, Any] = {"a": run_a.id, "b": run_b.id, "config": config_diff(run_a, run_b)}
    metrics: list[dict[str, object]] = []
    if scored_a is not None and scored_b is not None:
        note = _why_incomparable([scored_a, scored_b])
        if note is not None:
            result["note"] = note
        else:
            metrics = _metric_rows(scored_a, scored_b)
    result["metrics"] = metrics
    if output is not None:
        result["report"] = str(
            _write_comparison(Path(output), run_a, run_b, result, scored_a, scored_b)
        )
    return result


def _metric_rows(a: ScoredTestRows, b: ScoredTestRows) -> list[dict[str, object]]:
    paired = bool(np.array_equal(a.y, b.y) and a.frame.equals(b.frame))
    if a.multiclass:
        return compare_multiclass_metrics(
            (a.y, a.scores), (b.y, b.scores), a.classes, paired=paired
        )
    return compare_metrics(
        (a.y, a.scores, a.threshold), (b.y, b.scores, b.threshold), paired=paired
    )


def _write_comparison(
    output: Path,
    run_a: RunRecord,
    run_b: RunRecord,
    result: dict[str, Any],
    *scored: ScoredTestRows | None,
) -> Path:
    labels = {"a": f"a: {run_a.id[:8]}", "b": f"b: {run_b.id[:8]}"}
    drawn = {labels[key]: s for key, s in zip("ab", scored, strict=True) if s is not None}
    summary = {labels[key]: _describe(run) for key, run in (("a", run_a), ("b", run_b))}
    no_metrics = [{"metric": "-", "note": result.get("note", "a run has no version")}]
    no_changes = [{"key": "-", "a": "same", "b": "same"}]
    tables = [
        {
            "title": "Metric deltas",
            "rows": result["metrics"] or no_metrics,
            "note": "delta = b - a on the test sets, with a 95% bootstrap interval.",
        },
        {"title": "Configuration differences", "rows": result["config"] or no_changes},
    ]
    charts = comparison_charts(drawn)
    return write_page(output, title="Run comparison", summary=summary, tables=tables, charts=charts)


def _describe(run: RunRecord) -> str:
    when = run.started_at.strftime("%Y-%m-%d %H:%M")
    return f"{run.model}@{run.version or '-'} ({run.status}, {when})"
