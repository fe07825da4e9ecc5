"""A loaded model version: the bundle's transformer and scorer, verified before loading.

`Model.open` checks every file against the hashes the store kept at registration (or,
for versions registered before it kept them, the manifest's) first, then builds the
transformer (skops, allowed types only) and the flavour's scorer; nothing unpickles.

`Model.prepare` (which `mlprod.load` and the server call) compiles the verified fast path:
from then on DataFrames, lists of records and single records skip pandas and
scikit-learn's per-call checks, and score as the full pipeline does to 1e-9.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlprod.bundle._answers import multiclass_answers
from mlprod.bundle._manifest import (
    MANIFEST,
    REFERENCE,
    TARGET_COLUMN,
    TEST_DATA,
    TRANSFORMER,
    Manifest,
    inside,
    read_manifest,
    sha256_file,
)
from mlprod.bundle._verdicts import remember_verdict
from mlprod.bundle.flavors import Scorer, load_scorer, load_skops
from mlprod.errors import IntegrityError, SchemaError
from mlprod.records import (
    Contract,
    FastPath,
    FastPathCheck,
    check_fast_path,
    records_to_frame,
    reference_scores,
    upgrade_scorer,
)

log = logging.getLogger("mlprod.bundle")

WARM_UP_ROWS = 5


Features = pd.DataFrame | list[Any]


class Model:
    """A loaded, hash-verified model version: raw records in, scores and labels out.

    `X` is a DataFrame of raw feature columns or a list of records (dicts of field values,
    as the server takes them); `predict_record` answers one dict. Once `prepare`d, each
    call takes the fast path when it passed its parity check (`path` says which).

    Example::

        model = mlprod.load("churn@production")     # prepared: model.path == "fast"
        model.predict_proba(frame)[:, 1]
        model.predict_record({"tenure_months": 3, "plan": "basic", ...})
    """

    def __init__(self, folder: Path, manifest: Manifest, transformer: Any, scorer: Scorer):
        self.folder = folder
        self.manifest = manifest
        self.transformer = transformer
        self.scorer = scorer
        self.version: int | None = None
        self.fast_check: FastPathCheck | None = None  # set by `prepare`

    @classmethod
    def open(cls, folder: str | Path, *, expected: Mapping[str, str] | None = None) -> Model:
        """Verify and load the bundle in `folder`.

        `expected`: every file's sha256 as the registry recorded it (`bundle_files`);
        without it the bundle is checked against its own manifest only.
        """
        folder = Path(folder)
        manifest = read_manifest(folder, expected)
        trusted = manifest.trusted_types
        transformer_file = _hashed(folder, manifest, TRANSFORMER)
        transformer = load_skops(transformer_file, trusted.get(TRANSFORMER, []))
        model_file = manifest.model_file
        path = _hashed(folder, manifest, model_file)
        scorer = load_scorer(manifest.flavor, path, trusted.get(model_file, []))
        return cls(folder, manifest, transformer, scorer)

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def flavor(self) -> str:
        return self.manifest.flavor

    @property
    def threshold(self) -> float:
        return self.manifest.threshold

    @property
    def signature(self) -> dict[str, Any]:
        return dict(self.manifest.signature)

    @property
    def classes(self) -> list[Any]:
        """[negative label, positive label] as in the training data; k > 2: every class."""
        return list(self.manifest.signature["classes"])

    @property
    def multiclass(self) -> bool:
        """Three or more classes: scores are an n x k matrix and the label is the argmax."""
        return len(self.classes) > 2

    @functools.cached_property
    def files(self) -> dict[str, str]:
        """Every file's sha256, the manifest's included: what the registry records."""
        return {**self.manifest.files, MANIFEST: sha256_file(self.folder / MANIFEST)}

    @property
    def feature_names(self) -> list[str]:
        return [field["name"] for field in self.manifest.signature["fields"]]

    @functools.cached_property
    def contract(self) -> Contract:
        """What a record must hold: the signature's fields (and its interface's bounds)."""
        return Contract.of(self.signature)

    def prepare(self, compiled: Path | None = None) -> FastPathCheck:
        """Compile and verify the fast path once; `compiled`: a cache of compiled trees.

        The fast path serves only if it reproduces the full pipeline's scores to 1e-9 on
        the version's test set and probe records; otherwise everything stays on the full
        pipeline and `fast_check.reason` says why. Compiled trees already in `compiled`
        (a server or batch job left them; nothing is compiled here) take over the
        booster after passing the same check.
        """
        if self.fast_check is None:
            check = check_fast_path(self)
            where = f"{self.name}@{self.version}"
            if check.fast is None:
                log.info("%s scores on the full pipeline: %s", where, check.reason)
            else:
                log.info("%s scores on the fast path: %s", where, check.reason)
            if compiled is not None:
                remember_verdict(compiled, self.files, check.path, check.reason)
                if check.fast is not None:
                    self._take_compiled_trees(check.fast, compiled, where)
            self.fast_check = check
        return self.fast_check

    def _take_compiled_trees(self, fast: FastPath, folder: Path, where: str) -> None:
        from mlprod.bundle._compiled import cached_trees  # it builds on this module

        try:
            trees = cached_trees(self, folder)
            if trees is not None:
                upgrade_scorer(self, fast, trees)
        except Exception as exc:  # an optimisation must never fail a load; the booster stays
            log.warning("%s keeps its booster: compiled trees failed: %s", where, exc)

    @property
    def path(self) -> str:
        """``fast`` or ``reference`` (the full pipeline): how `score` reaches the model."""
        return "fast" if self.fast_check is not None and self.fast_check.fast else "reference"

    @property
    def engine(self) -> str:
        """What scores the matrix: ``reference``, ``model`` or ``compiled trees``."""
        fast = self.fast_check.fast if self.fast_check else None
        return "reference" if fast is None else fast.engine

    def score(self, X: Features) -> np.ndarray:
        """P(positive) per row of raw feature columns (extra columns are ignored) or record.

        Records are checked as the server checks them: a bad one raises a SchemaError
        naming the record, the field, what was expected and what came. A multiclass
        version answers the n x k class probabilities, in `classes` order.
        """
        fast = self.fast_check.fast if self.fast_check else None
        if isinstance(X, pd.DataFrame):
            scores = None if fast is None else fast.score_frame(X)
            return self.reference_score(X) if scores is None else scores
        if isinstance(X, list) and X:
            if fast is not None:
                return fast.score_records(X, max_records=len(X))
            return self.reference_score(records_to_frame(X, self.contract, max_records=len(X)))
        if isinstance(X, Mapping):
            raise SchemaError(
                "expected a DataFrame or a list of records, got one dict: "
                "use predict_record(record), or pass [record]"
            )
        got = "an empty list" if isinstance(X, list) else type(X).__name__
        raise SchemaError(
            f"expected a pandas DataFrame of raw features or a non-empty list of records "
            f"(dicts), got {got}"
        )

    def reference_score(self, X: pd.DataFrame) -> np.ndarray:
        """P(positive) on the full pipeline (transformer, then model): what the fast path
        is checked against, and what answers whenever it steps aside."""
        if not isinstance(X, pd.DataFrame):
            raise SchemaError(
                f"expected a pandas DataFrame of raw features, got {type(X).__name__}"
            )
        return reference_scores(self, X)

    def predict_proba(self, X: Features) -> np.ndarray:
        """scikit-learn style: column 0 is P(negative), column 1 is P(positive).

        Multiclass: one column per class, in `classes` order.
        """
        positive = self.score(X)
        if positive.ndim == 2:
            return positive
        both = np.empty((len(positive), 2))  # column_stack's answer, without its checks
        np.subtract(1.0, positive, out=both[:, 0])
        both[:, 1] = positive
        return both

    def predict(self, X: Features) -> np.ndarray:
        """Class labels at the version's threshold, in the training data's values.

        Multiclass: the most probable class.
        """
        labels: np.ndarray
        if self.multiclass:
            labels = np.asarray(self.classes)[np.argmax(self.score(X), axis=1)]
            return labels
        negative, positive = self.classes
        labels = np.where(self.score(X) >= self.threshold, positive, negative)
        return labels

    def predict_record(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """One record's answer as the server gives it: ``{"score": ..., "label": ...}``.

        A score that is not a finite number comes back as None, flagged, with no label.
        Multiclass: ``{"label": the most probable class, "score": its probability,
        "probabilities": {class: p, ...}}``, built by the code the server's answers use.
        """
        if self.multiclass:
            return multiclass_answers(self.score([record]), self.classes)[0]
        score = float(self.score([record])[0])
        if not np.isfinite(score):
            return {"score": None, "label": None, "flags": ["non_finite_score"]}
        negative, positive = self.classes
        return {"score": score, "label": positive if score >= self.threshold else negative}

    @functools.cached_property
    def reference(self) -> dict[str, Any] | None:
        """Reference distributions of the inputs and the score (None in older bundles)."""
        path = self.folder / REFERENCE
        if REFERENCE not in self.manifest.files:
            return None
        reference: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        return reference

    def warm_up(self) -> np.ndarray:
        """Score the first test rows; IntegrityError unless every score is a probability.

        What a version must do before it takes traffic: a model that loads but cannot
        score, or scores NaN, is as broken as one that does not load.
        """
        frame, _ = self.test_data()
        scores = np.asarray(self.score(frame.head(WARM_UP_ROWS)), dtype=float)
        expected = min(len(frame), WARM_UP_ROWS)
        shape = (expected, len(self.classes)) if self.multiclass else (expected,)
        if scores.shape != shape or not np.all((scores >= 0) & (scores <= 1)):
            raise IntegrityError(
                f"{self.name} answered its warm-up with {scores[:expected].tolist()} for "
                f"{expected} test rows, not {expected} probabilities; the bundle is damaged"
            )
        return scores

    def test_data(self) -> tuple[pd.DataFrame, np.ndarray]:
        """The held-out test rows (raw features) and their 0/1 labels, kept for gates."""
        frame = pd.read_parquet(self.folder / TEST_DATA)
        y = frame.pop(TARGET_COLUMN).to_numpy(dtype=int)
        return frame, y

    def __repr__(self) -> str:
        version = f"@{self.version}" if self.version is not None else ""
        return f"<Model {self.name}{version} flavor={self.flavor} threshold={self.threshold:.4f}>"


def _hashed(folder: Path, manifest: Manifest, name: str) -> Path:
    """A file the model is built from: inside the bundle and covered by a checked hash."""
    path = inside(folder, name, "model file")
    if name not in manifest.files:
        raise IntegrityError(
            f"bundle {folder.name}: {name!r} is not among the files its manifest hashes; "
            "refusing to load an unchecked file"
        )
    return path
