"""Opening a registered version: find its bundle, verify it, tag it with its number."""

from __future__ import annotations

from mlprod.bundle import Model
from mlprod.errors import IntegrityError
from mlprod.registry._records import VersionRecord
from mlprod.store import ArtifactStore


def open_version(artifacts: ArtifactStore, record: VersionRecord) -> Model:
    """The verified model behind a version record."""
    model = Model.open(artifacts.path(record.bundle_id))
    if model.name != record.model:
        raise IntegrityError(
            f"bundle {record.bundle_id} belongs to {model.name!r}, not {record.model!r}; "
            "the store and the artifacts folder do not match (check --store and MLPROD_ARTIFACTS)"
        )
    model.version = record.version
    return model
