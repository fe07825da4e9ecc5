"""A version as a server holds it: the model, its verified fast path, its bins, its counts.

Everything the server keeps per loaded version lives on this one object, owned by the
`ModelPool`: when the pool lets a version go, its fast path, compiled trees and bins go
with it. Nothing is kept in module-level tables keyed by models.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mlprod.bundle import Model, remember_verdict
from mlprod.monitoring import Binner
from mlprod.records import Contract, FastPath, records_to_frame, upgrade_scorer

log = logging.getLogger("mlprod.serving")


@dataclass(eq=False)
class LoadedVersion:
    """One loaded, verified version: what scores its requests and what counts them.

    Example::

        loaded = LoadedVersion.prepare(open_version(artifacts, record))
        loaded.score_records([{"tenure_months": 3, ...}], max_records=100)
    """

    model: Model
    fast: FastPath | None = None
    binner: Binner | None = None
    scored: int = field(default=0)  # records this version scored since it was loaded

    @classmethod
    def prepare(cls, model: Model, verdicts: Path | None = None) -> LoadedVersion:
        """Everything done to a fresh version before it may serve, then a warm-up.

        The fast path is attached only if it reproduces the reference path's scores to
        1e-9 (the model's own, `Model.prepare`: the library and the server share it); the
        reference bins come from the bundle (None for bundles from before monitoring).
        A multiclass version is prepared the same way: its fast path (and compiled trees)
        must reproduce every class's probability. `verdicts`: where to remember which
        path it took, for `mlprod models show`.
        """
        reference = model.reference
        check = model.prepare()
        if verdicts is not None:
            remember_verdict(verdicts, model.files, check.path, check.reason)
        where = f"{model.name}@{model.version}"
        if check.fast is None:
            log.warning("%s serves on the reference path: %s", where, check.reason)
        else:
            log.info("%s serves on the fast path: %s", where, check.reason)
        loaded = cls(
            model=model,
            fast=check.fast,
            binner=Binner(reference) if reference is not None else None,
        )
        frame, _ = model.test_data()
        model.score(frame.head(1))
        return loaded

    @property
    def name(self) -> str:
        return self.model.name

    @property
    def version(self) -> int:
        return self.model.version or 0

    @property
    def threshold(self) -> float:
        return self.model.threshold

    @property
    def signature(self) -> dict[str, Any]:
        return self.model.signature

    @property
    def classes(self) -> list[Any]:
        return self.model.classes

    @functools.cached_property
    def multiclass(self) -> bool:
        """Three or more classes: each answer names the most probable and every probability."""
        return self.model.multiclass

    @functools.cached_property
    def contract(self) -> Contract:
        """What this version accepts: its signature, and its interface when it has one."""
        return self.fast.contract if self.fast is not None else Contract.of(self.signature)

    @property
    def path(self) -> str:
        """``fast`` or ``reference``: how requests reach the model."""
        return "reference" if self.fast is None else "fast"

    @property
    def scorer_name(self) -> str:
        """What scores the feature matrix: the reference path, the model, compiled trees."""
        return "reference" if self.fast is None else self.fast.engine

    def score_records(self, records: Any, *, max_records: int) -> np.ndarray:
        """P(positive) per JSON record (multiclass: n x k, in `classes` order); invalid
        input is a SchemaError naming the field."""
        if self.fast is not None:  # verified at load to reproduce the reference to 1e-9
            scores = self.fast.score_records(records, max_records=max_records)
        else:
            frame = records_to_frame(records, self.contract, max_records=max_records)
            scores = self.model.score(frame)
        self.scored += len(scores)
        return scores

    def upgrade(self, scorer: Any) -> str:
        """Let `scorer` take over the fast path once it passes the same check (see `_trees`)."""
        if self.fast is None:
            raise ValueError(f"{self.name}@{self.version} has no fast path to upgrade")
        return upgrade_scorer(self.model, self.fast, scorer)
