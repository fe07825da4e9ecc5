"""check_gates(): every op and bound at the boundary, messages, and unknown metrics."""

from __future__ import annotations

import math

import pytest
from pydantic import ValidationError

from mlprod.errors import SpecError
from mlprod.evaluation import GateResult, MetricValue, check_gates
from mlprod.spec import Gate, ProjectSpec

METRIC = MetricValue(value=0.8, low=0.7, high=0.9)
OBSERVED = {"point": 0.8, "lower": 0.7, "upper": 0.9}
# (offset of the gate value from the observed value, op, passes)
CASES = [
    (0.0, ">=", True),
    (0.0, "<=", True),
    (0.0, ">", False),
    (0.0, "<", False),
    (0.01, ">=", False),
    (0.01, "<=", True),
    (0.01, ">", False),
    (0.01, "<", True),
    (-0.01, ">=", True),
    (-0.01, "<=", False),
    (-0.01, ">", True),
    (-0.01, "<", False),
]


@pytest.mark.parametrize("bound", ["point", "lower", "upper"])
@pytest.mark.parametrize(("offset", "op", "passes"), CASES)
def test_boundaries(bound: str, offset: float, op: str, passes: bool) -> None:
    gate = Gate(op=op, value=OBSERVED[bound] + offset, bound=bound)  # type: ignore[arg-type]
    (result,) = check_gates({"roc_auc": METRIC}, {"roc_auc": gate})
    assert result.observed == OBSERVED[bound]
    assert result.passed is passes
    assert result.message.startswith(f"gate {gate.describe('roc_auc')} ")
    assert ("passed" if passes else "failed") in result.message


def test_messages_read_as_documented() -> None:
    gates = {"roc_auc": Gate(op=">=", value=0.8)}
    (failed,) = check_gates({"roc_auc": MetricValue(value=0.74, low=0.71, high=0.77)}, gates)
    assert failed.message.startswith("gate roc_auc >= 0.8 failed: got 0.74 (95% CI 0.71-0.77)")
    assert "mlprod.yaml" in failed.message  # says how to fix it
    (passed,) = check_gates({"roc_auc": MetricValue(value=0.86, low=0.84, high=0.88)}, gates)
    assert passed.message == "gate roc_auc >= 0.8 passed: got 0.86 (95% CI 0.84-0.88)"
    assert passed.description == "roc_auc >= 0.8"


def test_bound_gate_reports_the_bound_it_compared() -> None:
    gate = Gate(op=">=", value=0.8, bound="lower")
    (result,) = check_gates(
        {"roc_auc": MetricValue(value=0.86, low=0.78, high=0.9)}, {"roc_auc": gate}
    )
    assert result.description == "roc_auc >= 0.8 (lower 95% bound)"
    assert not result.passed
    assert result.observed == 0.78
    assert "got lower bound 0.78 (estimate 0.86, 95% CI 0.78-0.9)" in result.message


def test_near_miss_is_not_rounded_onto_the_gate() -> None:
    (result,) = check_gates(
        {"recall": MetricValue(value=0.79996, low=0.75, high=0.85)},
        {"recall": Gate(op=">=", value=0.8)},
    )
    assert not result.passed
    assert "got 0.79996 " in result.message


def test_lower_is_better_metric() -> None:
    (result,) = check_gates(
        {"log_loss": MetricValue(value=0.41, low=0.38, high=0.45)},
        {"log_loss": Gate(op="<", value=0.4, bound="upper")},
    )
    assert not result.passed
    assert result.observed == 0.45


def test_unknown_interval_fails() -> None:
    nan = math.nan
    (result,) = check_gates(
        {"roc_auc": MetricValue(value=0.9, low=nan, high=nan)},
        {"roc_auc": Gate(op=">=", value=0.8, bound="lower")},
    )
    assert not result.passed


def test_gate_on_missing_metric_names_it_and_the_available() -> None:
    with pytest.raises(SpecError, match=r"brier.*roc_auc, f1"):
        check_gates(
            {"roc_auc": METRIC, "f1": METRIC},
            {"roc_auc": Gate(op=">=", value=0.5), "brier": Gate(op="<=", value=0.2)},
        )


def test_gates_from_the_spec_keep_their_order() -> None:
    spec = ProjectSpec.model_validate(
        {
            "name": "churn",
            "data": {"source": "x.csv", "target": "y"},
            "gates": {"f1": ">= 0.95", "roc_auc": {"threshold": "> 0.65", "bound": "lower"}},
        }
    )
    results = check_gates({"roc_auc": METRIC, "f1": METRIC}, spec.gates)
    assert [(r.metric, r.passed) for r in results] == [("f1", False), ("roc_auc", True)]


def test_gate_result_is_frozen() -> None:
    (result,) = check_gates({"f1": METRIC}, {"f1": Gate(op=">=", value=0.5)})
    assert isinstance(result, GateResult)
    with pytest.raises(ValidationError):
        result.passed = False  # type: ignore[misc]
