"""Progress for long work: a live spinner in a terminal, plain timestamped lines elsewhere."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console


class Steps:
    """Reports the current step; `quiet` silences it (library use, tests)."""

    def __init__(self, console: Console | None = None, *, quiet: bool = False) -> None:
        self.console = console or Console(stderr=True)
        self.quiet = quiet
        self.started = time.perf_counter()
        self._status: object | None = None

    def __call__(self, text: str) -> None:
        if self.quiet:
            return
        elapsed = time.perf_counter() - self.started
        line = f"[{elapsed:6.1f}s] {text}"
        if self._status is not None:
            self._status.update(line)  # type: ignore[attr-defined]  # rich Status
            self.console.log(text, highlight=False)
        else:
            self.console.print(line, highlight=False)

    @contextmanager
    def live(self, title: str) -> Iterator[Steps]:
        """A spinner with the latest step while the block runs (terminal only)."""
        if self.quiet or not self.console.is_terminal:
            yield self
            return
        with self.console.status(title) as status:
            self._status = status
            try:
                yield self
            finally:
                self._status = None


class TrialProgress:
    """Tuning progress for one candidate: trial n/N, best so far, elapsed and ETA.

    In a terminal it rewrites the live status line after every trial; elsewhere (CI
    logs, pipes) it prints one plain line per trial, so nothing depends on a terminal.
    Counts include other workers' trials: `done` is the study's, not this process's.
    """

    def __init__(self, steps: Steps, candidate: str, total: int) -> None:
        self.steps = steps
        self.candidate = candidate
        self.total = total
        self.started = time.perf_counter()

    def line(self, done: int, best: float | None, state: str = "") -> str:
        """The text shown: ``lightgbm trial 3/20 complete, best 0.8123, 4.1s elapsed, ETA 23s``."""
        elapsed = time.perf_counter() - self.started
        remaining = max(self.total - done, 0)
        eta = f"ETA {elapsed / done * remaining:.0f}s" if done else "ETA -"
        best_text = f"best {best:.4f}" if best is not None else "best -"
        what = f" {state}" if state else ""
        return (
            f"{self.candidate} trial {done}/{self.total}{what}, {best_text}, "
            f"{elapsed:.1f}s elapsed, {eta}"
        )

    def update(self, done: int, best: float | None, state: str = "") -> None:
        """Show the latest count; a no-op when the steps are quiet."""
        if self.steps.quiet:
            return
        text = self.line(done, best, state)
        if self.steps._status is not None:
            self.steps._status.update(text)  # type: ignore[attr-defined]  # rich Status
        else:
            self.steps(text)
