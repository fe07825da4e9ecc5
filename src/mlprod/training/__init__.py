"""Training: the estimator catalogue, fitting candidates, choosing the winner."""

from mlprod.training._catalogue import make_estimator
from mlprod.training._fit import (
    CandidateResult,
    feature_importance,
    fit_cross_validated,
    fit_holdout,
    pick_winner,
    selection_score,
)

__all__ = [
    "CandidateResult",
    "feature_importance",
    "fit_cross_validated",
    "fit_holdout",
    "make_estimator",
    "pick_winner",
    "selection_score",
]
