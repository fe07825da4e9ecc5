"""A batch job's progress: a live bar (rows/s, ETA) in a terminal, a line per chunk elsewhere.

Example::

    with JobProgress("churn@3 -> scores.parquet", total=2_000_000, done=0) as progress:
        progress.advance(100_000)
"""

from __future__ import annotations

import time
from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class JobProgress:
    """Shows rows scored so far; silent when `enabled` is False (library and scheduler use)."""

    def __init__(self, title: str, *, total: int | None, done: int, enabled: bool = True) -> None:
        self.title, self.total, self.done = title, total, done
        self.enabled = enabled
        self.console = Console(stderr=True)
        self._bar: Progress | None = None
        self._task: TaskID | None = None
        self._started = time.perf_counter()
        self._first = done
        self._chunk = 0

    def __enter__(self) -> JobProgress:
        if self.enabled and self.console.is_terminal:
            self._bar = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[rate]} rows/s"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=self.console,
            )
            self._bar.start()
            self._task = self._bar.add_task(
                self.title, total=self.total, completed=self.done, rate="-"
            )
        elif self.enabled and self.done:
            self.console.print(f"{self.title}: resuming after {self.done:,} rows", highlight=False)
        return self

    def advance(self, rows: int) -> None:
        """`rows` more rows are scored and staged."""
        self.done += rows
        self._chunk += 1
        if not self.enabled:
            return
        seconds = max(time.perf_counter() - self._started, 1e-9)
        rate = (self.done - self._first) / seconds
        if self._bar is not None and self._task is not None:
            self._bar.update(self._task, completed=self.done, rate=f"{rate:,.0f}")
            return
        of = f" of {self.total:,}" if self.total else ""
        self.console.print(
            f"{self.title}: chunk {self._chunk}, {self.done:,}{of} rows, {rate:,.0f} rows/s",
            highlight=False,
        )

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._bar is not None:
            self._bar.stop()
