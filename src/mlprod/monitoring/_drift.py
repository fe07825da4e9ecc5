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

import math
from dataclasses import dataclass

import numpy as np

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
    return float(_psi(_shares(np.atleast_2d(live)), _shares(np.asarray(reference)))[0])


def _shares(counts: np.ndarray) -> np.ndarray:
    """Shares per bin (rows of a matrix, or one vector), empty bins floored at `FLOOR`."""
    counts = np.asarray(counts, dtype=float)
    total = counts.sum(axis=-1, keepdims=True)
    even = np.full_like(counts, 1 / counts.shape[-1])
    shares = np.divide(counts, total, out=even, where=total > 0)
    shares = np.maximum(shares, FLOOR)
    return np.asarray(shares / shares.sum(axis=-1, keepdims=True), dtype=float)


def _psi(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    return np.asarray(np.sum((p - q) * np.log(p / q), axis=-1), dtype=float)


def _js(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Jensen-Shannon distance in bits (scipy's `jensenshannon(p, q, base=2)`), per row."""
    m = 0.5 * (p + q)
    divergence = 0.5 * np.sum(p * np.log(p / m), axis=-1) + 0.5 * np.sum(q * np.log(q / m), axis=-1)
    return np.asarray(np.sqrt(np.maximum(divergence, 0.0) / np.log(2)), dtype=float)


def drift_stats(live: np.ndarray, reference: np.ndarray, *, categorical: bool) -> DriftStats:
    """Compare `live` with `reference` counts (same bins; missing last, unseen before it)."""
    return drift_table(np.atleast_2d(live), reference, categorical=categorical)[0]


def drift_table(live: np.ndarray, reference: np.ndarray, *, categorical: bool) -> list[DriftStats]:
    """`drift_stats` for every row of `live` (one window per row), in one vectorised pass.

    A report compares hundreds of windows per feature; doing it row by row through
    scipy's tests costs a hundred times more than the arithmetic itself.
    """
    live = np.atleast_2d(np.asarray(live, dtype=float))
    reference = np.asarray(reference, dtype=float)
    if live.shape[1] != len(reference):
        raise ValueError(f"{live.shape[1]} live bins against {len(reference)} reference bins")
    counts = live.sum(axis=1)
    present = counts > 0
    p, q = _shares(live), _shares(reference)
    psi_values = np.where(present, _psi(p, q), 0.0)
    js_values = np.where(present, _js(p, q), 0.0)
    p_values = _chi2_p(live, reference) if categorical else _binned_ks_p(live, reference)
    safe = np.where(present, counts, 1.0)
    ref_total = reference.sum()
    ref_null = float(reference[-1] / ref_total) if ref_total else 0.0
    null_rates = np.where(present, live[:, -1] / safe, 0.0)
    unseen = np.where(present, live[:, -2] / safe, 0.0) if categorical else np.zeros(len(live))
    return [
        DriftStats(
            count=int(counts[i]),
            psi=float(psi_values[i]),
            js=float(js_values[i]),
            p_value=float(p_values[i]),
            test="chi2" if categorical else "ks",
            null_rate=float(null_rates[i]),
            reference_null_rate=ref_null,
            unseen_rate=float(unseen[i]),
        )
        for i in range(len(live))
    ]


def _chi2_p(live: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """p-values of chi-square tests that each row and the reference share one distribution.

    The 2 x k contingency test of scipy's `chi2_contingency` (no continuity correction),
    over the bins where either sample has counts.
    """
    n1 = live.sum(axis=1, keepdims=True)
    n2 = reference.sum()
    columns = live + reference
    used = columns > 0
    total = n1 + n2
    with np.errstate(divide="ignore", invalid="ignore"):
        expected_live = n1 * columns / total
        expected_ref = n2 * columns / total
        terms = (live - expected_live) ** 2 / expected_live + (
            reference - expected_ref
        ) ** 2 / expected_ref
    statistic = np.where(used, terms, 0.0).sum(axis=1)
    dof = used.sum(axis=1) - 1
    valid = (dof >= 1) & (n1[:, 0] > 0) & (n2 > 0)
    p = np.ones(len(live))
    if valid.any():
        p[valid] = _chi2_sf(statistic[valid], dof[valid])
    return p


def _binned_ks_p(live: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Asymptotic p-values of the KS statistic between binned CDFs (missing values aside)."""
    a, b = live[:, :-1], reference[:-1]
    n, m = a.sum(axis=1), b.sum()
    valid = (n > 0) & (m > 0)
    p = np.ones(len(live))
    if not valid.any() or m == 0:
        return p
    cdf_live = np.cumsum(a[valid], axis=1) / n[valid, None]
    statistic = np.max(np.abs(cdf_live - np.cumsum(b) / m), axis=1)
    effective = n[valid] * m / (n[valid] + m)
    p[valid] = _kolmogorov_sf(statistic * np.sqrt(effective))
    return p


# The two tails below are closed forms, not scipy.special's: importing scipy.special costs
# about 0.2 s of CPU, a third of what `mlprod monitor` may spend in all. Both agree with
# scipy's `chdtrc` and `kolmogorov` to 1e-12 relative (tests/monitoring/test_performance.py).


def _chi2_sf(statistic: np.ndarray, dof: np.ndarray) -> np.ndarray:
    """Upper tail of the chi-square distribution, per pair of 1-D `statistic` and `dof`.

    For whole degrees of freedom k >= 1 (NaN for fewer), with y = x / 2: Q(k/2, y) is a
    finite sum, each term taken through its logarithm so that none overflows:
    even k, e^-y * sum_{j<k/2} y^j / j!; odd k, erfc(sqrt y) + e^-y * sum_{j<(k-1)/2}
    y^(j+1/2) / Gamma(j+3/2).
    """
    y = np.maximum(np.asarray(statistic, dtype=float) / 2, 0.0)
    k = np.asarray(dof, dtype=int)
    odd = k % 2 == 1
    terms = np.maximum((k - odd) // 2, 0)  # how many terms the sum has
    total = np.where(odd, [math.erfc(math.sqrt(v)) for v in y.tolist()], 0.0)
    with np.errstate(divide="ignore"):
        log_y = np.log(y)  # -inf at y = 0, where every term but an even k's first is 0
    for j in range(int(terms.max(initial=0))):
        power = np.where(odd, j + 0.5, j)
        log_gamma = np.where(odd, math.lgamma(j + 1.5), math.lgamma(j + 1))
        with np.errstate(invalid="ignore"):
            exponent = np.where(power == 0, 0.0, power * log_y)  # y^0 = 1, even at y = 0
            term = np.exp(exponent - y - log_gamma)
        total = total + np.where(j < terms, term, 0.0)
    total = np.where(np.isposinf(y), 0.0, total)  # inf - inf above: the tail beyond inf
    return np.asarray(np.where(k >= 1, np.clip(total, 0.0, 1.0), np.nan), dtype=float)


def _kolmogorov_sf(x: np.ndarray) -> np.ndarray:
    """P(K > x) for the Kolmogorov distribution (scipy's `kstwobign.sf`), per value.

    Two series, each where it converges in a few terms: for x >= 1 the alternating one,
    2 * sum (-1)^(k-1) e^(-2 k^2 x^2); below, one minus Jacobi's theta form of the CDF,
    sqrt(2 pi) / x * sum e^(-(2k-1)^2 pi^2 / (8 x^2)).
    """
    x = np.asarray(x, dtype=float)
    k = np.arange(1, 13, dtype=float)[:, None]
    large = np.maximum(x, 1.0)
    alternating = 2 * np.sum((-1) ** (k - 1) * np.exp(-2 * k**2 * large**2), axis=0)
    small = np.clip(x, 1e-3, 1.0)
    theta = (
        np.sqrt(2 * np.pi)
        / small
        * np.sum(np.exp(-((2 * k - 1) ** 2) * np.pi**2 / (8 * small**2)), axis=0)
    )
    tail = np.where(x >= 1.0, alternating, 1.0 - theta)
    return np.asarray(np.where(x <= 1e-3, 1.0, np.clip(tail, 0.0, 1.0)), dtype=float)
