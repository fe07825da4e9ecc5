"""The catalogue of standard algorithms, each with defaults that work out of the box."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from mlprod.errors import SpecError
from mlprod.spec import CATALOGUE


def _logistic(seed: int) -> Any:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    model = LogisticRegression(max_iter=2000, C=1.0)
    return Pipeline([("scale", StandardScaler()), ("model", model)])


def _random_forest(seed: int) -> Any:
    from sklearn.ensemble import RandomForestClassifier

    return RandomForestClassifier(
        n_estimators=200, min_samples_leaf=5, max_features="sqrt", n_jobs=2, random_state=seed
    )


def _hist_gbm(seed: int) -> Any:
    from sklearn.ensemble import HistGradientBoostingClassifier

    return HistGradientBoostingClassifier(
        max_iter=300, learning_rate=0.05, early_stopping=False, random_state=seed
    )


def _lightgbm(seed: int) -> Any:
    from lightgbm import LGBMClassifier

    return LGBMClassifier(
        n_estimators=300,
        learning_rate=0.05,
        num_leaves=31,
        min_child_samples=20,
        subsample=0.8,
        subsample_freq=1,
        colsample_bytree=0.8,
        random_state=seed,
        n_jobs=2,
        verbose=-1,
    )


def _xgboost(seed: int) -> Any:
    from xgboost import XGBClassifier

    return XGBClassifier(
        n_estimators=300,
        learning_rate=0.05,
        max_depth=6,
        subsample=0.8,
        colsample_bytree=0.8,
        tree_method="hist",
        eval_metric="logloss",
        random_state=seed,
        n_jobs=2,
    )


def _svm(seed: int) -> Any:
    """An RBF SVC with probabilities from a sigmoid (Platt) calibrated over 3 folds.

    SVC's own ``probability=True`` runs the same 5-fold Platt fit internally but with a
    private RNG; calibrating explicitly is seeded and its method can be changed. Kernel
    SVMs cost O(rows^2): above ~20k rows, prefer ``kernel: linear`` (LinearSVC-like).
    """
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    svc = SVC(C=1.0, kernel="rbf", gamma="scale", cache_size=200, random_state=seed)
    model = CalibratedClassifierCV(svc, method="sigmoid", cv=3)
    return Pipeline([("scale", StandardScaler()), ("model", model)])


def _mlp(seed: int) -> Any:
    try:
        from mlprod.training._mlp import MLPClassifier
    except ModuleNotFoundError as exc:
        raise SpecError(
            f"candidate 'mlp' needs PyTorch, which is not installed ({exc}); "
            "install it with: pip install 'mlprod[torch]'"
        ) from None
    return MLPClassifier(random_state=seed)


_FACTORIES: Mapping[str, Callable[[int], Any]] = {
    "logistic_regression": _logistic,
    "random_forest": _random_forest,
    "hist_gbm": _hist_gbm,
    "lightgbm": _lightgbm,
    "xgboost": _xgboost,
    "svm": _svm,
    "mlp": _mlp,
}
assert set(_FACTORIES) == set(CATALOGUE)


def make_estimator(kind: str, params: Mapping[str, Any], seed: int) -> Any:
    """An unfitted estimator of catalogue type `kind` with `params` over its defaults.

    Unknown params are a `SpecError` listing the valid ones, before any time is spent.

    Example::

        make_estimator("lightgbm", {"num_leaves": 63}, seed=42)
    """
    if kind not in _FACTORIES:
        raise SpecError(f"unknown candidate {kind!r}; the catalogue has {', '.join(CATALOGUE)}")
    estimator = _FACTORIES[kind](seed)
    if not params:
        return estimator
    target = _final_step(estimator)
    check_params(kind, target, params, where="candidates")
    target.set_params(**params)
    return estimator


def check_params(kind: str, target: Any, names: Iterable[str], *, where: str) -> None:
    """A `SpecError` at `where` for any of `names` that `target` does not take."""
    valid = set(target.get_params(deep=False))
    unknown = sorted(set(names) - valid)
    if unknown:
        raise SpecError(
            f"{where}: unknown parameter(s) {unknown} for {kind}; "
            f"valid ones include {', '.join(sorted(valid)[:40])}"
        )


def tunable_part(kind: str) -> Any:
    """The estimator whose parameters a spec sets for `kind` (a pipeline's last step)."""
    return _final_step(_FACTORIES[kind](0))


def _final_step(estimator: Any) -> Any:
    final = estimator.steps[-1][1] if hasattr(estimator, "steps") else estimator
    inner = getattr(final, "estimator", None)  # a calibrated SVC: its params are the SVC's
    return inner if type(final).__name__ == "CalibratedClassifierCV" else final
