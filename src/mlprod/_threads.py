"""Background threads yield to the request loop: they run at a lower scheduling priority.

A server process runs its request loop beside a log flusher, a live counter, a spool
syncer and shadow scoring. On a busy core the operating system shares time between
runnable threads evenly; a request then waits behind background work it does not need.
Linux lets each thread have its own nice value, so background threads ask for less. They
also carry their Python name into the OS (`top -H`, `/proc/PID/task/*/comm`), so an
operator can see which one is busy.

Processes share cores too. LightGBM, XGBoost and HistGradientBoosting run parallel loops
on OpenMP teams whose threads, by default, spin a while before sleeping when they run out
of work: right for one process owning the machine, wasteful when several fit at once, as
each team spins on the cores the others need. Two 2-thread LightGBM fits on two cores took
8.7 s each spinning and 3.2 s each sleeping; alone, a fit took about 20% longer sleeping.
So `wait_passively` is asked for only where mlprod starts processes that share the cores
(tuning workers), and never over a choice the user made.

numpy's OpenBLAS does the same at load: it starts a thread per core, and each spins before
it sleeps. Importing numpy cost 0.17 s of CPU that way against 0.08 s with one thread, in
commands (`mlprod monitor`, `mlprod models show`) that do no linear algebra worth a second
core. The CLI asks those for one thread (`one_blas_thread`), again never over the user's
own setting.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import MutableMapping

BACKGROUND_NICE = 10
WAIT_POLICY = "OMP_WAIT_POLICY"
BLAS_THREADS = "OPENBLAS_NUM_THREADS"
# What OpenBLAS reads for its thread count, first set wins: a user's choice in any of them.
_BLAS_THREAD_SETTINGS = (BLAS_THREADS, "GOTO_NUM_THREADS", "OMP_NUM_THREADS")
_PR_SET_NAME = 15  # prctl option: the calling thread's name, 15 bytes at most


def lower_priority() -> None:
    """Call at the start of a background thread; a no-op where threads cannot be reniced."""
    with contextlib.suppress(AttributeError, OSError, PermissionError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), BACKGROUND_NICE)
    with contextlib.suppress(AttributeError, OSError, TypeError):
        import ctypes.util  # here: the CLI imports this module at start, for one_blas_thread

        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        libc.prctl(_PR_SET_NAME, threading.current_thread().name.encode()[:15], 0, 0, 0)


def wait_passively(env: MutableMapping[str, str]) -> MutableMapping[str, str]:
    """`env` with OpenMP's waiting threads asleep, unless it already sets a wait policy.

    Acts on a process only before it loads an OpenMP library: set it in a child's
    environment, or in this one's before training code is imported.
    """
    env.setdefault(WAIT_POLICY, "PASSIVE")
    return env


def one_blas_thread(env: MutableMapping[str, str]) -> MutableMapping[str, str]:
    """`env` with one OpenBLAS thread, unless it already says how many (in any variable
    OpenBLAS reads).

    Acts only before numpy is first imported in the process (or in a child's environment).
    """
    if not any(env.get(name) for name in _BLAS_THREAD_SETTINGS):
        env[BLAS_THREADS] = "1"
    return env
