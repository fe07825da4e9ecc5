"""Pipelines compose the stages: train, tune, load, promote, compare, rerun, explore, quickstart.

Each is one call from Python, the CLI or the scheduler, with the same result.

Example::

    run = train("mlprod.yaml")
    promote("churn", run.version, "production")
    model = load("churn@production")
"""

from mlprod.pipelines._experiments import (
    apply_changes,
    compare_runs,
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

__all__ = [
    "TrainedRun",
    "apply_changes",
    "cache_sources",
    "compare_runs",
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
