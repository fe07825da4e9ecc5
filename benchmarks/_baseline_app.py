"""The baseline: the FastAPI endpoint people write by hand around a trained model.

JSON body in, a DataFrame built from its records, ``predict_proba``, scores out: nothing
more (no validation, ids, labels, limits or metrics). ``benchmarks/serve.py`` runs it
with uvicorn, on the same bundle ``mlprod serve`` serves, so the two compare like for like::

    MLPROD_STORE=... MLPROD_BENCH_REF=churn@production \\
        uvicorn --factory --app-dir benchmarks _baseline_app:create_app
"""

from __future__ import annotations

import os
from typing import Any

import pandas as pd
from fastapi import FastAPI

import mlprod


def create_app() -> FastAPI:
    """Load the model once, then score each request's records with predict_proba."""
    model = mlprod.load(os.environ["MLPROD_BENCH_REF"], store=os.environ["MLPROD_STORE"])
    app = FastAPI()

    @app.post("/predict")
    def predict(payload: dict[str, Any]) -> dict[str, Any]:
        frame = pd.DataFrame(payload["records"])
        return {"scores": model.predict_proba(frame)[:, 1].tolist()}

    return app
