"""`mlprod serve --workers N`: processes sharing a port, each following the registry."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from mlprod.pipelines import promote
from support import Project, Server, records_from, trained


@pytest.fixture(scope="module")
def two_versions(tmp_path_factory: pytest.TempPathFactory) -> Project:
    return trained(tmp_path_factory.mktemp("workers"), versions=2)


def children(pid: int) -> list[int]:
    """Worker pids of a server process (not multiprocessing's resource tracker)."""
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    found = []
    for child in text.split():
        try:
            command = Path(f"/proc/{child}/cmdline").read_bytes()
        except FileNotFoundError:
            continue
        if b"resource_tracker" not in command:
            found.append(int(child))
    return sorted(found)


def workers_of(server: Server, count: int, timeout: float = 30.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while len(found := children(server.process.pid)) != count:
        assert time.monotonic() < deadline, f"expected {count} workers, found {found}"
        time.sleep(0.1)
    return found


def versions(url: str, record: dict[str, object], requests: int) -> Counter[int]:
    """Versions answering `requests` requests, each on a fresh connection."""
    counts: Counter[int] = Counter()
    for _ in range(requests):
        answer = httpx.post(url + "/v1/models/churn/predict", json={"records": [record]})
        answer.raise_for_status()
        counts[answer.json()["predictions"][0]["version"]] += 1
    return counts


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="reads worker pids from /proc")
def test_workers_share_the_port_converge_restart_and_drain(two_versions: Project) -> None:
    server = Server(two_versions, "--workers", "2")
    try:
        server.wait_ready()
        first = workers_of(server, 2)
        record = records_from(two_versions, 1)[0]
        assert versions(server.url, record, 50) == {1: 50}

        promote("churn", 2, "production", store=two_versions.store, actor="t")
        started = time.monotonic()  # each worker polls every 0.5 s, then loads and checks v2
        while versions(server.url, record, 20) != {2: 20}:
            assert time.monotonic() - started < 10, "workers did not follow the promotion"
            time.sleep(0.1)
        assert versions(server.url, record, 200) == {2: 200}  # every worker switched

        os.kill(first[0], signal.SIGKILL)  # a crashed worker is replaced ...
        assert versions(server.url, record, 20) == {2: 20}  # ... and the other keeps serving
        replaced = workers_of(server, 2)
        deadline = time.monotonic() + 30
        while first[0] in replaced or len(replaced) != 2:
            assert time.monotonic() < deadline, "the dead worker was not replaced"
            time.sleep(0.2)
            replaced = children(server.process.pid)
        assert first[1] in replaced

        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(timeout=20) == 0
        for pid in replaced:
            assert not Path(f"/proc/{pid}").exists() or _zombie(pid)
    finally:
        server.stop()
        promote("churn", 1, "production", store=two_versions.store, actor="t")


def _zombie(pid: int) -> bool:
    status = Path(f"/proc/{pid}/status").read_text()
    return "State:\tZ" in status


def test_workers_option_is_validated(two_versions: Project) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "mlprod", "serve", "--workers", "0"],
        cwd=two_versions.root,
        env=two_versions.env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and "--workers" in done.stderr and "Traceback" not in done.stderr
