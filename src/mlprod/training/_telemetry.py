"""Training telemetry records: what a network did in each epoch, in plain JSON-able data.

Kept apart from the network (and free of torch), so the report, the store and the
dashboard read epochs without importing a deep-learning library.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class LayerStats:
    """One linear layer in one epoch.

    Activations are the layer's output (after its activation function) on probe rows;
    gradients are the weights' gradient at the epoch's last step; the update ratio is
    std(weight change) / std(weight) over that step (healthy training sits near 1e-3).
    """

    name: str
    activation_mean: float
    activation_var: float
    gradient_mean: float
    gradient_var: float
    update_ratio: float


@dataclass
class EpochTelemetry:
    """Losses and metrics on training and validation rows, and per-layer statistics."""

    epoch: int
    train_loss: float
    val_loss: float
    train_metric: float
    val_metric: float
    seconds: float
    telemetry_seconds: float = 0.0  # of `seconds`, spent measuring layers (the cost)
    layers: list[LayerStats] = field(default_factory=list)

    def document(self) -> dict[str, Any]:
        """JSON-able, rounded to what a chart can show."""
        raw = asdict(self)
        return {
            key: _round(value) if key != "layers" else [_round_all(x) for x in value]
            for key, value in raw.items()
        }


def _round(value: Any) -> Any:
    return float(f"{value:.6g}") if isinstance(value, float) else value


def _round_all(layer: dict[str, Any]) -> dict[str, Any]:
    return {key: _round(value) for key, value in layer.items()}


def network_graph(
    modules: Iterable[Any], n_features: int, architecture: dict[str, Any]
) -> list[dict[str, Any]]:
    """The network as a chain of nodes (input, each module, output) for a layered drawing."""
    nodes: list[dict[str, Any]] = [{"label": "input", "detail": f"{n_features} features"}]
    for module in modules:
        kind = type(module).__name__
        if hasattr(module, "in_features"):
            weights = module.in_features * module.out_features + module.out_features
            detail = f"{module.in_features} → {module.out_features} ({weights:,} parameters)"
        elif kind == "Dropout":
            detail = f"p = {module.p:g}"
        else:
            detail = ""
        nodes.append({"label": kind, "detail": detail})
    nodes.append({"label": architecture["output"], "detail": "probabilities"})
    return nodes
