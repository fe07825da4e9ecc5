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
"""

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
from mlprod.bundle._model import Model
from mlprod.bundle._multiclass import require_binary
from mlprod.bundle._write import write_bundle
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
    "read_manifest",
    "read_reference",
    "register_flavor",
    "require_binary",
    "save_model",
    "save_skops",
    "seal_bundle",
    "tree_compiler_available",
    "write_bundle",
]
