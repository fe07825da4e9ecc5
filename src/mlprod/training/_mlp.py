"""A multilayer perceptron in PyTorch behind the scikit-learn estimator contract.

Importable only where torch is installed (``pip install 'mlprod[torch]'``): the catalogue
imports this module lazily. Inputs are standardised inside the model (means and scales are
learned in `fit`), so it takes the feature matrix every other candidate takes. Training
stops early on a validation slice carved from the rows it is given, and keeps the weights
of its best epoch. Each epoch leaves a telemetry record: losses, metrics, and per layer the
mean and variance of activations and gradients and the update-to-weight ratio.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from itertools import pairwise
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.model_selection import train_test_split
from torch import nn

from mlprod.errors import SpecError
from mlprod.training._telemetry import EpochTelemetry, LayerStats, network_graph

EpochCallback = Callable[[dict[str, Any]], None]
ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "tanh": nn.Tanh}
PROBE_ROWS = 256  # validation rows whose activations are measured each epoch


def resolve_device(wanted: str) -> torch.device:
    """``cuda`` uses a GPU when one is present and falls back to the CPU otherwise."""
    if wanted not in ("cpu", "cuda"):
        raise SpecError(f"candidates.mlp.params.device must be 'cpu' or 'cuda', got {wanted!r}")
    if wanted == "cuda" and torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")


class MLPClassifier(ClassifierMixin, BaseEstimator):  # type: ignore[misc]  # sklearn is untyped
    """Feed-forward network: `depth` hidden layers of `width` units, Adam, early stopping.

    Example::

        model = MLPClassifier(width=32, depth=2, max_epochs=30).fit(X, y)
        model.predict_proba(X)[:, 1], model.telemetry_[-1].val_loss
    """

    def __init__(
        self,
        width: int = 64,
        depth: int = 2,
        activation: str = "relu",
        dropout: float = 0.1,
        learning_rate: float = 3e-3,
        weight_decay: float = 1e-4,
        batch_size: int = 128,
        max_epochs: int = 200,
        patience: int = 10,
        validation_fraction: float = 0.15,
        device: str = "cpu",
        telemetry: bool = True,
        n_jobs: int = 1,
        random_state: int = 0,
    ) -> None:
        self.width = width
        self.depth = depth
        self.activation = activation
        self.dropout = dropout
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.device = device
        self.telemetry = telemetry
        self.n_jobs = n_jobs
        self.random_state = random_state

    # --- the network --------------------------------------------------------------

    def architecture(self) -> dict[str, Any]:
        """What the saved weights mean: layer sizes, activation and output function."""
        return {
            "sizes": [int(self.n_features_in_), *[int(self.width)] * int(self.depth), self.n_out_],
            "activation": self.activation,
            "output": "sigmoid" if self.n_out_ == 1 else "softmax",
            "classes": [c.item() if hasattr(c, "item") else c for c in self.classes_],
        }

    def _build(self) -> nn.Sequential:
        if self.activation not in ACTIVATIONS:
            raise SpecError(
                f"candidates.mlp.params.activation must be one of {sorted(ACTIVATIONS)}, "
                f"got {self.activation!r}"
            )
        sizes = self.architecture()["sizes"]
        layers: list[nn.Module] = []
        for i, (fan_in, fan_out) in enumerate(pairwise(sizes)):
            layers.append(nn.Linear(fan_in, fan_out))
            if i < len(sizes) - 2:
                layers.append(ACTIVATIONS[self.activation]())
                if self.dropout > 0:
                    layers.append(nn.Dropout(self.dropout))
        return nn.Sequential(*layers)

    def state_arrays(self) -> dict[str, np.ndarray]:
        """Weights and biases (float32) and the input scaling (float64), named for safetensors."""
        arrays = {k: v.detach().cpu().numpy().copy() for k, v in self.network_.state_dict().items()}
        arrays["input.mean"] = self.mean_.astype(np.float64)  # float64: scores match exactly
        arrays["input.scale"] = self.scale_.astype(np.float64)
        return arrays

    # --- fitting ------------------------------------------------------------------

    def fit(self, X: Any, y: Any, on_epoch: EpochCallback | None = None) -> MLPClassifier:
        """Train until the validation loss stops improving for `patience` epochs.

        `on_epoch` receives the curve so far after every epoch (a run stores it, so the
        dashboard shows training while it happens).
        """
        X = np.asarray(X, dtype=np.float64)
        y = np.asarray(y).ravel()
        self.classes_ = np.unique(y)
        if self.classes_.size < 2:
            raise ValueError(f"mlp needs at least two classes in y, got {self.classes_.tolist()}")
        self.n_features_in_ = X.shape[1]
        self.n_out_ = 1 if self.classes_.size == 2 else int(self.classes_.size)
        codes = np.searchsorted(self.classes_, y)
        fit_idx, val_idx = train_test_split(
            np.arange(len(y)),
            test_size=self.validation_fraction,
            stratify=codes,
            random_state=self.random_state,
        )
        self.mean_ = np.nanmean(X[fit_idx], axis=0)
        self.scale_ = np.nanstd(X[fit_idx], axis=0)
        self.scale_[~(self.scale_ > 0)] = 1.0
        self.mean_ = np.nan_to_num(self.mean_)
        device = resolve_device(self.device)
        self.device_ = str(device)
        generator = torch.Generator().manual_seed(int(self.random_state))
        with _threads(int(self.n_jobs)), torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(self.random_state))  # initial weights and dropout masks
            self.network_ = self._build().to(device)
            self.graph_ = network_graph(self.network_, self.n_features_in_, self.architecture())
            Xt = self._tensor(X, device)
            yt = torch.as_tensor(codes, device=device)
            self._train(Xt, yt, fit_idx, val_idx, generator, on_epoch)
        return self

    def _tensor(self, X: np.ndarray, device: torch.device) -> torch.Tensor:
        scaled = np.nan_to_num((X - self.mean_) / self.scale_)
        return torch.as_tensor(scaled, dtype=torch.float32, device=device)

    def _loss(self, logits: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        if self.n_out_ == 1:
            return nn.functional.binary_cross_entropy_with_logits(
                logits.squeeze(1), codes.to(logits.dtype)
            )
        return nn.functional.cross_entropy(logits, codes)

    def _train(
        self,
        X: torch.Tensor,
        y: torch.Tensor,
        fit_idx: np.ndarray,
        val_idx: np.ndarray,
        generator: torch.Generator,
        on_epoch: EpochCallback | None,
    ) -> None:
        net = self.network_
        optimizer = _Adam(list(net.parameters()), self.learning_rate, self.weight_decay)
        fit_t = torch.as_tensor(fit_idx, device=X.device)
        X_val, y_val = X[torch.as_tensor(val_idx, device=X.device)], y[val_idx]
        linears = [m for m in net if isinstance(m, nn.Linear)]
        self.telemetry_: list[EpochTelemetry] = []
        best, best_state, waited = float("inf"), net.state_dict(), 0
        self.best_epoch_ = 0
        for epoch in range(1, int(self.max_epochs) + 1):
            started = time.perf_counter()
            net.train()
            order = fit_t[torch.randperm(len(fit_t), generator=generator).to(X.device)]
            total, before, grads, spent = self._epoch(X, y, order, linears, optimizer)
            val_loss, val_metric, train_metric = self._evaluate(X, y, fit_idx, X_val, y_val)
            layers: list[LayerStats] = []
            if before:
                tick = time.perf_counter()
                layers = self._layer_stats(linears, X_val[:PROBE_ROWS], before, grads)
                spent += time.perf_counter() - tick
            record = EpochTelemetry(
                epoch=epoch,
                train_loss=total / len(fit_idx),
                val_loss=val_loss,
                train_metric=train_metric,
                val_metric=val_metric,
                seconds=time.perf_counter() - started,
                telemetry_seconds=spent,
                layers=layers,
            )
            self.telemetry_.append(record)
            if val_loss < best - 1e-6:
                best, waited, self.best_epoch_ = val_loss, 0, epoch
                best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
            else:
                waited += 1
            if on_epoch is not None:
                on_epoch(self.telemetry_curve())
            if waited >= self.patience:
                break
        net.load_state_dict(best_state)
        net.eval()

    def _epoch(
        self,
        X: torch.Tensor,
        y: torch.Tensor,
        order: torch.Tensor,
        linears: list[nn.Linear],
        optimizer: _Adam,
    ) -> tuple[float, list[torch.Tensor], list[torch.Tensor], float]:
        """One pass over `order` in batches: the summed loss and, with telemetry, the last
        step's weights before it and its gradients, and the seconds telemetry took."""
        total, spent = 0.0, 0.0
        before: list[torch.Tensor] = []
        grads: list[torch.Tensor] = []
        batches = list(torch.split(order, int(self.batch_size)))
        for i, batch in enumerate(batches):
            measured = bool(self.telemetry) and i == len(batches) - 1
            tick = time.perf_counter()
            if measured:
                before = [m.weight.detach().clone() for m in linears]
            spent += time.perf_counter() - tick if measured else 0.0
            optimizer.zero_grad(set_to_none=True)
            loss = self._loss(self.network_(X[batch]), y[batch])
            loss.backward()  # type: ignore[no-untyped-call]  # torch leaves it untyped
            if measured:
                tick = time.perf_counter()
                grads = [_gradient(m) for m in linears]
                spent += time.perf_counter() - tick
            optimizer.step()
            total += float(loss.detach()) * len(batch)
        return total, before, grads, spent

    @torch.no_grad()
    def _evaluate(
        self,
        X: torch.Tensor,
        y: torch.Tensor,
        fit_idx: np.ndarray,
        X_val: torch.Tensor,
        y_val: torch.Tensor,
    ) -> tuple[float, float, float]:
        """Validation loss, and the metric on validation and (a sample of) training rows."""
        net = self.network_
        net.eval()
        val_logits = net(X_val)
        val_loss = float(self._loss(val_logits, y_val))
        sample = torch.as_tensor(fit_idx[: max(len(y_val), 1000)], device=X.device)
        train_logits = net(X[sample])
        return (
            val_loss,
            self._metric(val_logits, y_val),
            self._metric(train_logits, y[sample]),
        )

    def _metric(self, logits: torch.Tensor, codes: torch.Tensor) -> float:
        """ROC AUC for two classes, accuracy for more."""
        truth = codes.cpu().numpy()
        if self.n_out_ > 1:
            return float((logits.argmax(1).cpu().numpy() == truth).mean())
        from sklearn.metrics import roc_auc_score

        if np.unique(truth).size < 2:
            return float("nan")
        return float(roc_auc_score(truth, logits.squeeze(1).cpu().numpy()))

    @torch.no_grad()
    def _layer_stats(
        self,
        linears: list[nn.Linear],
        probe: torch.Tensor,
        before: list[torch.Tensor],
        grads: list[torch.Tensor],
    ) -> list[LayerStats]:
        """Per linear layer: its output after the activation on probe rows, its last step."""
        outputs: list[torch.Tensor] = []  # each hidden layer after its activation, then logits
        hidden = probe
        for module in self.network_:
            hidden = module(hidden)
            if isinstance(module, tuple(ACTIVATIONS.values())):
                outputs.append(hidden)
        outputs.append(hidden)
        stats = []
        for i, (layer, out, old, grad) in enumerate(
            zip(linears, outputs, before, grads, strict=True)
        ):
            weight = layer.weight.detach()
            update = weight - old
            stats.append(
                LayerStats(
                    name=f"linear{i}",
                    activation_mean=float(out.mean()),
                    activation_var=float(out.var()),
                    gradient_mean=float(grad.mean()),
                    gradient_var=float(grad.var()),
                    update_ratio=float(update.std() / (weight.std() + 1e-12)),
                )
            )
        return stats

    # --- predicting ---------------------------------------------------------------

    @torch.no_grad()
    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, computed in float64 on the CPU (as a saved bundle scores)."""
        with _threads(int(self.n_jobs)):
            return self._proba(np.asarray(X, dtype=np.float64))

    def _proba(self, X: np.ndarray) -> np.ndarray:
        hidden = torch.as_tensor(np.nan_to_num((X - self.mean_) / self.scale_))
        for module in self.network_:
            if isinstance(module, nn.Linear):
                weight = module.weight.detach().cpu().double()
                bias = module.bias.detach().cpu().double()
                hidden = hidden @ weight.T + bias
            elif isinstance(module, tuple(ACTIVATIONS.values())):
                hidden = module(hidden)
        if self.n_out_ == 1:
            positive = torch.sigmoid(hidden[:, 0]).numpy()
            return np.column_stack([1.0 - positive, positive])
        return np.asarray(torch.softmax(hidden, dim=1).numpy(), dtype=np.float64)

    def predict(self, X: Any) -> np.ndarray:
        """The most probable class per row."""
        return np.asarray(self.classes_[np.argmax(self.predict_proba(X), axis=1)])

    def telemetry_curve(self) -> dict[str, Any]:
        """The epochs so far as a run's training curve, with the full telemetry beside it."""
        epochs = self.telemetry_
        return {
            "x_label": "epoch",
            "x": [e.epoch for e in epochs],
            "loss_name": "log_loss",
            "loss": [round(e.val_loss, 6) for e in epochs],
            "metric_name": "roc_auc" if self.n_out_ == 1 else "accuracy",
            "metric": [round(e.val_metric, 6) for e in epochs],
            "telemetry": {
                "epochs": [e.document() for e in epochs],
                "graph": self.graph_,
                "device": self.device_,
                "best_epoch": self.best_epoch_,
            },
        }


