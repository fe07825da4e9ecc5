"""Retraining and the decision: a challenger fitted on the newest data meets the champion.

1. The challenger is trained on the newest ``retrain.window`` of the time column and must
   pass its gates, like any version.
2. Champion and challenger score the same labelled rows: live predictions of the champion
   joined to their outcomes when there are enough (the challenger is then trained only on
   rows before the first of them, so it never saw them), else the challenger's own fresh
   time-split holdout.
3. The challenger wins when the paired interval of the difference says it is not worse
   than the champion by more than ``retrain.margin``; it then goes to canary.

A multiclass champion is compared on a multiclass metric (roc_auc, log_loss or macro_f1)
on the challenger's holdout: a live outcome says whether an answer was right, not which
class the row was, so live rows cannot score the other version. A challenger whose
classes differ from the champion's is refused, since no metric spans both.

Every decision is recorded with its figures, audited through the traffic change it makes,
and posted to the webhook.

Example::

    decision = retrain(spec, context, trigger="manual")
    decision.outcome, decision.difference, decision.low
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from mlprod._time import parse_duration
from mlprod.bundle import Model
from mlprod.data import load_frame, parse_times
from mlprod.errors import ConflictError, DataError, MlprodError, NotSupportedError, SpecError
from mlprod.monitoring import labelled_predictions
from mlprod.pipelines import train
from mlprod.registry import VersionRecord, alias_map, get_version, open_version, set_alias
from mlprod.scheduling._canary import start_canary
from mlprod.scheduling._compare import (
    BINARY_COMPARED,
    MULTICLASS_COMPARED,
    Comparison,
    paired_comparison,
)
from mlprod.scheduling._context import LoopContext
from mlprod.scheduling._decisions import active_canary, record_decision
from mlprod.scheduling._records import Decision
from mlprod.serving import records_to_frame
from mlprod.spec import ProjectSpec

LIVE_ROWS = 20_000  # newest labelled live predictions compared at most
LABEL, SCORE, AT, LATENCY = "__label__", "__score__", "__at__", "__latency_ms__"


@dataclass
class _Rows:
    """The labelled rows both versions are judged on."""

    frame: pd.DataFrame
    y: np.ndarray
    basis: str
    cutoff: datetime | None = None


def retrain(spec: ProjectSpec, ctx: LoopContext, *, trigger: str = "manual") -> Decision:
    """Train a challenger on the newest data and decide whether it goes to canary."""
    name = spec.name
    running = active_canary(ctx.store, name)
    if running is not None:
        raise ConflictError(
            f"{name} has a canary running (v{running.challenger} against v{running.champion}); "
            "retraining waits until it is promoted or rolled back"
        )
    champion = _champion(ctx, name)
    metric = _metric(spec, champion)
    live = _live_rows(spec, ctx, champion)
    windowed = _windowed(spec, cutoff=live.cutoff if live else None)
    parent = champion.run_id if champion else None
    run = train(windowed, settings=ctx.settings, parent_run_id=parent)
    details: dict[str, Any] = {"trigger": trigger, "run": run.id, **_window_text(windowed)}
    base: dict[str, Any] = {
        "model": name,
        "kind": "retrain",
        "champion": champion.version if champion else None,
        "challenger": run.version,
        "at": ctx.clock.now(),
        "details": details,
    }
    if not run.gates_passed:
        failed = "; ".join(g.message for g in run.gates if not g.passed)
        reason = f"challenger v{run.version} failed its gates: {failed}"
        return _decide(ctx, spec, {**base, "outcome": "refused", "reason": reason})
    if champion is None:
        reason = f"no champion yet: v{run.version} passed its gates and serves"
        set_alias(
            ctx.store,
            name,
            "production",
            run.version,
            artifacts=ctx.artifacts,
            actor=ctx.actor,
            reason=reason,
        )
        return _decide(ctx, spec, {**base, "outcome": "promoted", "reason": reason})
    challenger = get_version(ctx.store, name, run.version)
    mismatch = _class_mismatch(champion, challenger)
    if mismatch is not None:
        return _decide(ctx, spec, {**base, "outcome": "refused", "reason": mismatch})
    if len(_classes(challenger)) > 2:
        details["classes"] = _classes(challenger)
    rows = live or _holdout_rows(ctx, challenger)
    comparison = _compare(spec, ctx, champion, challenger, rows, metric)
    details["cutoff"] = rows.cutoff.isoformat() if rows.cutoff else None
    figures = {**base, **_figures(comparison, spec, rows)}
    summary = (
        f"on {comparison.rows} {rows.basis} rows: {comparison.metric} "
        f"{comparison.challenger:.4f} vs {comparison.champion:.4f} (difference "
        f"{comparison.difference:+.4f}, 95% CI {comparison.low:+.4f} to {comparison.high:+.4f}, "
        f"margin {spec.retrain.margin:g})"
    )
    if comparison.low <= -spec.retrain.margin:
        reason = f"v{run.version} may be worse than v{champion.version} {summary}"
        return _decide(ctx, spec, {**figures, "outcome": "refused", "reason": reason})
    canary = start_canary(ctx, spec, champion=champion.version, challenger=run.version)
    details["canary"] = canary.id
    reason = (
        f"v{run.version} is not worse than v{champion.version} {summary}: "
        f"canary at {canary.weight:g}%"
    )
    return _decide(ctx, spec, {**figures, "outcome": "canary", "reason": reason})


def _decide(ctx: LoopContext, spec: ProjectSpec, fields: dict[str, Any]) -> Decision:
    decision = record_decision(ctx.store, **fields)
    ctx.webhook(spec, {"event": "decision", **decision.model_dump(mode="json")})
    return decision


def _figures(comparison: Comparison, spec: ProjectSpec, rows: _Rows) -> dict[str, Any]:
    return {
        "metric": comparison.metric,
        "champion_value": comparison.champion,
        "challenger_value": comparison.challenger,
        "difference": comparison.difference,
        "low": comparison.low,
        "high": comparison.high,
        "margin": spec.retrain.margin,
        "rows": comparison.rows,
        "basis": rows.basis,
    }


def _champion(ctx: LoopContext, name: str) -> VersionRecord | None:
    number = alias_map(ctx.store, name).get("production")
    return None if number is None else get_version(ctx.store, name, number)


def _classes(record: VersionRecord) -> list[str]:
    return [str(c) for c in record.signature.get("classes") or []]


def _metric(spec: ProjectSpec, champion: VersionRecord | None) -> str:
    """The compared metric, checked against the champion's kind before anything is fitted."""
    metric = spec.retrain.metric or spec.selection_metric
    if champion is None:
        return metric
    multiclass = len(_classes(champion)) > 2
    allowed = MULTICLASS_COMPARED if multiclass else BINARY_COMPARED
    if metric not in allowed:
        field = "retrain.metric" if spec.retrain.metric else "selection_metric"
        kind = f"multiclass ({len(_classes(champion))} classes)" if multiclass else "binary"
        raise SpecError(
            f"{field} is {metric}, which the champion/challenger comparison cannot use for "
            f"{champion.ref}, a {kind} version; set retrain.metric to one of "
            f"{', '.join(allowed)}"
        )
    return metric


