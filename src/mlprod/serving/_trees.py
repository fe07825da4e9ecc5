"""The server's tree compiler: LightGBM versions compiled off the request path.

The compiler itself (`compile_trees`, the object-code cache) lives in ``bundle``; this is
the background worker that lets compiled trees take over a served version's fast path
once they pass its check.

Example::

    compiler = TreeCompiler(Path(".mlprod/compiled"))
    compiler.submit(loaded)  # a LoadedVersion with a verified fast path; returns at once
    compiler.stats()         # {"compiled": 1, "failed": 0, "queued": 0}
"""

from __future__ import annotations

import logging
import queue
import threading
from pathlib import Path
from typing import Any, Protocol

from mlprod._threads import lower_priority
from mlprod.bundle import Model, compile_trees, tree_compiler_available

log = logging.getLogger("mlprod.serving")


class Upgradable(Protocol):
    """A loaded version whose fast path compiled trees may take over (`LoadedVersion`)."""

    model: Model
    fast: Any

    def upgrade(self, scorer: Any) -> str: ...


class TreeCompiler:
    """Compiles served LightGBM versions one at a time, off the request path.

    Each version keeps serving on its booster until its compiled trees pass the same check
    the fast path passed (the reference path's scores to 1e-9); a failure is logged and
    counted, and the booster simply stays. The worker is a daemon thread: a compile under
    way never holds up a shutdown.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._queue: queue.SimpleQueue[Upgradable | None] = queue.SimpleQueue()
        self._counts = {"compiled": 0, "failed": 0, "queued": 0}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def submit(self, version: Upgradable) -> None:
        """Queue `version` if it has a fast path and trees the compiler takes; never blocks."""
        if version.fast is None or getattr(version.model.scorer, "model_file", None) is None:
            return
        if not tree_compiler_available():
            return
        with self._lock:
            self._counts["queued"] += 1
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="mlprod-trees", daemon=True)
                self._thread.start()
        self._queue.put(version)

    def stop(self) -> None:
        """Stop after the compile under way, if any; what is queued stays on its booster."""
        self._queue.put(None)

    def stats(self) -> dict[str, int]:
        """Versions compiled and swapped in, failed (booster kept), waiting."""
        with self._lock:
            return dict(self._counts)

    def _loop(self) -> None:
        lower_priority()
        while (version := self._queue.get()) is not None:
            with self._lock:
                self._counts["queued"] -= 1
            outcome = "compiled" if self._upgrade(version) else "failed"
            with self._lock:
                self._counts[outcome] += 1

    def _upgrade(self, version: Upgradable) -> bool:
        where = f"{version.model.name}@{version.model.version}"
        try:
            trees = compile_trees(version.model, self.folder)
            if trees is None:
                return False
            summary = version.upgrade(trees)
        except Exception as exc:  # an optimisation must never take a version down
            log.warning("%s keeps its booster: compiled trees failed: %s", where, exc)
            return False
        log.info("%s scores with compiled trees: %s", where, summary)
        return True
