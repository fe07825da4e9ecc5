"""Tuning workers share the cores: their OpenMP threads sleep while they wait, unless the
user chose otherwise."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from mlprod._threads import WAIT_POLICY, wait_passively
from mlprod.pipelines._progress import Steps
from mlprod.pipelines._tuning import Experiment, _reap, _spawn
from mlprod.store import Store


def test_passive_waiting_never_overrides_a_choice() -> None:
    assert wait_passively({}) == {WAIT_POLICY: "PASSIVE"}
    assert wait_passively({WAIT_POLICY: "ACTIVE"}) == {WAIT_POLICY: "ACTIVE"}


@pytest.mark.parametrize(("ours", "theirs"), [(None, "PASSIVE"), ("ACTIVE", "ACTIVE")])
def test_spawned_workers_get_the_wait_policy(
    ours: str | None, theirs: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if ours is None:
        monkeypatch.delenv(WAIT_POLICY, raising=False)
    else:
        monkeypatch.setenv(WAIT_POLICY, ours)
    url = f"sqlite:///{tmp_path / 'meta.db'}"
    with Store.open(url) as store:
        experiment = Experiment(store, "no-such-run", url, workers=2)
        workers = _spawn(experiment, 1)
        try:
            ((process, _),) = workers
            environ = _environ(process.pid)
        finally:
            for process, _ in workers:
                process.kill()
            _reap(workers, Steps(quiet=True))
    assert f"{WAIT_POLICY}={theirs}".encode() in environ


def _environ(pid: int) -> list[bytes]:
    """A child's environment. Popen returns once the child's exec has begun; until the exec
    has laid out the new environment, the kernel shows an empty one."""
    deadline = time.monotonic() + 10
    while not (environ := Path(f"/proc/{pid}/environ").read_bytes()):
        if time.monotonic() > deadline:
            break
        time.sleep(0.005)
    return environ.split(b"\0")
