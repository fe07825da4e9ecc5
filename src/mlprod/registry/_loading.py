"""Opening a registered version: find its bundle, verify it, tag it with its number.

Versions registered since the store kept file hashes (revision 0008) are checked against
the store's copy, so a file swapped together with its hash in the manifest is refused.
Older versions (``files`` is None) are checked against their manifest, as they always were.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mlprod.errors import BrokenVersionError, IntegrityError
from mlprod.registry._records import VersionRecord

if TYPE_CHECKING:
    from mlprod.bundle import Model
    from mlprod.store import ArtifactStore


def open_version(artifacts: ArtifactStore, record: VersionRecord) -> Model:
    """The verified model behind a version record."""
    # Loading brings the model's libraries (pandas, scikit-learn, its flavour's): only
    # here, not for every reader of the registry's records.
    from mlprod.bundle import Model

    model = Model.open(artifacts.path(record.bundle_id), expected=record.files)
    if model.name != record.model:
        raise IntegrityError(
            f"bundle {record.bundle_id} belongs to {model.name!r}, not {record.model!r}; "
            "the store and the artifacts folder do not match (check --store and MLPROD_ARTIFACTS)"
        )
    model.version = record.version
    return model


def check_serves(artifacts: ArtifactStore, record: VersionRecord, role: str) -> None:
    """BrokenVersionError, with the reason, unless `record` loads, verifies and scores.

    Run before an alias or a route moves to a version, so traffic never goes to one that
    a server would fail to load.
    """
    try:
        open_version(artifacts, record).warm_up()
    # Any failure means the version cannot serve: the flavours' libraries (skops, LightGBM,
    # XGBoost, pyarrow) raise their own types on damaged files, so this catch is broad on
    # purpose; the reason goes into the message.
    except Exception as exc:
        raise BrokenVersionError(
            f"{record.ref} cannot {role}: it does not load, verify and answer a warm-up "
            f"prediction ({type(exc).__name__}: {exc}). Restore its bundle or train and "
            "register a new version; --force does not override this, as a version that "
            "cannot load serves nothing."
        ) from exc
