"""Training: the catalogue, fitting and choosing, tuning, ensembles, selection, ranking."""

from mlprod.training._catalogue import make_estimator
from mlprod.training._curves import learning_curve
from mlprod.training._ensemble import Ensemble, ensemble_cross_validated, ensemble_holdout
from mlprod.training._fit import (
    CandidateResult,
    candidate_names,
    class_scores,
    feature_importance,
    fit_cross_validated,
    fit_holdout,
    pick_winner,
    selection_score,
)
from mlprod.training._rank import rank_features
from mlprod.training._selection import Selection, fit_selection, with_selection
from mlprod.training._space import DEFAULT_SPACES, describe_space, search_space
from mlprod.training._spark import fit_xgboost_on_spark
from mlprod.training._studies import study_name, study_storage
from mlprod.training._tune import (
    TuneTask,
    create_study,
    fit_early_stopped,
    quiet_optuna,
    run_worker,
    trial_rows,
    tuned_candidate,
    tuning_folds,
    uses_budget,
)

__all__ = [
    "DEFAULT_SPACES",
    "CandidateResult",
    "Ensemble",
    "Selection",
    "TuneTask",
    "candidate_names",
    "class_scores",
    "create_study",
    "describe_space",
    "ensemble_cross_validated",
    "ensemble_holdout",
    "feature_importance",
    "fit_cross_validated",
    "fit_early_stopped",
    "fit_holdout",
    "fit_selection",
    "fit_xgboost_on_spark",
    "learning_curve",
    "make_estimator",
    "pick_winner",
    "quiet_optuna",
    "rank_features",
    "run_worker",
    "search_space",
    "selection_score",
    "study_name",
    "study_storage",
    "trial_rows",
    "tuned_candidate",
    "tuning_folds",
    "uses_budget",
    "with_selection",
]
