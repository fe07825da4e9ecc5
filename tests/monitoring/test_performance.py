"""Drift statistics and live performance computed from counts, checked against direct ones."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import average_precision_score, precision_score, recall_score, roc_auc_score

from mlprod.monitoring._drift import drift_stats, psi
from mlprod.monitoring._performance import (
    auc_from_histograms,
    estimated_performance,
    realized_performance,
    wilson,
)
from mlprod.monitoring._reference import numeric_counts, score_histogram


def test_psi_matches_its_definition() -> None:
    live, reference = np.array([30, 50, 20]), np.array([50, 40, 10])
    p, q = live / 100, reference / 100
    assert psi(live, reference) == pytest.approx(float(np.sum((p - q) * np.log(p / q))))
    assert psi(reference, reference) == 0


def test_identical_distributions_show_no_drift(rng: np.random.Generator) -> None:
    edges = list(np.quantile(rng.normal(size=20_000), np.linspace(0, 1, 11)[1:-1]))
    reference = numeric_counts(rng.normal(size=20_000), edges)
    live = numeric_counts(rng.normal(size=200_000), edges)  # a large, clean window
    found = drift_stats(live, reference, categorical=False)
    assert found.psi < 0.01 and found.js < 0.05  # the size of the change is negligible
    assert found.p_value > 0.001 and found.null_rate == 0


def test_a_shift_is_large_and_significant(rng: np.random.Generator) -> None:
    edges = list(np.quantile(rng.normal(size=20_000), np.linspace(0, 1, 11)[1:-1]))
    reference = numeric_counts(rng.normal(size=20_000), edges)
    shifted = numeric_counts(rng.normal(0.5, 1, size=5_000), edges)
    found = drift_stats(shifted, reference, categorical=False)
    assert found.psi > 0.2 and found.p_value < 1e-10 and found.test == "ks"


def test_binned_ks_agrees_with_the_exact_statistic_on_discrete_values(
    rng: np.random.Generator,
) -> None:
    a, b = rng.integers(0, 8, 3000).astype(float), rng.integers(1, 9, 2000).astype(float)
    edges = [0.5 + i for i in range(8)]  # one bin per value: binning loses nothing
    found = drift_stats(numeric_counts(a, edges), numeric_counts(b, edges), categorical=False)
    exact = stats.ks_2samp(a, b)
    assert found.p_value == pytest.approx(exact.pvalue, rel=0.5, abs=1e-12)


def test_categorical_test_is_chi_square_with_missing_and_unseen_rates() -> None:
    # bins: two categories, other, unseen, missing
    reference = np.array([600, 380, 20, 0, 0])
    live = np.array([300, 150, 10, 20, 20])
    found = drift_stats(live, reference, categorical=True)
    assert found.test == "chi2" and found.count == 500
    assert found.unseen_rate == pytest.approx(0.04) and found.null_rate == pytest.approx(0.04)
    table = np.vstack([live, reference])[:, [0, 1, 2, 3, 4]]
    assert found.p_value == pytest.approx(stats.chi2_contingency(table, correction=False).pvalue)


def test_wilson_interval_matches_the_textbook() -> None:
    rate, low, high = wilson(8, 10)
    assert rate == 0.8
    assert low == pytest.approx(0.4902, abs=1e-4) and high == pytest.approx(0.9433, abs=1e-4)
    assert wilson(0, 0) == (None, None, None)


def test_realized_figures_equal_sklearn_on_the_same_rows(rng: np.random.Generator) -> None:
    scores = rng.integers(0, 50, 4000) / 50 + 0.01  # one score per bin: AUC is exact
    truth = (rng.random(4000) < scores).astype(int)
    predicted = (scores >= 0.5).astype(int)
    tp = int(((predicted == 1) & (truth == 1)).sum())
    fp = int(((predicted == 1) & (truth == 0)).sum())
    fn = int(((predicted == 0) & (truth == 1)).sum())
    tn = int(((predicted == 0) & (truth == 0)).sum())
    figures = realized_performance(
        tp=tp,
        fp=fp,
        fn=fn,
        tn=tn,
        pos_hist=score_histogram(scores[truth == 1]),
        neg_hist=score_histogram(scores[truth == 0]),
    )
    assert figures["precision"] == pytest.approx(precision_score(truth, predicted))
    assert figures["recall"] == pytest.approx(recall_score(truth, predicted))
    assert figures["roc_auc"] == pytest.approx(roc_auc_score(truth, scores), abs=1e-12)
    assert figures["average_precision"] == pytest.approx(
        average_precision_score(truth, scores), abs=1e-12
    )
    assert figures["n_labelled"] == 4000
    assert figures["roc_auc_low"] < figures["roc_auc"] < figures["roc_auc_high"]


def test_auc_with_ties_inside_a_bin_counts_half() -> None:
    positives, negatives = np.array([0, 1, 1]), np.array([1, 1, 0])
    # pairs: (p@1, n@0) win, (p@1, n@1) tie, (p@2, n@0) win, (p@2, n@1) win -> 3.5 / 4
    assert auc_from_histograms(positives, negatives) == 0.875
    assert auc_from_histograms(np.array([0, 2]), np.array([0, 0])) is None


def test_estimates_from_calibrated_scores_agree_with_realized_ones(
    rng: np.random.Generator,
) -> None:
    """CBPE: with calibrated scores, the estimate lands within the realized interval."""
    scores = rng.beta(2, 5, 20_000)
    truth = (rng.random(20_000) < scores).astype(int)  # calibrated by construction
    threshold = 0.35
    predicted = scores >= threshold
    estimate = estimated_performance(
        predicted_positive=int(predicted.sum()),
        est_tp=float(scores[predicted].sum()),
        est_positive=float(scores.sum()),
        score_hist=score_histogram(scores),
        calibrate=lambda s: s,
    )
    realized_precision = precision_score(truth, predicted)
    realized_recall = recall_score(truth, predicted)
    assert estimate["n_labelled"] == 0
    assert estimate["precision"] == pytest.approx(realized_precision, abs=0.02)
    assert estimate["recall"] == pytest.approx(realized_recall, abs=0.02)
    assert estimate["roc_auc"] == pytest.approx(roc_auc_score(truth, scores), abs=0.02)


def test_the_vectorised_table_equals_scipy_window_by_window(rng: np.random.Generator) -> None:
    from scipy.spatial.distance import jensenshannon

    from mlprod.monitoring._drift import drift_table

    reference = np.array([500, 300, 150, 40, 0, 10])
    windows = np.vstack(
        [rng.multinomial(n, [0.4, 0.3, 0.2, 0.05, 0.03, 0.02]) for n in (50, 600, 3000)]
        + [np.zeros(6, dtype=int)]
    )
    table = drift_table(windows, reference, categorical=True)
    for row, found in zip(windows[:3], table, strict=False):
        used = (row + reference) > 0
        expected = stats.chi2_contingency(np.vstack([row, reference])[:, used], correction=False)
        p = np.maximum(row / row.sum(), 1e-4)
        q = np.maximum(reference / reference.sum(), 1e-4)
        p, q = p / p.sum(), q / q.sum()
        assert found.p_value == pytest.approx(expected.pvalue, rel=1e-9, abs=1e-300)
        assert found.js == pytest.approx(jensenshannon(p, q, base=2), rel=1e-9)
        assert found.psi == pytest.approx(float(np.sum((p - q) * np.log(p / q))), rel=1e-12)
    assert table[3].count == 0 and table[3].psi == 0 and table[3].p_value == 1.0


def imbalanced(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """3% positives, nine scores in ten under 0.02: what a churn model on a real table gives."""
    truth = (rng.random(n) < 0.03).astype(int)
    logits = np.where(truth == 1, rng.normal(-2.5, 1.5, n), rng.normal(-5.5, 1.2, n))
    return truth, 1 / (1 + np.exp(-logits))


def test_live_auc_is_within_0_005_of_exact_on_imbalanced_scores(
    rng: np.random.Generator,
) -> None:
    for _ in range(5):
        truth, scores = imbalanced(rng, 4000)
        assert np.mean(scores < 0.02) > 0.8
        exact = roc_auc_score(truth, scores)
        live = realized_performance(
            tp=0, fp=0, fn=0, tn=0,
            pos_hist=score_histogram(scores[truth == 1]),
            neg_hist=score_histogram(scores[truth == 0]),
        )  # fmt: skip
        assert abs(float(live["roc_auc"] or 0.0) - exact) < 0.005
        coarse = [np.histogram(scores[truth == c], bins=50, range=(0, 1))[0] for c in (1, 0)]
        assert abs(float(auc_from_histograms(*coarse) or 0.0) - exact) > 0.01  # the old bins


def test_the_tails_equal_scipys_special_functions() -> None:
    """The closed forms that spare `mlprod monitor` importing scipy.special."""
    from scipy.special import chdtrc, kolmogorov

    from mlprod.monitoring._drift import _chi2_sf, _kolmogorov_sf

    x = np.concatenate([[0.0, 1e-9, 1e-3, 0.999999, 1.0], np.linspace(0.01, 6, 1200)])
    found, expected = _kolmogorov_sf(x), kolmogorov(x)
    assert np.all(np.abs(found - expected) <= 1e-12 * np.maximum(expected, 1e-290))
    statistics = np.concatenate([[0.0], np.geomspace(1e-8, 3000, 300)])
    for dof in [*range(1, 40), 99, 100, 165, 200]:
        found = _chi2_sf(statistics, np.full(len(statistics), dof))
        expected = chdtrc(dof, statistics)
        assert np.all(np.abs(found - expected) <= 1e-12 * np.maximum(expected, 1e-290)), dof
    mixed = _chi2_sf(np.array([3.0, 3.0, 0.0]), np.array([1, 4, 2]))  # dof differ per row
    assert mixed.tolist() == pytest.approx([chdtrc(1, 3.0), chdtrc(4, 3.0), 1.0], rel=1e-13)
    # Past the ends: no degrees of freedom, an infinite or a negative statistic, NaN.
    edges = _chi2_sf(np.array([1.0, np.inf, np.inf, -2.0, np.nan]), np.array([0, 1, 6, 3, 2]))
    assert np.isnan(edges[0]) and edges[1] == edges[2] == 0.0 and edges[3] == 1.0
    assert np.isnan(edges[4])
    assert _kolmogorov_sf(np.array([np.inf, -1.0, np.nan]))[:2].tolist() == [0.0, 1.0]


def test_a_drift_report_imports_no_scipy() -> None:
    """scipy.special alone costs `mlprod monitor` about 0.2 s of CPU."""
    import subprocess
    import sys

    code = (
        "import sys, numpy as np\n"
        "from mlprod.monitoring._drift import drift_table\n"
        "drift_table(np.array([[5, 3, 2, 0]]), np.array([4, 4, 2, 1]), categorical=False)\n"
        "drift_table(np.array([[5, 3, 2, 0]]), np.array([4, 4, 2, 1]), categorical=True)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'scipy'))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
