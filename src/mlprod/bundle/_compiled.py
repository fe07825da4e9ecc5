"""Compiled trees: a LightGBM forest turned into native code, about five times faster.

Why: on the fast path the booster is over half of a batched record's cost (about 12 µs of
25 on one core here, for the quickstart's 300 trees). lleaves compiles the same trees with
LLVM into one function that scores a row in about 2.5 µs and returns the booster's numbers
(they differ by ~1e-16). Compiling takes seconds (10 s for 300 trees), so a version starts
serving on the booster and a background thread compiles it; the compiled trees take over
only after they score the version's test set and probes like the reference path to 1e-9.
The object code is cached per model file and host CPU, so the next start loads it in
milliseconds. Optional: ``pip install 'mlprod[compiled]'``; without it the booster serves.

A multiclass booster (one forest per class, softmax over them) compiles too: lleaves
answers the same n x k probabilities (they differ from the booster's by ~1e-15), and the
check compares every class's column: should they ever differ by more than 1e-9, the
booster stays and the server logs why.

It lives in the bundle layer because every way of scoring a version uses it: the server
swaps it in behind a verified fast path (``serving``), batch jobs score whole files with
it on every core (``batch``).

Example::

    trees = compile_trees(model, Path(".mlprod/compiled"))   # None: not LightGBM, or no lleaves
    trees.scores(matrix)                                     # one thread per call
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import importlib.util
import logging
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from mlprod.bundle._model import Model  # which takes cached trees from here

log = logging.getLogger("mlprod.bundle")


def tree_compiler_available() -> bool:
    """Whether the optional compiler (the ``compiled`` extra) is installed."""
    return importlib.util.find_spec("lleaves") is not None


class CompiledTrees:
    """A scorer with the booster's interface: P(positive) per row of a feature matrix
    (a multiclass forest: the n x k class probabilities)."""

    engine = "compiled trees"

    def __init__(self, model_file: Path, cache: Path) -> None:
        import lleaves

        self.model_file = model_file
        self._trees = lleaves.Model(model_file=str(model_file))
        self._trees.compile(cache=str(cache))

    def scores(self, X: Any) -> np.ndarray:
        matrix = np.ascontiguousarray(X, dtype=np.float64)
        return np.asarray(self._trees.predict(matrix, n_jobs=1), dtype=float)


def compile_trees(model: Model, folder: Path) -> CompiledTrees | None:
    """`model`'s trees compiled (or loaded from `folder`), None when they are not LightGBM's.

    A cached file is named after its own checksum and checked before LLVM sees it: LLVM
    aborts the whole process on a file it cannot read, so a damaged one is compiled afresh.
    """
    model_file = getattr(model.scorer, "model_file", None)
    if model_file is None or not tree_compiler_available():
        return None
    key = _cache_key(Path(model_file))
    cached = _intact(folder, key)
    if cached is not None:
        return CompiledTrees(Path(model_file), cached)
    folder.mkdir(parents=True, exist_ok=True)
    staging = folder / f"{key}.{os.getpid()}.{threading.get_ident()}.tmp"
    try:
        trees = CompiledTrees(Path(model_file), staging)
        digest = hashlib.sha256(staging.read_bytes()).hexdigest()[:16]
        os.replace(staging, folder / f"{key}-{digest}.o")  # whole or absent, for any reader
    finally:
        with contextlib.suppress(FileNotFoundError):
            staging.unlink()
    return trees


def cached_trees(model: Model, folder: Path) -> CompiledTrees | None:
    """`model`'s compiled trees when `folder` already holds them; never compiles.

    For callers that cannot wait seconds for LLVM (a short batch job): they take the cached
    object code when an earlier server or job left it, and the booster otherwise.
    """
    model_file = getattr(model.scorer, "model_file", None)
    if model_file is None or not tree_compiler_available() or not folder.is_dir():
        return None
    cached = _intact(folder, _cache_key(Path(model_file)))
    return None if cached is None else CompiledTrees(Path(model_file), cached)


def _intact(folder: Path, key: str) -> Path | None:
    """The cached object file for `key` whose content matches its name; damaged ones go."""
    for path in sorted(folder.glob(f"{key}-*.o")):
        if hashlib.sha256(path.read_bytes()).hexdigest()[:16] == path.stem.rpartition("-")[2]:
            return path
        log.warning("removing damaged compiled trees at %s; compiling them again", path)
        path.unlink(missing_ok=True)
    return None


def _cache_key(model_file: Path) -> str:
    """Same trees, same compiler, same CPU: the same object code."""
    import llvmlite.binding

    digest = hashlib.sha256(model_file.read_bytes())
    for part in (
        importlib.metadata.version("lleaves"),
        importlib.metadata.version("llvmlite"),
        llvmlite.binding.get_host_cpu_name(),
        llvmlite.binding.get_host_cpu_features().flatten(),
    ):
        digest.update(b"\0" + part.encode())
    return digest.hexdigest()[:32]
