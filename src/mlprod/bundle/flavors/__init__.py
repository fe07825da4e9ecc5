"""Model flavours: one module per model type, each saving natively and loading safely.

Nothing here unpickles: LightGBM is saved as its text model, XGBoost as UBJSON,
scikit-learn estimators with skops (only allowed types are built), networks as
safetensors arrays, ensembles as a JSON
document beside their members' own files. A new model type is one module with a class
that has ``name``, ``handles``, ``save`` and ``load``, passed to `register_flavor`.
"""

from mlprod.bundle.flavors._base import (
    Flavor,
    SavedModel,
    Scorer,
    flavor_names,
    flavor_of,
    load_scorer,
    register_flavor,
    save_model,
)
from mlprod.bundle.flavors._ensemble import EnsembleFlavor, combine_scores
from mlprod.bundle.flavors._lightgbm import LightGBMFlavor
from mlprod.bundle.flavors._mlp import MLPFlavor
from mlprod.bundle.flavors._sklearn import SklearnFlavor
from mlprod.bundle.flavors._skops import load_skops, save_skops
from mlprod.bundle.flavors._xgboost import XGBoostFlavor

# Asked last-registered first: the fallback (anything with predict_proba) goes in first.
# The network flavour imports nothing heavy until it saves or loads (safetensors, no torch).
for _flavor in (
    SklearnFlavor(),
    XGBoostFlavor(),
    LightGBMFlavor(),
    MLPFlavor(),
    EnsembleFlavor(),
):
    register_flavor(_flavor)

__all__ = [
    "Flavor",
    "SavedModel",
    "Scorer",
    "combine_scores",
    "flavor_names",
    "flavor_of",
    "load_scorer",
    "load_skops",
    "register_flavor",
    "save_model",
    "save_skops",
]
