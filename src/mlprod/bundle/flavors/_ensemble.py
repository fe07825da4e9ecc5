"""Ensembles: each member in its own native file beside ``ensemble.json``.

The member list and the types each skops member may load live in ``ensemble.json``,
which the manifest hashes like every other file, so nothing here is trusted blindly.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from mlprod.bundle.flavors._base import SavedModel, Scorer, load_scorer, save_model
from mlprod.errors import IntegrityError

DOCUMENT = "ensemble.json"


def combine_scores(combiner: dict[str, Any], scores: np.ndarray) -> np.ndarray:
    """Members' scores to the ensemble's, the same way in training and serving.

    Binary: `scores` is n x m, each member's P(positive) as a column; the answer is
    P(positive) per row. Multiclass: `scores` is n x m x k, each member's class
    probabilities; the answer is n x k. ``voting`` takes the mean; ``stacking`` a
    logistic model over the members' scores (multiclass: a multinomial one over the
    n x (m*k) probabilities, member by member, with a coef matrix k x (m*k), one
    intercept per class, and a softmax). Training and serving both call this, so they
    cannot disagree.
    """
    matrix = np.asarray(scores, dtype=float)
    method = combiner.get("method")
    if method not in {"voting", "stacking"}:
        raise IntegrityError(f"unknown ensemble method {method!r}; known: voting, stacking")
    if matrix.ndim == 3:
        return _combine_classes(combiner, matrix)
    if method == "voting":
        return np.asarray(matrix.mean(axis=1), dtype=float)
    logit = matrix @ np.asarray(combiner["coef"], dtype=float) + float(combiner["intercept"])
    return np.asarray(1.0 / (1.0 + np.exp(-logit)), dtype=float)


def _combine_classes(combiner: dict[str, Any], scores: np.ndarray) -> np.ndarray:
    """n x m x k members' class probabilities to the ensemble's n x k."""
    if combiner["method"] == "voting":
        return np.asarray(scores.mean(axis=1), dtype=float)
    rows, members, classes = scores.shape
    coef = np.asarray(combiner["coef"], dtype=float)
    intercept = np.asarray(combiner["intercept"], dtype=float)
    if coef.shape != (classes, members * classes) or intercept.shape != (classes,):
        raise IntegrityError(
            f"{DOCUMENT}: the stacking coef is {coef.shape} and its intercept "
            f"{intercept.shape}, but {members} members of {classes} classes need "
            f"({classes}, {members * classes}) and ({classes},); retrain the version"
        )
    logits = scores.reshape(rows, members * classes) @ coef.T + intercept
    logits -= logits.max(axis=1, keepdims=True)
    exp = np.exp(logits)
    return np.asarray(exp / exp.sum(axis=1, keepdims=True), dtype=float)


class _EnsembleScorer:
    def __init__(self, path: Path) -> None:
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise IntegrityError(f"{path.name} is not valid JSON ({exc})") from None
        self.combiner: dict[str, Any] = document["combiner"]
        self.members: list[Scorer] = []
        for member in document["members"]:
            name = member["file"]
            if member["flavor"] == "ensemble" or not _plain(name):
                raise IntegrityError(f"{path.name} lists an invalid member {name!r}")
            self.members.append(
                load_scorer(member["flavor"], path.parent / member["file"], member["trusted"])
            )

    def scores(self, X: np.ndarray) -> np.ndarray:
        # np.stack: P(positive) columns (n x m), or class probabilities (n x m x k)
        return combine_scores(self.combiner, np.stack([m.scores(X) for m in self.members], axis=1))


class EnsembleFlavor:
    """A fitted ensemble: anything with ``members`` and a ``combiner`` document."""

    name = "ensemble"

    def handles(self, estimator: Any) -> bool:
        return hasattr(estimator, "members") and isinstance(
            getattr(estimator, "combiner", None), dict
        )

    def save(self, estimator: Any, folder: Path, stem: str) -> SavedModel:
        members = []
        for i, member in enumerate(estimator.members):
            saved = save_model(member, folder, stem=f"member{i}")
            if saved.flavor == self.name:
                raise IntegrityError("an ensemble cannot contain another ensemble")
            members.append(
                {
                    "flavor": saved.flavor,
                    "file": saved.filename,
                    "trusted": list(saved.trusted_types),
                }
            )
        document = {"combiner": estimator.combiner, "names": estimator.names, "members": members}
        (folder / DOCUMENT).write_text(json.dumps(document, indent=2), encoding="utf-8")
        return SavedModel(self.name, DOCUMENT)

    def load(self, path: Path, trusted_types: list[str]) -> Scorer:
        return _EnsembleScorer(path)


def _plain(name: object) -> bool:
    """A member is a plain file beside ``ensemble.json``: no folder, ``..`` or absolute path."""
    return (
        isinstance(name, str)
        and name not in {"", ".", ".."}
        and Path(name).name == name
        and "\\" not in name
    )
