"""The model bundle: the one thing that moves from training to production.

A folder with ``manifest.json`` (name, flavour, signature, threshold, library versions,
and the sha256 of every other file), the fitted feature transformer (skops), the model
in its native format, the test set, the metrics and the report. Loading re-hashes every
file and refuses a bundle that does not match its manifest.
"""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlprod.errors import IntegrityError, NotFoundError, SchemaError
from mlprod.registry._flavors import Scorer, load_scorer, load_skops

MANIFEST = "manifest.json"
REFERENCE = "reference.json"  # reference distributions for drift, since monitoring began
FORMAT_VERSION = 1
TARGET_COLUMN = "__target__"


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def seal_bundle(folder: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    """Hash every file in `folder` and write the manifest beside them."""
    files = {
        path.name: sha256_file(path)
        for path in sorted(folder.iterdir())
        if path.is_file() and path.name != MANIFEST
    }
    sealed = {"format": FORMAT_VERSION, **manifest, "files": files}
    (folder / MANIFEST).write_text(json.dumps(sealed, indent=2, sort_keys=True), encoding="utf-8")
    return sealed


def read_manifest(folder: Path) -> dict[str, Any]:
    """The manifest of a bundle, after checking every file against its hash."""
    path = folder / MANIFEST
    if not path.is_file():
        raise NotFoundError(f"no bundle at {folder}: {MANIFEST} is missing")
    try:
        manifest: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise IntegrityError(f"{path} is not valid JSON ({exc}); the bundle is damaged") from None
    verify_files(folder, manifest)
    return manifest


def verify_files(folder: Path, manifest: dict[str, Any]) -> None:
    """Every listed file exists with its recorded sha256, and nothing else is present."""
    recorded: dict[str, str] = manifest.get("files", {})
    present = {p.name for p in folder.iterdir() if p.is_file() and p.name != MANIFEST}
    unexpected = sorted(present - set(recorded))
    if unexpected:
        raise IntegrityError(
            f"bundle {folder.name} holds unrecorded file(s) {unexpected}; refusing it"
        )
    for name, expected in recorded.items():
        path = folder / name
        if not path.is_file() or Path(name).name != name:
            raise IntegrityError(f"bundle {folder.name} is missing {name}; re-register the model")
        actual = sha256_file(path)
        if actual != expected:
            raise IntegrityError(
                f"bundle file {name} was modified after registration: sha256 {actual[:12]}... "
                f"does not match the recorded {expected[:12]}...; refusing to load it. "
                "Re-train or restore the file."
            )


def read_reference(folder: Path) -> dict[str, Any] | None:
    """A bundle's reference distributions, hash-checked, without loading the model.

    None for bundles trained before mlprod recorded them: such versions report traffic
    and performance but no drift.
    """
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise IntegrityError(f"cannot read the manifest of bundle {folder.name}: {exc}") from None
    expected = manifest.get("files", {}).get(REFERENCE)
    if expected is None:
        return None
    path = folder / REFERENCE
    if not path.is_file() or sha256_file(path) != expected:
        raise IntegrityError(
            f"bundle file {REFERENCE} of {folder.name} does not match its recorded hash; "
            "refusing it. Re-train or restore the file."
        )
    reference: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return reference


class Model:
    """A loaded, hash-verified model version: raw records in, scores and labels out.

    Example::

        model = mlprod.load("churn@production")
        model.predict_proba(frame)[:, 1]
    """

    def __init__(self, folder: Path, manifest: dict[str, Any], transformer: Any, scorer: Scorer):
        self.folder = folder
        self.manifest = manifest
        self.transformer = transformer
        self.scorer = scorer
        self.version: int | None = None

    @classmethod
    def open(cls, folder: str | Path) -> Model:
        """Verify and load the bundle in `folder`."""
        folder = Path(folder)
        manifest = read_manifest(folder)
        trusted = manifest.get("trusted_types", {})
        transformer = load_skops(folder / "transformer.skops", trusted.get("transformer.skops", []))
        model_file = manifest["model_file"]
        scorer = load_scorer(manifest["flavor"], folder / model_file, trusted.get(model_file, []))
        return cls(folder, manifest, transformer, scorer)

    @property
    def name(self) -> str:
        return str(self.manifest["name"])

    @property
    def flavor(self) -> str:
        return str(self.manifest["flavor"])

    @property
    def threshold(self) -> float:
        return float(self.manifest["threshold"])

    @property
    def signature(self) -> dict[str, Any]:
        return dict(self.manifest["signature"])

    @property
    def classes(self) -> list[Any]:
        """[negative label, positive label], as they appear in the training data."""
        return list(self.manifest["signature"]["classes"])

    @property
    def feature_names(self) -> list[str]:
        return [field["name"] for field in self.manifest["signature"]["fields"]]

    def score(self, X: pd.DataFrame) -> np.ndarray:
        """P(positive) for each row of raw feature columns (extra columns are ignored)."""
        if not isinstance(X, pd.DataFrame):
            raise SchemaError(
                f"expected a pandas DataFrame of raw features, got {type(X).__name__}"
            )
        return self.scorer.scores(self.transformer.transform(X))

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """scikit-learn style: column 0 is P(negative), column 1 is P(positive)."""
        positive = self.score(X)
        return np.column_stack([1.0 - positive, positive])

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """Class labels at the version's threshold, in the training data's values."""
        negative, positive = self.classes
        labels: np.ndarray = np.where(self.score(X) >= self.threshold, positive, negative)
        return labels

    @functools.cached_property
    def reference(self) -> dict[str, Any] | None:
        """Reference distributions of the inputs and the score (None in older bundles)."""
        path = self.folder / REFERENCE
        if REFERENCE not in self.manifest.get("files", {}):
            return None
        reference: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        return reference

    def test_data(self) -> tuple[pd.DataFrame, np.ndarray]:
        """The held-out test rows (raw features) and their 0/1 labels, kept for gates."""
        frame = pd.read_parquet(self.folder / "test.parquet")
        y = frame.pop(TARGET_COLUMN).to_numpy(dtype=int)
        return frame, y

    def __repr__(self) -> str:
        version = f"@{self.version}" if self.version is not None else ""
        return f"<Model {self.name}{version} flavor={self.flavor} threshold={self.threshold:.4f}>"
