"""How far a live window's distribution moved from the reference, from bin counts alone.

Three views of one comparison: the population stability index (PSI) and the
Jensen-Shannon distance measure how large the change is; a chi-square test
(categories) or a binned Kolmogorov-Smirnov test (numbers) says how sure we can be it
is not noise. Alarms should follow the size of a change, not its significance alone: on
a large window the tests find trivial differences "significant". Missing-value and
unseen-category rates are reported beside them, since an upstream break shows there first.

Example::

    stats = drift_stats(live_counts, reference_counts, categorical=False)
    stats.psi, stats.p_value, stats.null_rate
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats as scipy_stats
from scipy.spatial.distance import jensenshannon

FLOOR = 1e-4  # share given to empty bins so PSI stays finite, as is customary


@dataclass(frozen=True)
class DriftStats:
    """One feature in one window against its reference."""

    count: int
    psi: float
    js: float
    p_value: float
    test: str  # "chi2" or "ks"
    null_rate: float
    reference_null_rate: float
    unseen_rate: float


def psi(live: np.ndarray, reference: np.ndarray) -> float:
    """Population stability index between two count vectors over the same bins."""
    p = _shares(live)
    q = _shares(reference)
    return float(np.sum((p - q) * np.log(p / q)))


def _shares(counts: np.ndarray) -> np.ndarray:
    total = counts.sum()
    shares = counts / total if total else np.full(len(counts), 1 / len(counts))
    shares = np.maximum(shares, FLOOR)
    return np.asarray(shares / shares.sum(), dtype=float)


def drift_stats(live: np.ndarray, reference: np.ndarray, *, categorical: bool) -> DriftStats:
    """Compare `live` with `reference` counts (same bins; missing last, unseen before it)."""
    live = np.asarray(live, dtype=float)
    reference = np.asarray(reference, dtype=float)
    if len(live) != len(reference):
        raise ValueError(f"{len(live)} live bins against {len(reference)} reference bins")
    count = int(live.sum())
    ref_total = reference.sum()
    js = float(jensenshannon(_shares(live), _shares(reference), base=2)) if count else 0.0
    p_value = _chi2_p(live, reference) if categorical else _binned_ks_p(live, reference)
    return DriftStats(
        count=count,
        psi=psi(live, reference) if count else 0.0,
        js=js,
        p_value=p_value,
        test="chi2" if categorical else "ks",
        null_rate=float(live[-1] / count) if count else 0.0,
        reference_null_rate=float(reference[-1] / ref_total) if ref_total else 0.0,
        unseen_rate=float(live[-2] / count) if categorical and count else 0.0,
    )


def _chi2_p(live: np.ndarray, reference: np.ndarray) -> float:
    """p-value of a chi-square test that both samples come from one distribution."""
    used = (live + reference) > 0
    table = np.vstack([live[used], reference[used]])
    if table.shape[1] < 2 or live.sum() == 0 or reference.sum() == 0:
        return 1.0
    return float(scipy_stats.chi2_contingency(table, correction=False).pvalue)


def _binned_ks_p(live: np.ndarray, reference: np.ndarray) -> float:
    """Asymptotic p-value of the KS statistic between binned CDFs (missing values aside)."""
    a, b = live[:-1], reference[:-1]
    n, m = a.sum(), b.sum()
    if n == 0 or m == 0:
        return 1.0
    statistic = float(np.max(np.abs(np.cumsum(a) / n - np.cumsum(b) / m)))
    effective = n * m / (n + m)
    return float(scipy_stats.kstwobign.sf(statistic * np.sqrt(effective)))
