"""The registry: runs, versions, aliases and audit in one metadata store, bundles beside it."""

from mlprod.registry._bundle import (
    REFERENCE,
    TARGET_COLUMN,
    Model,
    read_manifest,
    read_reference,
    seal_bundle,
    sha256_file,
)
from mlprod.registry._exports import *  # noqa: F403 - the store's public names
from mlprod.registry._exports import __all__ as _store_all
from mlprod.registry._flavors import (
    SavedModel,
    combine_scores,
    flavor_of,
    save_model,
    save_skops,
)
from mlprod.registry._loading import open_version

__all__ = [
    *_store_all,
    "REFERENCE",
    "TARGET_COLUMN",
    "Model",
    "SavedModel",
    "combine_scores",
    "flavor_of",
    "open_version",
    "read_manifest",
    "read_reference",
    "save_model",
    "save_skops",
    "seal_bundle",
    "sha256_file",
]