def _class_mismatch(champion: VersionRecord, challenger: VersionRecord) -> str | None:
    """Why the two cannot be compared when either is multiclass and their classes differ."""
    old, new = _classes(champion), _classes(challenger)
    if old == new or max(len(old), len(new)) <= 2:
        return None
    return (
        f"v{challenger.version} has classes ({', '.join(new)}) where v{champion.version} has "
        f"({', '.join(old)}): no metric compares them; promote one by hand "
        "(mlprod promote) if the change of classes is meant"
    )


def _live_rows(spec: ProjectSpec, ctx: LoopContext, champion: VersionRecord | None) -> _Rows | None:
    """The champion's labelled live predictions, when the spec wants them and has enough."""
    if champion is None or spec.retrain.compare == "holdout":
        return None
    if len(_classes(champion)) > 2:
        if spec.retrain.compare == "live":
            raise NotSupportedError(
                f"retrain.compare is live, but {champion.ref} is multiclass: its live outcomes "
                "say whether an answer was right, not which class each row was, so the "
                "challenger cannot be scored on them; use compare: holdout or auto"
            )
        return None
    found = labelled_predictions(ctx.store, spec.name, champion.version, limit=LIVE_ROWS)
    both = found[LABEL].nunique() == 2 if len(found) else False
    if len(found) >= spec.retrain.min_live_labels and both:
        inputs = found.drop(columns=[LABEL, SCORE, AT, LATENCY])
        frame = inputs.astype(object).where(inputs.notna(), None)  # as logged: null, not NaN
        cutoff = found[AT].min().floor("us").to_pydatetime()
        return _Rows(frame, found[LABEL].to_numpy(), "live", cutoff)
    if spec.retrain.compare == "live":
        raise SpecError(
            f"retrain.compare is live, but {spec.name}@{champion.version} has {len(found)} "
            f"labelled predictions (retrain.min_live_labels: {spec.retrain.min_live_labels}); "
            "send outcomes, lower the minimum, or use compare: auto"
        )
    return None


