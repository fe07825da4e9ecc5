"""Neural networks (the ``mlp`` candidate), saved as safetensors: arrays, never pickle.

The file holds the weights, biases and input scaling as named float32 arrays, and the
architecture (layer sizes, activation, output function, classes) as JSON in the header's
metadata. Loading needs only ``safetensors`` and numpy: a server scores a network in
float64 numpy without importing torch, exactly as the trained model's ``predict_proba``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from mlprod.bundle.flavors._base import SavedModel, Scorer
from mlprod.errors import IntegrityError

_KEY = "mlprod.mlp"


def _relu(hidden: np.ndarray) -> np.ndarray:
    return np.asarray(np.maximum(hidden, 0.0))


def _tanh(hidden: np.ndarray) -> np.ndarray:
    return np.asarray(np.tanh(hidden))


_ACTIVATIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {"relu": _relu, "tanh": _tanh}


def _safetensors() -> Any:
    try:
        import safetensors.numpy as st
    except ModuleNotFoundError:
        raise IntegrityError(
            "this model is a neural network saved as safetensors, which is not installed; "
            "install it with: pip install 'mlprod[torch]'"
        ) from None
    return st


class MLPScorer:
    """The network's forward pass in numpy float64 (dropout is off when scoring)."""

    def __init__(self, path: Path) -> None:
        from safetensors import safe_open

        _safetensors()
        with safe_open(str(path), framework="np") as handle:
            meta = handle.metadata() or {}
            arrays = {name: handle.get_tensor(name) for name in handle.keys()}  # noqa: SIM118
        if _KEY not in meta:
            raise IntegrityError(f"{path.name} has no {_KEY} architecture in its header")
        self.architecture: dict[str, Any] = json.loads(meta[_KEY])
        activation = self.architecture["activation"]
        if activation not in _ACTIVATIONS:
            raise IntegrityError(f"{path.name} asks for an unknown activation {activation!r}")
        self.activate = _ACTIVATIONS[activation]
        self.mean = arrays["input.mean"].astype(np.float64)
        self.scale = arrays["input.scale"].astype(np.float64)
        linear = sorted(
            {int(name.split(".")[0]) for name in arrays if name.split(".")[0].isdigit()}
        )
        self.layers = [
            (arrays[f"{i}.weight"].astype(np.float64).T, arrays[f"{i}.bias"].astype(np.float64))
            for i in linear
        ]

    def probabilities(self, X: np.ndarray) -> np.ndarray:
        """Every class's probability per row, in the order of the architecture's classes."""
        hidden = np.nan_to_num((np.asarray(X, dtype=np.float64) - self.mean) / self.scale)
        for i, (weight, bias) in enumerate(self.layers):
            hidden = hidden @ weight + bias
            if i < len(self.layers) - 1:
                hidden = self.activate(hidden)
        if self.architecture["output"] == "sigmoid":
            positive = 1.0 / (1.0 + np.exp(-hidden[:, 0]))
            return np.column_stack([1.0 - positive, positive])
        shifted = np.exp(hidden - hidden.max(axis=1, keepdims=True))
        return np.asarray(shifted / shifted.sum(axis=1, keepdims=True), dtype=np.float64)

    def scores(self, X: np.ndarray) -> np.ndarray:
        proba = self.probabilities(X)
        return np.asarray(proba[:, 1] if proba.shape[1] == 2 else proba, dtype=float)


class MLPFlavor:
    """Anything that hands over its arrays (``state_arrays``) and ``architecture``."""

    name = "mlp"

    def handles(self, estimator: Any) -> bool:
        return callable(getattr(estimator, "state_arrays", None)) and callable(
            getattr(estimator, "architecture", None)
        )

    def save(self, estimator: Any, folder: Path, stem: str) -> SavedModel:
        st = _safetensors()
        arrays = {name: np.ascontiguousarray(a) for name, a in estimator.state_arrays().items()}
        metadata = {_KEY: json.dumps(estimator.architecture())}
        st.save_file(arrays, str(folder / f"{stem}.safetensors"), metadata=metadata)
        return SavedModel(self.name, f"{stem}.safetensors")

    def load(self, path: Path, trusted_types: list[str]) -> Scorer:
        return MLPScorer(path)
