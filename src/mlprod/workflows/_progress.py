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
