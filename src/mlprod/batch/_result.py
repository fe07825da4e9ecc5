"""What a batch job returns, whichever engine ran it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class BatchResult:
    """What a batch job did: typed, for the CLI, a scheduler job and tests alike."""

    job_id: str
    model: str
    version: int
    engine: str
    rows: int
    output: dict[str, Any]
    status: str = "done"
    already_done: bool = False  # the job had finished before: nothing was written again
    resumed_after: int = 0  # rows an earlier run had staged
    timings: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def document(self) -> dict[str, Any]:
        """The result as plain JSON-able data (``mlprod predict --json``)."""
        return {
            "job_id": self.job_id,
            "model": self.model,
            "version": self.version,
            "engine": self.engine,
            "rows": self.rows,
            "output": self.output,
            "status": self.status,
            "already_done": self.already_done,
            "resumed_after": self.resumed_after,
            "timings": {k: round(v, 3) for k, v in self.timings.items()},
            "notes": self.notes,
        }
