"""Which path a version scores with, remembered, so reading it never loads the model.

Why: `mlprod models show` reports, per version, whether a server would score it on the
fast path and why. Working that out means loading the bundle (scikit-learn, skops) and
replaying its test set through both paths: seconds per version, for a command that
should answer at once. The verdict depends only on the bundle's files and the code that
checks it, so `Model.prepare` (every server load, `mlprod.load`, batch jobs) writes it
beside the compiled trees, keyed by both, and readers take it from there.

Example::

    remember_verdict(folder, model.files, "fast", "matches the reference path to ...")
    recall_verdict(folder, record.files)   # ("fast", "...") or None: never checked here
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import json
import os
from collections.abc import Mapping
from pathlib import Path

# What the check's outcome depends on besides the bundle: the fast path's own code and
# the libraries that score (a new scikit-learn may encode differently, a new LightGBM
# predict differently).
CHECKERS = ("mlprod", "numpy", "scikit-learn", "lightgbm", "xgboost")
FAST_PATH_CODE = Path(__file__).resolve().parents[1] / "records" / "_fastpath.py"


def recall_verdict(folder: Path, files: Mapping[str, str] | None) -> tuple[str, str] | None:
    """The remembered (path, reason) for a bundle with these file hashes, or None."""
    if not files:
        return None
    try:
        found = json.loads((folder / _file_name(files)).read_text(encoding="utf-8"))
        return str(found["path"]), str(found["reason"])
    except (OSError, ValueError, KeyError, TypeError):  # absent or damaged: check again
        return None


def remember_verdict(folder: Path, files: Mapping[str, str], path: str, reason: str) -> None:
    """Keep the verdict for the bundle with these file hashes; whole or absent for readers."""
    target = folder / _file_name(files)
    staging = target.with_suffix(f".{os.getpid()}.tmp")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        staging.write_text(json.dumps({"path": path, "reason": reason}), encoding="utf-8")
        os.replace(staging, target)
    except OSError:  # a read-only or full cache only costs the next reader a check
        with contextlib.suppress(OSError):
            staging.unlink()


def _file_name(files: Mapping[str, str]) -> str:
    digest = hashlib.sha256(json.dumps(sorted(files.items())).encode())
    digest.update(_source(FAST_PATH_CODE))
    for package in CHECKERS:
        digest.update(b"\0" + package.encode() + b"=" + _version(package).encode())
    return f"path-{digest.hexdigest()[:32]}.json"


def _source(path: Path) -> bytes:
    """A module's source, read without importing it (which `models show` must avoid)."""
    try:
        return path.read_bytes()
    except OSError:  # installed without sources: the package version stands in
        return b""


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "-"
