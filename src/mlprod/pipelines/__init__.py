"""Pipelines compose the stages: train, tune, load, promote, compare, rerun, explore, quickstart.

Each is one call from Python, the CLI or the scheduler, with the same result.

Example::

    run = train("mlprod.yaml")
    promote("churn", run.version, "production")
    model = load("churn@production")

Each pipeline's module loads on first use (the train pipeline brings scikit-learn, DuckDB
and the whole training stack), so ``load`` and ``promote`` stay as light as what they do.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlprod.pipelines._experiments import (
        ScoredTestRows,
        apply_changes,
        compare_runs,
        comparison_charts,
        config_diff,
        rerun,
        version_test_scores,
    )
    from mlprod.pipelines._explore import profile_data, profile_spec, rank_spec_features
    from mlprod.pipelines._features import cache_sources, feature_skew, materialize_features
    from mlprod.pipelines._lifecycle import load, promote
    from mlprod.pipelines._quickstart import run_quickstart
    from mlprod.pipelines._stream import stream_features
    from mlprod.pipelines._target import encode_target
    from mlprod.pipelines._train import TrainedRun, train
    from mlprod.pipelines._tuning import join_tuning

_LAZY = {
    "ScoredTestRows": "mlprod.pipelines._experiments",
    "TrainedRun": "mlprod.pipelines._train",
    "apply_changes": "mlprod.pipelines._experiments",
    "cache_sources": "mlprod.pipelines._features",
    "compare_runs": "mlprod.pipelines._experiments",
    "comparison_charts": "mlprod.pipelines._experiments",
    "config_diff": "mlprod.pipelines._experiments",
    "encode_target": "mlprod.pipelines._target",
    "feature_skew": "mlprod.pipelines._features",
    "join_tuning": "mlprod.pipelines._tuning",
    "load": "mlprod.pipelines._lifecycle",
    "materialize_features": "mlprod.pipelines._features",
    "profile_data": "mlprod.pipelines._explore",
    "profile_spec": "mlprod.pipelines._explore",
    "promote": "mlprod.pipelines._lifecycle",
    "rank_spec_features": "mlprod.pipelines._explore",
    "rerun": "mlprod.pipelines._experiments",
    "run_quickstart": "mlprod.pipelines._quickstart",
    "stream_features": "mlprod.pipelines._stream",
    "train": "mlprod.pipelines._train",
    "version_test_scores": "mlprod.pipelines._experiments",
}

__all__ = [
    "ScoredTestRows",
    "TrainedRun",
    "apply_changes",
    "cache_sources",
    "compare_runs",
    "comparison_charts",
    "config_diff",
    "encode_target",
    "feature_skew",
    "join_tuning",
    "load",
    "materialize_features",
    "profile_data",
    "profile_spec",
    "promote",
    "rank_spec_features",
    "rerun",
    "run_quickstart",
    "stream_features",
    "train",
    "version_test_scores",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'mlprod.pipelines' has no attribute {name!r}")
