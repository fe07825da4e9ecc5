"""mlprod: take a tabular classifier from data to production and keep it healthy there.

Example::

    import mlprod

    run = mlprod.train("mlprod.yaml")            # train, evaluate, gate, register
    model = mlprod.load("churn@production")     # verified bundle, ready to score
    model.predict_proba(frame)

Heavy libraries load on first use, so ``import mlprod`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from mlprod.errors import MlprodError

if TYPE_CHECKING:
    from mlprod.bundle import Model
    from mlprod.client import Client
    from mlprod.pipelines import TrainedRun, load, promote, train

__version__ = "0.1.0"

_LAZY = {
    "Client": "mlprod.client",
    "Model": "mlprod.bundle",
    "TrainedRun": "mlprod.pipelines",
    "load": "mlprod.pipelines",
    "promote": "mlprod.pipelines",
    "train": "mlprod.pipelines",
}

__all__ = [
    "Client",
    "MlprodError",
    "Model",
    "TrainedRun",
    "__version__",
    "load",
    "promote",
    "train",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'mlprod' has no attribute {name!r}")
