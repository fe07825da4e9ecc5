"""skops files: scikit-learn objects saved without pickle, loaded only as allowed types.

skops records every type a file will build; saving records exactly that list in the
manifest, and loading refuses a file that asks for anything beyond it or beyond the
platform's allow-list, so a tampered or foreign file is never built. The allow-list is
the platform's, not the manifest's: a manifest listing more types widens nothing.
"""

from __future__ import annotations

import importlib
import inspect
import sys
import threading
from pathlib import Path
from types import ModuleType
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


# The scikit-learn packages whose estimators mlprod's bundles hold: the catalogue's models,
# their calibration and pipelines, feature selection and the feature transformer's parts.
SKLEARN_PACKAGES = (
    "sklearn.calibration",
    "sklearn.compose",
    "sklearn.decomposition",
    "sklearn.ensemble",
    "sklearn.feature_selection",
    "sklearn.impute",
    "sklearn.isotonic",
    "sklearn.linear_model",
    "sklearn.pipeline",
    "sklearn.preprocessing",
    "sklearn.svm",
    "sklearn.tree",
)
_SKOPS_IMPORT = threading.Lock()


def _bundle_estimators() -> list[tuple[str, type]]:
    """The public, concrete estimators of `SKLEARN_PACKAGES`, as `all_estimators` lists them."""
    from sklearn.base import BaseEstimator

    found: set[tuple[str, type]] = set()
    for package in SKLEARN_PACKAGES:
        for name, cls in inspect.getmembers(importlib.import_module(package), inspect.isclass):
            if (
                not name.startswith("_")
                and issubclass(cls, BaseEstimator)
                and cls is not BaseEstimator
                and not inspect.isabstract(cls)
            ):
                found.add((name, cls))
    return sorted(found, key=lambda pair: (pair[0], pair[1].__module__))


def _label_scipy_ufuncs() -> list[Any]:
    """Give each unlabelled scipy.special ufunc the ``__module__`` skops' import would find.

    skops names the scipy ufuncs it trusts by default at import, and a ufunc has no
    ``__module__``: it looks for each one in every loaded module, in import order, until a
    module holds it under its name. With scipy loaded after pandas, SQLAlchemy and
    pydantic, that is some 230 ufuncs times 1,200 modules: 0.3 to 0.5 s of every process
    that writes or reads a bundle. One pass over the modules' namespaces finds the same
    first module for every ufunc at once; labelled, skops reads the label instead of
    searching. Returns the ufuncs labelled, whose labels the caller removes again.
    """
    import numpy as np
    import scipy.special

    wanted: dict[str, list[Any]] = {}  # by the name skops searches for: the ufunc's own
    for value in {id(v): v for v in vars(scipy.special).values()}.values():
        if isinstance(value, np.ufunc) and getattr(value, "__module__", None) is None:
            wanted.setdefault(value.__name__, []).append(value)
    labelled: list[Any] = []
    for module_name, module in list(sys.modules.items()):
        space = getattr(module, "__dict__", None)
        if module_name in ("__main__", "__mp_main__") or not isinstance(space, dict):
            continue
        for name in wanted.keys() & space.keys():
            for ufunc in [u for u in wanted[name] if space[name] is u]:
                try:
                    ufunc.__module__ = module_name
                except (AttributeError, TypeError):  # a numpy whose ufuncs take no label
                    continue
                wanted[name].remove(ufunc)
                labelled.append(ufunc)
        if not any(wanted.values()):
            break
    return labelled


def skops_io() -> ModuleType:
    """``skops.io``, imported so that its default trust is `SKLEARN_PACKAGES`' estimators.

    skops builds its default list of trusted scikit-learn types once, at import, from
    ``sklearn.utils.all_estimators()``, which imports every scikit-learn module and,
    walking ``sklearn.externals``, PyTorch when it is installed: about 400 MiB and 2 s
    before the first row is scored. The types mlprod's bundles hold are known, so the list
    is given explicitly. It narrows skops' default trust and never widens it: a file naming
    any other type is reported untrusted and refused by `check_allowed`. When something
    else imported skops first, its (wider) defaults stand, and files load the same.

    The scipy ufuncs it trusts are named as its own search would name them, found faster
    (`_label_scipy_ufuncs`); the labels are removed once skops is imported.
    """
    loaded: ModuleType | None = sys.modules.get("skops.io")
    if loaded is not None:
        return loaded
    with _SKOPS_IMPORT:
        import sklearn.utils

        everything = sklearn.utils.all_estimators
        sklearn.utils.all_estimators = _bundle_estimators  # read once, by skops' import
        labelled = _label_scipy_ufuncs()
        try:
            module = importlib.import_module("skops.io")
        finally:
            sklearn.utils.all_estimators = everything
            for ufunc in labelled:
                del ufunc.__module__
    return module


def save_skops(obj: Any, path: Path, flavor: str) -> SavedModel:
    """skops-dump `obj` and record exactly the types its file will ask to build."""
    sio = skops_io()

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
    sio = skops_io()

    needed = sio.get_untrusted_types(file=path)
    check_allowed(needed, path.name)
    extra = sorted(set(needed) - set(recorded))
    if extra:
        raise IntegrityError(f"{path.name} asks for types {extra} not recorded in its manifest")
    return sio.load(path, trusted=needed)
