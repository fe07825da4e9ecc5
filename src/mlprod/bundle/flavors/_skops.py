"""skops files: scikit-learn objects saved without pickle, loaded only as allowed types.

skops records every type a file will build; saving records exactly that list in the
manifest, and loading refuses a file that asks for anything beyond it or beyond the
platform's allow-list, so a tampered or foreign file is never built. The allow-list is
the platform's, not the manifest's: a manifest listing more types widens nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlprod.bundle.flavors._base import SavedModel
from mlprod.errors import IntegrityError

# The types, beyond skops' own defaults (primitives, containers, scikit-learn estimators,
# numpy ufuncs), that the platform's estimators and transformer need: collected from every
# catalogue estimator and every feature kind. Exact names, not module prefixes: a prefix
# such as ``builtins.`` or ``numpy.`` also admits functions (``eval``, ``open``,
# ``numpy.save``) that an estimator would call with the request's data.
ALLOWED_TYPES = frozenset(
    {
        "mlprod.features._subset.ColumnSubset",
        "mlprod.features._transformer.FeatureTransformer",
        "numpy.dtype",
        "sklearn.calibration._CalibratedClassifier",
        "sklearn.calibration._SigmoidCalibration",
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
        "sklearn.tree._tree.Tree",
    }
)


def save_skops(obj: Any, path: Path, flavor: str) -> SavedModel:
    """skops-dump `obj` and record exactly the types its file will ask to build."""
    import skops.io as sio

    sio.dump(obj, path)
    needed = tuple(sorted(sio.get_untrusted_types(file=path)))
    check_allowed(needed, path.name)
    return SavedModel(flavor, path.name, needed)


def check_allowed(types: tuple[str, ...] | list[str], filename: str) -> None:
    """Refuse a file that asks for a type outside the platform's allow-list."""
    refused = sorted(t for t in types if t not in ALLOWED_TYPES)
    if refused:
        raise IntegrityError(
            f"{filename} asks to load type(s) {refused}, which mlprod does not allow; "
            "only the types mlprod's own estimators and feature transformer need may be "
            f"loaded ({', '.join(sorted(ALLOWED_TYPES))}). Train the model with mlprod"
        )


def load_skops(path: Path, recorded: list[str]) -> Any:
    """Load a skops file that asks for nothing beyond its recorded, allowed types.

    `recorded` (the manifest's list) can only narrow what is built, never widen it.
    """
    import skops.io as sio

    needed = sio.get_untrusted_types(file=path)
    check_allowed(needed, path.name)
    extra = sorted(set(needed) - set(recorded))
    if extra:
        raise IntegrityError(f"{path.name} asks for types {extra} not recorded in its manifest")
    return sio.load(path, trusted=needed)
