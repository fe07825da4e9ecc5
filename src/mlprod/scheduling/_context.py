"""What every step of the loop shares: the stores, the settings, a clock and who acts."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mlprod._time import Clock, SystemClock
from mlprod.monitoring import post_webhook
from mlprod.settings import Settings
from mlprod.spec import ProjectSpec
from mlprod.store import ArtifactStore, Store


@dataclass
class LoopContext:
    """What every step of the loop needs: the stores, the settings, a clock, who acts."""

    store: Store
    artifacts: ArtifactStore
    settings: Settings
    clock: Clock = field(default_factory=SystemClock)
    actor: str = "scheduler"

    def webhook(self, spec: ProjectSpec, payload: dict[str, Any]) -> None:
        """Post `payload` to the alert webhook (MLPROD_WEBHOOK beats the spec's), if any."""
        url = self.settings.webhook or spec.monitor.webhook
        if url:
            post_webhook(url, payload, allow_private=self.settings.webhook_allow_private)
