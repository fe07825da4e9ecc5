"""LightGBM boosters, saved as LightGBM's own text model."""

from __future__ import annotations

import ctypes
import logging
from pathlib import Path
from typing import Any

import numpy as np

from mlprod.bundle.flavors._base import SavedModel, Scorer

log = logging.getLogger("mlprod.bundle")

_PARAMETERS = b"num_threads=1"  # what booster.predict(X, num_threads=1) hands the C call
_FLOAT64, _ROW_MAJOR, _NORMAL = 1, 1, 0  # LightGBM's C API constants (c_api.h)
_MAX_ROWS = 2**31 - 1  # the C call takes an int32 row count


class LightGBMScorer:
    """The booster, one thread per call (a server scores many small requests)."""

    def __init__(self, path: Path) -> None:
        import lightgbm

        self.model_file = path  # what the optional tree compiler reads
        self.booster = lightgbm.Booster(model_file=str(path))

    def scores(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(self.booster.predict(X, num_threads=1), dtype=float)

    def fast_scorer(self) -> Scorer:
        """The same booster without the Python wrapper's per-call work, for the fast path
        (which verifies it like everything else it scores with); this one if unavailable."""
        try:
            return DirectBooster(self)
        except (ImportError, AttributeError, OSError) as exc:  # another LightGBM build
            log.info("LightGBM's C prediction call is not reachable (%s); using predict", exc)
            return self


class DirectBooster:
    """`booster.predict(X, num_threads=1)` for a float64 matrix, as one call into LightGBM.

    Why: around the C prediction call, LightGBM's Python `predict` builds a predictor
    object, deep-copies and formats its parameters and asks how many numbers will come
    back, every call: about 50 µs, more than the trees take for one record. This makes
    the same C call (`LGBM_BoosterPredictForMat`) with the arguments `predict` would pass,
    with its output size worked out once. Whatever it cannot take as is (no rows, more
    than an int32 of them) goes to `predict`.
    """

    def __init__(self, plain: LightGBMScorer) -> None:
        # private: the loaded library and its error check, as lightgbm itself calls them
        from lightgbm.basic import _LIB, _safe_call  # type: ignore[attr-defined]

        self.model_file = plain.model_file  # what the optional tree compiler reads
        self._plain = plain
        self._handle = plain.booster._handle
        self._check = _safe_call
        # A function object of our own, so the argument types set here stay ours
        predict = type(_LIB.LGBM_BoosterPredictForMat)(("LGBM_BoosterPredictForMat", _LIB))
        int32, c_int, pointer = ctypes.c_int32, ctypes.c_int, ctypes.c_void_p
        predict.argtypes = [pointer, pointer, c_int, int32, int32, c_int, c_int, c_int, c_int,
                            ctypes.c_char_p, ctypes.POINTER(ctypes.c_int64), pointer]  # fmt: skip
        predict.restype = c_int
        self._predict = predict
        self._iterations = int(plain.booster.best_iteration)  # what predict's default uses
        per_row = ctypes.c_int64(0)
        _safe_call(
            _LIB.LGBM_BoosterCalcNumPredict(
                self._handle, c_int(1), c_int(_NORMAL), c_int(0), c_int(self._iterations),
                ctypes.byref(per_row),
            )
        )  # fmt: skip
        self._per_row = int(per_row.value)

    def scores(self, X: np.ndarray) -> np.ndarray:
        matrix = np.ascontiguousarray(X, dtype=np.float64)
        if matrix.ndim != 2 or not 0 < len(matrix) <= _MAX_ROWS:
            return self._plain.scores(matrix)
        rows, columns = matrix.shape
        out = np.empty(rows * self._per_row)
        written = ctypes.c_int64(0)
        self._check(
            self._predict(
                self._handle, matrix.ctypes.data, _FLOAT64, rows, columns, _ROW_MAJOR,
                _NORMAL, 0, self._iterations, _PARAMETERS, ctypes.byref(written),
                out.ctypes.data,
            )
        )  # fmt: skip
        if written.value != out.size:
            raise ValueError(f"LightGBM wrote {written.value} predictions for {out.size}")
        return out if out.size == rows else out.reshape(rows, -1)


class LightGBMFlavor:
    name = "lightgbm"

    def handles(self, estimator: Any) -> bool:
        return type(estimator).__module__.startswith("lightgbm")

    def save(self, estimator: Any, folder: Path, stem: str) -> SavedModel:
        estimator.booster_.save_model(str(folder / f"{stem}.txt"))
        return SavedModel(self.name, f"{stem}.txt")

    def load(self, path: Path, trusted_types: list[str]) -> Scorer:
        return LightGBMScorer(path)
