"""The spec's business value matrix, the max_value policy and training.final_fit."""

from __future__ import annotations

from typing import Any

import pytest

from mlprod.errors import SpecError
from mlprod.spec import ProjectSpec, parse_spec

BASE: dict[str, Any] = {"name": "churn", "data": {"source": "c.csv", "target": "churned"}}


def test_value_matrix_policy_and_final_fit_are_read() -> None:
    spec = ProjectSpec.model_validate(
        {
            **BASE,
            "value": {"tp": 90, "fp": -10, "unit": "EUR"},
            "threshold": {"policy": "max_value"},
            "training": {"final_fit": "train+validation"},
            "candidates": ["svm", "mlp"],
        }
    )
    assert spec.value is not None
    assert spec.value.matrix() == {"tp": 90.0, "fp": -10.0, "tn": 0.0, "fn": 0.0}
    assert spec.training.final_fit == "train+validation"
    assert [c.type for c in spec.candidates] == ["svm", "mlp"]
    assert ProjectSpec.model_validate(BASE).training.final_fit == "train"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"threshold": {"policy": "max_value"}}, r"max_value needs a value: matrix"),
        ({"value": {"tp": 0}}, r"every cell is 0"),
        ({"value": {"tp": 1, "gain": 2}}, r"gain"),
        ({"training": {"final_fit": "everything"}}, r"final_fit"),
    ],
)
def test_value_mistakes_name_the_key(extra: dict[str, Any], message: str) -> None:
    with pytest.raises(SpecError, match=message):
        parse_spec({**BASE, **extra})
