"""`mlprod predict` hands freed memory back: Arrow's system pool, glibc's fixed threshold."""

from __future__ import annotations

import json
import os
import subprocess
import sys

PROBE = """
import json, os, sys
from mlprod._memory import release_freed_memory
release_freed_memory()
import pyarrow as pa
print(json.dumps({"pool": pa.default_memory_pool().backend_name,
                  "env": os.environ.get("ARROW_DEFAULT_MEMORY_POOL")}))
"""


def _probe(**env: str) -> dict[str, object]:
    environ = {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"}
    done = subprocess.run(
        [sys.executable, "-c", PROBE], env={**environ, **env}, capture_output=True, text=True,
        check=True, timeout=120,
    )  # fmt: skip
    result: dict[str, object] = json.loads(done.stdout)
    return result


def test_every_arrow_buffer_comes_from_the_system_allocator() -> None:
    """Set before pyarrow loads, so Arrow's C++ readers and conversions use it too."""
    assert _probe() == {"pool": "system", "env": "system"}


def test_a_pool_the_user_chose_is_kept() -> None:
    assert _probe(ARROW_DEFAULT_MEMORY_POOL="mimalloc")["pool"] == "mimalloc"
