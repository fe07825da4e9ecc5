"""Acceptance testing: the pytest plugin's fixtures and the gate check of ``mlprod gates``.

Kept import-free so that pytest loading the plugin costs nothing until a fixture is used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlprod.testing._suite import run_gate_suite

__all__ = ["run_gate_suite"]


def __getattr__(name: str) -> Any:
    if name == "run_gate_suite":
        from mlprod.testing._suite import run_gate_suite

        return run_gate_suite
    raise AttributeError(f"module 'mlprod.testing' has no attribute {name!r}")