def _windowed(spec: ProjectSpec, *, cutoff: datetime | None) -> ProjectSpec:
    """The spec restricted to the newest ``retrain.window`` (and to before `cutoff`)."""
    window = spec.retrain.window
    if window is None and cutoff is None:
        return spec
    time = spec.data.time
    if time is None:
        raise SpecError("retrain needs data.time to compare on live predictions by time")
    times = parse_times(load_frame(spec.data.source)[time], time)
    if times.dt.tz is None:
        times = times.dt.tz_localize("UTC")
    end = times.max() if cutoff is None else min(times.max(), pd.Timestamp(cutoff))
    since = None
    if window is not None:
        span = times.max() - times.min()
        if pd.Timedelta(parse_duration(window)) > span:
            first, last = f"{times.min():%Y-%m-%d}", f"{times.max():%Y-%m-%d}"
            raise SpecError(
                f"retrain.window {window} is longer than the data in {spec.data.source}: "
                f"{time} spans {span.days} days ({first} to {last}); "
                "shorten the window or remove it to train on every row"
            )
        since = (end - pd.Timedelta(parse_duration(window))).floor("s").to_pydatetime()
    data = spec.data.model_copy(update={"since": since, "until": cutoff})
    return spec.model_copy(update={"data": data})


def _window_text(spec: ProjectSpec) -> dict[str, str | None]:
    since, until = spec.data.since, spec.data.until
    return {
        "since": since.isoformat() if since else None,
        "until": until.isoformat() if until else None,
    }


def _holdout_rows(ctx: LoopContext, challenger: VersionRecord) -> _Rows:
    frame, y = open_version(ctx.artifacts, challenger).test_data()
    return _Rows(frame, y, "holdout")


def _compare(
    spec: ProjectSpec,
    ctx: LoopContext,
    champion: VersionRecord,
    challenger: VersionRecord,
    rows: _Rows,
    metric: str,
) -> Comparison:
    scores = [_scores(open_version(ctx.artifacts, v), rows) for v in (champion, challenger)]
    return paired_comparison(rows.y, scores[0], scores[1], metric, seed=spec.seed)


def _scores(model: Model, rows: _Rows) -> np.ndarray:
    """A version's scores on the rows; the live rows are logged requests, scored as served."""
    try:
        if rows.basis == "live":
            records = rows.frame.to_dict("records")
            fields = model.signature["fields"]
            return model.score(records_to_frame(records, fields, max_records=len(records)))
        return model.score(rows.frame)
    except MlprodError as exc:
        raise DataError(
            f"{model.name}@{model.version} cannot score the {rows.basis} rows it is compared "
            f"on: {exc}"
        ) from None
