"""The model bundle: the one thing that moves from training to production.

A folder with ``manifest.json`` (a `Manifest`: name, flavour, signature, threshold,
library versions, the sha256 of every other file), the fitted feature transformer
(skops), the model in its flavour's native format, the test set, the metrics, the
reference distributions and the report. `write_bundle` writes and seals one; `Model.open`
re-hashes every file and refuses a bundle that does not match the hashes the registry
kept (`bundle_files`) or, without them, its manifest.

Example::

    manifest = write_bundle(folder, name="churn", run_id=run_id, ...)
    Model.open(folder).predict_proba(frame)

Each name loads its module on first use: `mlprod models show` reads remembered fast-path
verdicts without loading pandas, scikit-learn or any model.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlprod.bundle._answers import multiclass_answers
    from mlprod.bundle._compiled import (
        CompiledTrees,
        cached_trees,
        compile_trees,
        tree_compiler_available,
    )
    from mlprod.bundle._manifest import (
        REPORT,
        Manifest,
        bundle_files,
        read_manifest,
        read_reference,
        seal_bundle,
    )
    from mlprod.bundle._model import (
        Model,
    )
    from mlprod.bundle._verdicts import recall_verdict, remember_verdict
    from mlprod.bundle._write import (
        write_bundle,
    )
    from mlprod.bundle.flavors import (
        Flavor,
        SavedModel,
        Scorer,
        combine_scores,
        flavor_names,
        flavor_of,
        load_scorer,
        register_flavor,
        save_model,
        save_skops,
    )

_LAZY = {
    "CompiledTrees": "mlprod.bundle._compiled",
    "Flavor": "mlprod.bundle.flavors",
    "Manifest": "mlprod.bundle._manifest",
    "Model": "mlprod.bundle._model",
    "REPORT": "mlprod.bundle._manifest",
    "SavedModel": "mlprod.bundle.flavors",
    "Scorer": "mlprod.bundle.flavors",
    "bundle_files": "mlprod.bundle._manifest",
    "cached_trees": "mlprod.bundle._compiled",
    "combine_scores": "mlprod.bundle.flavors",
    "compile_trees": "mlprod.bundle._compiled",
    "flavor_names": "mlprod.bundle.flavors",
    "flavor_of": "mlprod.bundle.flavors",
    "load_scorer": "mlprod.bundle.flavors",
    "multiclass_answers": "mlprod.bundle._answers",
    "read_manifest": "mlprod.bundle._manifest",
    "read_reference": "mlprod.bundle._manifest",
    "recall_verdict": "mlprod.bundle._verdicts",
    "remember_verdict": "mlprod.bundle._verdicts",
    "register_flavor": "mlprod.bundle.flavors",
    "save_model": "mlprod.bundle.flavors",
    "save_skops": "mlprod.bundle.flavors",
    "seal_bundle": "mlprod.bundle._manifest",
    "tree_compiler_available": "mlprod.bundle._compiled",
    "write_bundle": "mlprod.bundle._write",
}

__all__ = [
    "REPORT",
    "CompiledTrees",
    "Flavor",
    "Manifest",
    "Model",
    "SavedModel",
    "Scorer",
    "bundle_files",
    "cached_trees",
    "combine_scores",
    "compile_trees",
    "flavor_names",
    "flavor_of",
    "load_scorer",
    "multiclass_answers",
    "read_manifest",
    "read_reference",
    "recall_verdict",
    "register_flavor",
    "remember_verdict",
    "save_model",
    "save_skops",
    "seal_bundle",
    "tree_compiler_available",
    "write_bundle",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'mlprod.bundle' has no attribute {name!r}")
