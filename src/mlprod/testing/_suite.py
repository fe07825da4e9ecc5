"""``mlprod gates REF``: a version's gates re-checked on its test set, with a JUnit report.

The check is the one training ran and the pytest plugin runs (`evaluate` with its fixed
resamples and seed, then `check_gates`), so the verdict is the same everywhere. It needs
only the base install: the JUnit XML is written with the standard library, not by pytest,
so CI can run ``mlprod gates churn@production --junit gates.xml`` straight after
``pip install mlprod``.
"""

from __future__ import annotations

import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from mlprod.evaluation import GateResult, check_gates, evaluate, evaluate_multiclass
from mlprod.registry import get_run, open_version, resolve
from mlprod.settings import Settings
from mlprod.spec import Gate
from mlprod.store import Store, open_artifacts


def run_gate_suite(
    ref: str, *, settings: Settings | None = None, junit: Path | None = None, quiet: bool = False
) -> dict[str, Any]:
    """Check the gates recorded with `ref`'s training spec on its test set; one line each.

    Returns ``{"model", "version", "passed", "gates": [{"metric", "passed", "message"}],
    "junit"}``; with `junit`, also writes a JUnit XML file (one test case per gate). With
    `quiet` the lines go to stderr, so stdout can carry one JSON document.
    """
    settings = settings or Settings()
    started = time.perf_counter()
    meta = Store.from_settings(settings, create=False)
    with meta:
        record = resolve(meta, ref)
        recorded = get_run(meta, record.run_id).spec.get("gates") or {}
    model = open_version(open_artifacts(settings), record)
    features, labels = model.test_data()
    if model.multiclass:  # the label is the most probable class: no threshold
        metrics = evaluate_multiclass(labels, model.score(features), model.classes)
    else:
        metrics = evaluate(labels, model.score(features), model.threshold)
    results = check_gates(metrics, {name: Gate(**recorded[name]) for name in sorted(recorded)})
    elapsed = time.perf_counter() - started
    out = sys.stderr if quiet else sys.stdout
    pinned = f"{record.model}@{record.version}"
    for result in results:
        print(f"{'PASSED' if result.passed else 'FAILED'} {pinned} {result.message}", file=out)
    if not results:
        print(f"{pinned} has no gates in its training spec: nothing to check", file=out)
    if junit is not None:
        write_junit(Path(junit), pinned, results, elapsed)
    return {
        "model": record.model,
        "version": record.version,
        "passed": all(result.passed for result in results),
        "gates": [
            {"metric": r.metric, "passed": r.passed, "message": "" if r.passed else r.message}
            for r in results
        ],
        "junit": str(junit) if junit else None,
    }


def write_junit(path: Path, pinned: str, results: list[GateResult], seconds: float) -> None:
    """A JUnit XML report CI systems read: one suite, one test case per gate."""
    failures = sum(not result.passed for result in results)
    suites = ET.Element("testsuites")
    suite = ET.SubElement(
        suites,
        "testsuite",
        name=f"mlprod gates {pinned}",
        tests=str(len(results)),
        failures=str(failures),
        errors="0",
        skipped="0",
        time=f"{seconds:.3f}",
    )
    classname = f"mlprod.gates.{pinned.replace('@', '.v')}"
    for result in results:
        case = ET.SubElement(
            suite, "testcase", classname=classname, name=f"test_gate[{result.metric}]", time="0"
        )
        if not result.passed:
            failure = ET.SubElement(case, "failure", message=result.message)
            failure.text = f"{result.description}: observed {result.observed!r}"
    path = path.resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(suites).write(path, encoding="utf-8", xml_declaration=True)
