"""Scoring record batches on every core: Arrow encoder, compiled trees, checked as it goes.

A server scores small requests on one thread (a second one only adds tail latency); a
batch job owns the machine, so each chunk is cut into one slice per core and the slices
are encoded and scored in a thread pool (numpy, Arrow, the booster and compiled trees
all release the GIL). Every faster piece must first reproduce the reference path (the
DataFrame, the fitted transformer, the booster): the encoder on the version's test set
before the job starts, compiled trees on the same rows before they take over, and a
sample of every chunk against the reference, falling back for good on any difference.
A multiclass version's scores are n x k class probabilities; every check compares the
whole matrix (a shape that differs is a difference), so compiled trees or the encoder
serve a multiclass job only where they reproduce every class's probability.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from mlprod.batch._encode import ArrowEncoder, NotEncodableError
from mlprod.bundle import Model, cached_trees, compile_trees, tree_compiler_available
from mlprod.records import max_difference

log = logging.getLogger("mlprod.batch")

TOLERANCE = 1e-9  # the serving rule: a faster path serves only within this of the reference
SAMPLE_ROWS = 48  # rows of each chunk also scored on the reference path
TEST_ROWS = 20_000  # test rows the encoder and compiled trees must reproduce first
_TARGET = "__target__"


def available_cores() -> int:
    """Cores this process may run on (the affinity mask, not the machine's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


class BatchScorer:
    """P(positive) (multiclass: n x k class probabilities) for record batches, as the
    reference path would score them, faster.

    Example::

        scorer = BatchScorer(model, threads=2, compiled=Path(".mlprod/compiled"))
        scores = scorer.score(record_batch)
        scorer.close()
    """

    def __init__(
        self,
        model: Model,
        *,
        threads: int | None = None,
        compiled: Path | None = None,
        compile_now: bool = False,
    ) -> None:
        self.model = model
        self.threads = threads or available_cores()
        self.notes: list[str] = []
        self._test = _test_batch(model)
        self._encoder = self._checked_encoder()
        self._trees: Any = None
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="mlprod-batch")
        self._compiler: threading.Thread | None = None
        if compiled is not None and self._encoder is not None:
            self._start_trees(compiled, compile_now)

    @property
    def engine(self) -> str:
        """What turns a chunk into scores, for the job's log line."""
        encode = "arrow encoder" if self._encoder is not None else "reference transformer"
        trees = "compiled trees" if self._trees is not None else f"{self.model.flavor} model"
        return f"{encode} + {trees} on {self.threads} thread(s)"

    def score(self, batch: pa.RecordBatch) -> np.ndarray:
        """Scores of every row of `batch`, each within `TOLERANCE` of the reference path."""
        n = batch.num_rows
        if n == 0:
            return np.empty((0, len(self.model.classes)) if self.model.multiclass else 0)
        step = -(-n // self.threads)
        slices = [batch.slice(start, step) for start in range(0, n, step)]
        parts = list(self._pool.map(self._score_slice, slices))
        scores = np.concatenate(parts)
        if self._encoder is not None and not self._sample_agrees(batch, scores):
            return self._reference(batch)
        return scores

    def close(self) -> None:
        """Stop the pool, and let a compile under way finish into the cache.

        A job that ended before its trees compiled would otherwise throw the work away,
        and the next job would start compiling again: compiled once, every later job of
        the version finds them.
        """
        self._pool.shutdown(wait=True)
        if self._compiler is not None and self._compiler.is_alive():
            started = time.perf_counter()
            self._compiler.join()
            waited = time.perf_counter() - started
            self.notes.append(f"waited {waited:.1f} s for the trees to compile, for later jobs")

    def _score_slice(self, batch: pa.RecordBatch) -> np.ndarray:
        encoder, trees = self._encoder, self._trees
        if encoder is None:
            return _reference_scores(self.model, batch)
        matrix = encoder.encode(batch)
        scorer = trees if trees is not None else self.model.scorer
        return np.asarray(scorer.scores(matrix), dtype=float)

    def _reference(self, batch: pa.RecordBatch) -> np.ndarray:
        step = -(-batch.num_rows // self.threads)
        slices = [batch.slice(start, step) for start in range(0, batch.num_rows, step)]
        return np.concatenate(list(self._pool.map(self._reference_slice, slices)))

    def _reference_slice(self, batch: pa.RecordBatch) -> np.ndarray:
        return _reference_scores(self.model, batch)

    def _sample_agrees(self, batch: pa.RecordBatch, scores: np.ndarray) -> bool:
        """A spread of rows scored by the reference path too; any difference ends the fast path."""
        rows = np.unique(np.linspace(0, batch.num_rows - 1, SAMPLE_ROWS).astype(int))
        expected = _reference_scores(self.model, batch.take(pa.array(rows)))
        worst = max_difference(scores[rows], expected)
        if worst <= TOLERANCE:
            return True
        with self._lock:
            if self._encoder is not None:
                note = f"a chunk's sample differs from the reference path by {worst:.3g}"
                log.warning("%s; scoring the rest of the job on the reference path", note)
                self.notes.append(note)
                self._encoder, self._trees = None, None
        return False

    def _checked_encoder(self) -> ArrowEncoder | None:
        try:
            encoder = ArrowEncoder.from_model(self.model)
        except NotEncodableError as exc:
            self.notes.append(f"reference transformer: {exc}")
            return None
        if self._test is None:
            self.notes.append("reference transformer: the bundle holds no test rows to check")
            return None
        matrix = encoder.encode(self._test)
        reference = self.model.transformer.transform(self._test.to_pandas())
        worst = max_difference(matrix, np.asarray(reference, dtype=float))
        if not worst <= 1e-12:
            self.notes.append(f"reference transformer: the encoder differs by {worst:.3g}")
            return None
        self.notes.append(f"arrow encoder matches the transformer on {self._test.num_rows} rows")
        return encoder

    def _start_trees(self, folder: Path, compile_now: bool) -> None:
        if not tree_compiler_available() or getattr(self.model.scorer, "model_file", None) is None:
            return
        trees = cached_trees(self.model, folder)
        if trees is not None:
            self._adopt(trees, "cached")
        elif compile_now:
            self._compiler = threading.Thread(
                target=self._compile, args=(folder,), name="mlprod-batch-trees", daemon=True
            )
            self._compiler.start()

    def _compile(self, folder: Path) -> None:
        try:
            trees = compile_trees(self.model, folder)
        except Exception as exc:  # an optimisation never fails a job
            self.notes.append(f"compiling trees failed: {exc}")
            return
        if trees is not None:
            self._adopt(trees, "compiled during the job")

    def _adopt(self, trees: Any, how: str) -> None:
        """Compiled trees take over only if they score the test rows like the model."""
        encoder, test = self._encoder, self._test
        if encoder is None or test is None:
            return
        matrix = encoder.encode(test)
        worst = max_difference(trees.scores(matrix), self.model.scorer.scores(matrix))
        if worst <= TOLERANCE:
            with self._lock:
                if self._encoder is not None:
                    self._trees = trees
            self.notes.append(f"compiled trees ({how}) match the model to {worst:.1e}")
        else:
            self.notes.append(f"compiled trees ({how}) differ by {worst:.3g}; not used")


def _reference_scores(model: Model, batch: pa.RecordBatch) -> np.ndarray:
    return np.asarray(model.score(batch.to_pandas()), dtype=float)


def _test_batch(model: Model) -> pa.RecordBatch | None:
    """Up to `TEST_ROWS` of the version's test rows, as record batches read them."""
    path = model.folder / "test.parquet"
    if not path.is_file():
        return None
    table = pq.read_table(path)
    if _TARGET in table.column_names:
        table = table.drop_columns([_TARGET])
    if table.num_rows > TEST_ROWS:
        table = table.take(pa.array(np.linspace(0, table.num_rows - 1, TEST_ROWS).astype(int)))
    batches = table.combine_chunks().to_batches()
    return batches[0] if batches else None