class _Adam:
    """Adam with L2 weight decay, as ``torch.optim.Adam`` computes it.

    Written out because importing ``torch.optim`` imports the graph compiler (seconds per
    process), which a few small dense layers never use.
    """

    def __init__(self, params: list[nn.Parameter], lr: float, weight_decay: float) -> None:
        self.params, self.lr, self.weight_decay = params, float(lr), float(weight_decay)
        self.first = [torch.zeros_like(p) for p in params]
        self.second = [torch.zeros_like(p) for p in params]
        self.steps = 0

    def zero_grad(self, set_to_none: bool = True) -> None:
        for param in self.params:
            param.grad = None

    @torch.no_grad()
    def step(self, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8) -> None:
        self.steps += 1
        fix1, fix2 = 1 - beta1**self.steps, 1 - beta2**self.steps
        for param, m, v in zip(self.params, self.first, self.second, strict=True):
            if param.grad is None:
                continue
            grad = param.grad.add(param, alpha=self.weight_decay)
            m.mul_(beta1).add_(grad, alpha=1 - beta1)
            v.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
            denominator = (v / fix2).sqrt_().add_(eps)
            param.addcdiv_(m, denominator, value=-self.lr / fix1)


@contextmanager
def _threads(count: int) -> Iterator[None]:
    """Small networks train fastest on one thread: more only contend on a busy machine."""
    previous = torch.get_num_threads()
    torch.set_num_threads(max(1, count))
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _gradient(layer: nn.Linear) -> torch.Tensor:
    grad = layer.weight.grad
    return torch.zeros_like(layer.weight) if grad is None else grad.detach().clone()
