"""Workflows that compose the stages: train, load, promote, quickstart."""

from mlprod.workflows._lifecycle import load, promote
from mlprod.workflows._train import TrainedRun, train

__all__ = ["TrainedRun", "load", "promote", "train"]
