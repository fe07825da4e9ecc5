"""The quickstart, as the README's first command runs it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mlprod.registry import alias_map, audit_log, get_version
from mlprod.store import Store


@pytest.mark.slow
def test_quickstart_runs_end_to_end(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "mlprod", "quickstart", "demo"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "NO_COLOR": "1", "COLUMNS": "200"},
    )
    assert done.returncode == 0, done.stderr
    demo = tmp_path / "demo"
    assert (demo / "mlprod.yaml").is_file() and (demo / "new_customers.csv").is_file()
    rows = (demo / "customers.csv").read_text().count("\n") - 1
    assert rows == 20_000
    with Store.open(f"sqlite:///{demo / '.mlprod' / 'mlprod.db'}") as store:
        assert alias_map(store, "churn") == {"production": 1}
        version = get_version(store, "churn", 1)
        assert version.gates_passed
        assert [e.action for e in audit_log(store, "churn")] == ["promote"]
    # the one HTTP prediction it made is printed as JSON
    start = done.stdout.index('{\n  "model"')
    answer = json.loads(done.stdout[start : done.stdout.index("\n}", start) + 2])
    assert answer["model"] == "churn" and answer["predictions"][0]["version"] == 1
    assert 0.0 <= answer["predictions"][0]["score"] <= 1.0
    assert "report.html" in done.stdout and "mlprod models show churn" in done.stdout
