"""Acceptance gates: each spec gate checked against a metric or an end of its interval."""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, TypeVar

from pydantic import BaseModel, ConfigDict

from mlprod.errors import SpecError
from mlprod.evaluation._metrics import MetricValue

if TYPE_CHECKING:
    from mlprod.spec import Gate

# Generic key, so a spec's dict[GateMetric, Gate] is accepted (Mapping keys are invariant).
_Name = TypeVar("_Name", bound=str)

_OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    ">": operator.gt,
    "<": operator.lt,
}


class GateResult(BaseModel):
    """The outcome of one gate, with a message a person can act on."""

    model_config = ConfigDict(frozen=True)

    metric: str
    description: str
    observed: float
    passed: bool
    message: str


def _fmt(x: float, ref: float | None = None) -> str:
    """Three significant digits, more when rounding would make `x` look equal to `ref`."""
    if not math.isfinite(x):
        return str(x)
    for digits in range(3, 18):
        text = f"{x:.{digits}g}"
        if ref is None or x == ref or float(text) != ref:
            return text
    return repr(x)


def _observed(metric: MetricValue, bound: str) -> float:
    if bound == "lower":
        return metric.low
    if bound == "upper":
        return metric.high
    return metric.value


def _check(name: str, metric: MetricValue, gate: Gate) -> GateResult:
    observed = _observed(metric, gate.bound)
    passed = _OPS[gate.op](observed, gate.value)  # NaN compares False: an unknown fails
    description = gate.describe(name)
    ci = f"95% CI {_fmt(metric.low, gate.value)}-{_fmt(metric.high, gate.value)}"
    if gate.bound == "point":
        got = f"got {_fmt(observed, gate.value)} ({ci})"
    else:
        got = (
            f"got {gate.bound} bound {_fmt(observed, gate.value)} "
            f"(estimate {_fmt(metric.value)}, {ci})"
        )
    message = f"gate {description} {'passed' if passed else 'failed'}: {got}"
    if not passed:
        message += "; relax the gate in mlprod.yaml or improve the model"
    return GateResult(
        metric=name, description=description, observed=observed, passed=passed, message=message
    )


def check_gates(
    metrics: Mapping[str, MetricValue], gates: Mapping[_Name, Gate]
) -> list[GateResult]:
    """Check every gate, in the order given, and report each one (not just the first failure).

    A gate on a metric that was not computed is a spec error, not a failed gate, so a typo
    cannot silently block (or pass) a model.

    >>> from mlprod.spec import Gate
    >>> m = {"roc_auc": MetricValue(value=0.86, low=0.84, high=0.88)}
    >>> check_gates(m, {"roc_auc": Gate(op=">=", value=0.8)})[0].message
    'gate roc_auc >= 0.8 passed: got 0.86 (95% CI 0.84-0.88)'
    """
    missing = [name for name in gates if name not in metrics]
    per_class = [name for name in missing if name.endswith("]") and "[" in name]
    if per_class:
        classes = sorted({n[n.index("[") + 1 : -1] for n in metrics if n.endswith("]")})
        there = (
            f"the target's classes are {', '.join(classes)}"
            if classes
            else "per-class gates need a multiclass target; this one is binary (use "
            "precision, recall, f1)"
        )
        raise SpecError(
            f"gate(s) on {', '.join(sorted(per_class))} name a class the target does not "
            f"have; {there}"
        )
    if missing:
        raise SpecError(
            f"gate(s) on {', '.join(sorted(missing))} but no such metric was computed; "
            f"gates can use: {', '.join(metrics) or '(none)'}"
        )
    return [_check(name, metrics[name], gate) for name, gate in gates.items()]
