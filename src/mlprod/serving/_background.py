"""Background threads yield to the request loop: they run at a lower scheduling priority.

A server process runs its request loop beside a log flusher, a live counter, a spool
syncer and shadow scoring. On a busy core the operating system shares time between
runnable threads evenly; a request then waits behind background work it does not need.
Linux lets each thread have its own nice value, so background threads ask for less.
"""

from __future__ import annotations

import contextlib
import os
import threading

BACKGROUND_NICE = 10


def lower_priority() -> None:
    """Call at the start of a background thread; a no-op where threads cannot be reniced."""
    with contextlib.suppress(AttributeError, OSError, PermissionError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), BACKGROUND_NICE)
