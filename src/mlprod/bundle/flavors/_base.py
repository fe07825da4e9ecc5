"""The flavour contract: how one kind of model is saved natively and loaded back to score.

A flavour says which fitted estimators it handles, saves one into a bundle folder in its
own format, and loads that file back as a `Scorer`. Flavours register themselves here;
`save_model` asks each in turn (most specific first), `load_scorer` finds one by name.
Every registered flavour passes the same round-trip conformance test.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from mlprod.errors import IntegrityError


class Scorer(Protocol):
    """Scores a transformed feature matrix: P(positive class) per row.

    A multiclass model answers the n x k class probabilities instead, in its classes' order.
    """

    def scores(self, X: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class SavedModel:
    """What a flavour wrote: its name, the file, and (skops) the types the file needs."""

    flavor: str
    filename: str
    trusted_types: tuple[str, ...] = ()


class Flavor(Protocol):
    """One kind of model: recognise it, save it natively, load it back as a scorer."""

    name: str

    def handles(self, estimator: Any) -> bool:
        """Whether this flavour saves `estimator`."""
        ...

    def save(self, estimator: Any, folder: Path, stem: str) -> SavedModel:
        """Write `estimator` into `folder` (file names start with `stem`)."""
        ...

    def load(self, path: Path, trusted_types: list[str]) -> Scorer:
        """The scorer for a file this flavour wrote."""
        ...


_FLAVORS: dict[str, Flavor] = {}


def register_flavor(flavor: Flavor) -> Flavor:
    """Add a flavour; later registrations are asked first, so specific ones go last."""
    _FLAVORS[flavor.name] = flavor
    return flavor


def flavor_names() -> list[str]:
    """Every registered flavour's name."""
    return sorted(_FLAVORS)


def flavor_of(estimator: Any) -> str:
    """Which flavour persists this fitted estimator."""
    return _flavor_for(estimator).name


def _flavor_for(estimator: Any) -> Flavor:
    for flavor in reversed(list(_FLAVORS.values())):
        if flavor.handles(estimator):
            return flavor
    raise IntegrityError(
        f"no model flavour saves a {type(estimator).__name__}; known: {', '.join(flavor_names())}"
    )


def save_model(estimator: Any, folder: Path, stem: str = "model") -> SavedModel:
    """Save a fitted estimator into `folder` in its flavour's native format."""
    return _flavor_for(estimator).save(estimator, folder, stem)


def load_scorer(flavor: str, path: Path, trusted_types: list[str]) -> Scorer:
    """The scorer for a saved model file of the given flavour."""
    found = _FLAVORS.get(flavor)
    if found is None:
        raise IntegrityError(
            f"unknown model flavour {flavor!r}; known: {', '.join(flavor_names())}"
        )
    return found.load(path, trusted_types)
