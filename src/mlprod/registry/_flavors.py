"""Model flavours: each saves an estimator in its native format and loads it back safely.

Nothing here unpickles: LightGBM is saved as its text model, XGBoost as UBJSON and
scikit-learn estimators with skops, whose loader only builds types we allow.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from mlprod.errors import IntegrityError

# Type prefixes a skops file may ask for; anything else is refused at load.
ALLOWED_TYPE_PREFIXES = ("sklearn.", "numpy.", "scipy.", "mlprod.features.", "builtins.")


class Scorer(Protocol):
    """Scores a transformed feature matrix: P(positive class) per row."""

    def scores(self, X: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class SavedModel:
    """What a flavour wrote: its name, the file, and (skops) the types the file needs."""

    flavor: str
    filename: str
    trusted_types: tuple[str, ...] = ()


def flavor_of(estimator: Any) -> str:
    """Which flavour persists this fitted estimator."""
    module = type(estimator).__module__
    if module.startswith("mlprod.training") and type(estimator).__name__ == "Ensemble":
        return "ensemble"
    if module.startswith("lightgbm"):
        return "lightgbm"
    if module.startswith("xgboost"):
        return "xgboost"
    return "sklearn"


def save_model(estimator: Any, folder: Path, stem: str = "model") -> SavedModel:
    """Save a fitted estimator into `folder` in its flavour's native format."""
    flavor = flavor_of(estimator)
    if flavor == "ensemble":
        return _save_ensemble(estimator, folder)
    if flavor == "lightgbm":
        estimator.booster_.save_model(str(folder / f"{stem}.txt"))
        return SavedModel("lightgbm", f"{stem}.txt")
    if flavor == "xgboost":
        estimator.get_booster().save_model(str(folder / f"{stem}.ubj"))
        return SavedModel("xgboost", f"{stem}.ubj")
    return save_skops(estimator, folder / f"{stem}.skops", "sklearn")


def _save_ensemble(estimator: Any, folder: Path) -> SavedModel:
    """Each member in its own native file beside ``ensemble.json`` (all hashed by the bundle).

    The member list and the types each skops member may load live in ``ensemble.json``,
    which the manifest hashes like every other file, so nothing here is trusted blindly.
    """
    members = []
    for i, member in enumerate(estimator.members):
        saved = save_model(member, folder, stem=f"member{i}")
        if saved.flavor == "ensemble":
            raise IntegrityError("an ensemble cannot contain another ensemble")
        members.append(
            {"flavor": saved.flavor, "file": saved.filename, "trusted": list(saved.trusted_types)}
        )
    document = {"combiner": estimator.combiner, "names": estimator.names, "members": members}
    (folder / "ensemble.json").write_text(json.dumps(document, indent=2), encoding="utf-8")
    return SavedModel("ensemble", "ensemble.json")


def combine_scores(combiner: dict[str, Any], scores: np.ndarray) -> np.ndarray:
    """Members' P(positive) (one column each) to the ensemble's P(positive).

    ``voting``: the mean. ``stacking``: a logistic model over the members' scores.
    Training and serving both call this, so they cannot disagree.
    """
    matrix = np.asarray(scores, dtype=float)
    method = combiner.get("method")
    if method == "voting":
        return np.asarray(matrix.mean(axis=1), dtype=float)
    if method == "stacking":
        logit = matrix @ np.asarray(combiner["coef"], dtype=float) + float(combiner["intercept"])
        return np.asarray(1.0 / (1.0 + np.exp(-logit)), dtype=float)
    raise IntegrityError(f"unknown ensemble method {method!r}; known: voting, stacking")


def save_skops(obj: Any, path: Path, flavor: str) -> SavedModel:
    """skops-dump `obj` and record exactly the types its file will ask to build."""
    import skops.io as sio

    sio.dump(obj, path)
    needed = tuple(sorted(sio.get_untrusted_types(file=path)))
    check_allowed(needed, path.name)
    return SavedModel(flavor, path.name, needed)


def check_allowed(types: tuple[str, ...] | list[str], filename: str) -> None:
    """Refuse a file that asks for a type outside the platform's allow-list."""
    refused = [t for t in types if not t.startswith(ALLOWED_TYPE_PREFIXES)]
    if refused:
        raise IntegrityError(
            f"{filename} asks to load type(s) {refused}, which mlprod does not allow; "
            "only scikit-learn, numpy, scipy and mlprod feature types may be loaded"
        )


def load_skops(path: Path, recorded: list[str]) -> Any:
    """Load a skops file that asks for nothing beyond its recorded, allowed types."""
    import skops.io as sio

    needed = sio.get_untrusted_types(file=path)
    check_allowed(needed, path.name)
    extra = sorted(set(needed) - set(recorded))
    if extra:
        raise IntegrityError(f"{path.name} asks for types {extra} not recorded in its manifest")
    return sio.load(path, trusted=needed)


class _SklearnScorer:
    def __init__(self, estimator: Any) -> None:
        self.estimator = estimator

    def scores(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(self.estimator.predict_proba(X)[:, 1], dtype=float)


class _LightGBMScorer:
    def __init__(self, path: Path) -> None:
        import lightgbm

        self.model_file = path  # what the optional tree compiler reads
        self.booster = lightgbm.Booster(model_file=str(path))

    def scores(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(self.booster.predict(X, num_threads=1), dtype=float)


class _XGBoostScorer:
    def __init__(self, path: Path) -> None:
        import xgboost

        self.booster = xgboost.Booster(model_file=str(path))
        self.booster.set_param({"nthread": 1})

    def scores(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(self.booster.inplace_predict(X), dtype=float)


class _EnsembleScorer:
    def __init__(self, path: Path) -> None:
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise IntegrityError(f"{path.name} is not valid JSON ({exc})") from None
        self.combiner: dict[str, Any] = document["combiner"]
        self.members: list[Scorer] = []
        for member in document["members"]:
            if member["flavor"] == "ensemble" or Path(member["file"]).name != member["file"]:
                raise IntegrityError(f"{path.name} lists an invalid member {member['file']!r}")
            self.members.append(
                load_scorer(member["flavor"], path.parent / member["file"], member["trusted"])
            )

    def scores(self, X: np.ndarray) -> np.ndarray:
        return combine_scores(self.combiner, np.column_stack([m.scores(X) for m in self.members]))


def load_scorer(flavor: str, path: Path, trusted_types: list[str]) -> Scorer:
    """The scorer for a saved model file of the given flavour."""
    if flavor == "ensemble":
        return _EnsembleScorer(path)
    if flavor == "lightgbm":
        return _LightGBMScorer(path)
    if flavor == "xgboost":
        return _XGBoostScorer(path)
    if flavor == "sklearn":
        return _SklearnScorer(load_skops(path, trusted_types))
    raise IntegrityError(
        f"unknown model flavour {flavor!r}; known: sklearn, lightgbm, xgboost, ensemble"
    )
