"""The spec's tuning, ensemble and selection sections validate like the rest."""

from __future__ import annotations

from typing import Any

import pytest

from mlprod.errors import SpecError
from mlprod.spec import ProjectSpec, parse_dimension, parse_spec

BASE: dict[str, Any] = {"name": "churn", "data": {"source": "x.csv", "target": "y"}}


def test_search_grammar_reads_ranges_logs_and_choices() -> None:
    assert parse_dimension("a", [16, 256]).model_dump() == {
        "kind": "int", "low": 16.0, "high": 256.0, "log": False, "choices": (),
    }  # fmt: skip
    log = parse_dimension("lr", [0.01, 0.3, "log"])
    assert (log.kind, log.log, log.low) == ("float", True, 0.01)
    assert parse_dimension("b", {"choices": [16, 64]}).choices == (16, 64)
    assert parse_dimension("c", ["gbdt", "dart"]).kind == "choice"
    assert parse_dimension("d", [1, 2, 3]).choices == (1, 2, 3)


@pytest.mark.parametrize(
    ("search", "message"),
    [
        ({"num_leaves": [256, 16]}, "low must be below high"),
        ({"learning_rate": [0, 0.3, "log"]}, "log range needs low > 0"),
        ({"num_leaves": 7}, "search.num_leaves must be"),
        ({"num_leaves": {"values": [1, 2]}}, "search.num_leaves must be"),
    ],
)
def test_bad_search_entries_name_the_parameter(search: dict[str, Any], message: str) -> None:
    raw = {**BASE, "candidates": [{"type": "lightgbm", "search": search}]}
    with pytest.raises(SpecError, match=message) as info:
        parse_spec(raw)
    assert "candidates.0.search" in str(info.value)


def test_unknown_keys_in_new_sections_list_the_allowed_ones() -> None:
    with pytest.raises(SpecError) as info:
        parse_spec({**BASE, "tuning": {"trails": 5}})
    text = str(info.value)
    assert "tuning.trails: unknown key" in text and "trials, timeout, metric, sampler" in text
    with pytest.raises(SpecError, match="'tpe', 'random' or 'grid'"):
        parse_spec({**BASE, "tuning": {"sampler": "bayes"}})
    with pytest.raises(SpecError, match=r"selection\.method"):
        parse_spec({**BASE, "selection": {"method": "lasso", "k": 3}})
    with pytest.raises(SpecError, match=r"ensemble\.top"):
        parse_spec({**BASE, "ensemble": {"method": "voting", "top": 1}})


def test_resolved_spec_reads_back_identically() -> None:
    """A run's recorded spec (gates included) is a valid spec again: re-runs rely on it."""
    spec = parse_spec(
        {**BASE, "gates": {"roc_auc": ">= 0.8",
                           "recall": {"threshold": ">= 0.5", "bound": "lower"}},
         "tuning": {"trials": 7}, "selection": {"method": "pca", "k": 3},
         "candidates": [{"type": "lightgbm", "search": {"num_leaves": [8, 64]}}]}
    )  # fmt: skip
    again = parse_spec(spec.resolved())
    assert again == spec
    assert isinstance(again, ProjectSpec) and again.tuning is not None and again.tuning.trials == 7
