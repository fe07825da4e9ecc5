"""Who, where and with what: the facts every run records about its surroundings."""

from __future__ import annotations

import importlib.metadata
import subprocess
from pathlib import Path

from mlprod.settings import Settings
from mlprod.store import ArtifactStore, Store, open_artifacts

LIBRARIES = ("mlprod", "numpy", "pandas", "scikit-learn", "lightgbm", "xgboost-cpu", "skops")


def git_commit(folder: Path) -> str | None:
    """The commit checked out in `folder`, if it is inside a git work tree."""
    try:
        done = subprocess.run(
            ["git", "-C", str(folder), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    commit = done.stdout.strip()
    return commit if done.returncode == 0 and commit else None


def library_versions() -> dict[str, str]:
    """Installed versions of the libraries a bundle depends on."""
    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def open_store(
    store: str | None = None, settings: Settings | None = None
) -> tuple[Store, ArtifactStore]:
    """The metadata and artifact stores; an explicit `store` beats ``MLPROD_STORE``."""
    settings = settings or Settings()
    if store is not None:
        settings = settings.model_copy(update={"store": store})
    return Store.from_settings(settings), open_artifacts(settings)
