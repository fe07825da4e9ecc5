"""Background threads yield to the request loop: they run at a lower scheduling priority.

A server process runs its request loop beside a log flusher, a live counter, a spool
syncer and shadow scoring. On a busy core the operating system shares time between
runnable threads evenly; a request then waits behind background work it does not need.
Linux lets each thread have its own nice value, so background threads ask for less. They
also carry their Python name into the OS (`top -H`, `/proc/PID/task/*/comm`), so an
operator can see which one is busy.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import threading

BACKGROUND_NICE = 10
_PR_SET_NAME = 15  # prctl option: the calling thread's name, 15 bytes at most


def lower_priority() -> None:
    """Call at the start of a background thread; a no-op where threads cannot be reniced."""
    with contextlib.suppress(AttributeError, OSError, PermissionError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), BACKGROUND_NICE)
    with contextlib.suppress(AttributeError, OSError, TypeError):
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        libc.prctl(_PR_SET_NAME, threading.current_thread().name.encode()[:15], 0, 0, 0)
