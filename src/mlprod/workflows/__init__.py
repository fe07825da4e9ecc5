"""Workflows that compose the stages: train, tune, load, promote, compare, rerun, explore."""

from mlprod.workflows._experiments import apply_changes, compare_runs, rerun
from mlprod.workflows._explore import profile_data, profile_spec, rank_spec_features
from mlprod.workflows._lifecycle import load, promote
from mlprod.workflows._train import TrainedRun, train
from mlprod.workflows._tuning import join_tuning

__all__ = [
    "TrainedRun",
    "apply_changes",
    "compare_runs",
    "join_tuning",
    "load",
    "profile_data",
    "profile_spec",
    "promote",
    "rank_spec_features",
    "rerun",
    "train",
]
