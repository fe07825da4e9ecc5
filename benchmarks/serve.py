"""Serving benchmark: mlprod serve beside a hand-written FastAPI baseline, same model.

One command::

    .venv/bin/python benchmarks/serve.py              # about 4 minutes, SQLite store
    .venv/bin/python benchmarks/serve.py --duration 3 # a quick look
    .venv/bin/python benchmarks/serve.py --postgres postgresql+psycopg://postgres@127.0.0.1/postgres

It trains the quickstart's churn model (LightGBM only) into a temporary store, measures
in-process costs per row, then runs each server (pinned to core 0) under a closed-loop
load (wrk pinned to core 1; a Python load generator if wrk is missing, which reads low):
single records at concurrency 1, 8 and 32, and 100-record batches at concurrency 8.
Everything lands in one table. With ``--postgres`` the store (and so the prediction log)
is a throwaway database on that server, created for the run and dropped after it, as a
team's replicas would share one. See benchmarks/README.md for how to read it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import timeit
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np

HERE = Path(__file__).resolve().parent
LOADS = (("1 record", 1, 1), ("1 record", 8, 1), ("1 record", 32, 1), ("100 records", 8, 100))
TARGETS = (
    "targets: c8 req/s >= 3x baseline with p99 < 10 ms; 100-record batches >= 40,000 rows/s; "
    "logging every prediction costs < 10% throughput"
)

WRK_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local bodies = {}
for line in io.lines("%(bodies)s") do bodies[#bodies + 1] = line end
local i = 0
request = function()
  i = i %% #bodies + 1
  return wrk.format(nil, nil, nil, bodies[i])
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '\\nRESULT {"requests": %%d, "duration_us": %%d, "errors": %%d, '
    .. '"p50_us": %%f, "p99_us": %%f}\\n',
    summary.requests, summary.duration,
    e.connect + e.read + e.write + e.timeout + e.status,
    latency:percentile(50), latency:percentile(99)))
end
"""


@dataclass
class Result:
    """One line of the table."""

    system: str
    load: str
    req_s: float | None = None
    rows_s: float | None = None
    p50_ms: float | None = None
    p99_ms: float | None = None
    us_per_row: float | None = None
    errors: int = 0
    backlog: int | None = None  # log rows still in the spool when the load stopped
    drain_s: float | None = None  # and how long the server took to store them afterwards
    runs: list[float] | None = None  # req/s of each round, when the line is a median


# --- the model and the request bodies -------------------------------------------------


def train_model(folder: Path, rows: int, store: str | None = None) -> str:
    """The quickstart project with LightGBM as its only candidate; returns the store.

    The store is `store` (a database URL) or a SQLite store in `folder`.
    """
    from mlprod.data import make_churn_table
    from mlprod.pipelines import promote, train
    from mlprod.pipelines._quickstart import SPEC

    make_churn_table(rows, seed=7).to_csv(folder / "customers.csv", index=False)
    spec = re.sub(r"candidates:\n(?:(?: {2}- | {4}).*\n)+", "candidates:\n  - lightgbm\n", SPEC)
    (folder / "mlprod.yaml").write_text(spec, encoding="utf-8")
    store = store or str(folder / ".mlprod")
    run = train(folder / "mlprod.yaml", store=store)
    promote(
        "churn",
        run.version,
        "production",
        store=store,
        force=not run.gates_passed,
        reason=None if run.gates_passed else "benchmark",
        actor="benchmark",
    )
    return store


def client_rows(count: int) -> list[dict[str, Any]]:
    """Fresh customers as a client sends them (all columns, JSON values)."""
    from mlprod.data import make_churn_table
    from mlprod.records._fastpath import client_records

    return client_records(make_churn_table(count, seed=8).drop(columns=["churned"]))


def write_bodies(folder: Path, records: list[dict[str, Any]], size: int) -> Path:
    """One JSON body per line, `size` records each, cycled through by the load generator."""
    path = folder / f"bodies_{size}.jsonl"
    count = max(1, min(200, len(records) // size))
    lines = [
        json.dumps({"records": records[i * size : (i + 1) * size]}, separators=(",", ":"))
        for i in range(count)
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# --- in process -------------------------------------------------------------------------


def per_row_us(call: Callable[[], object], rows: int, budget: float = 0.5) -> float:
    """Microseconds per row of `call`, timed over about `budget` seconds (best of 3)."""
    call()
    number = max(1, int(budget / 3 / max(timeit.timeit(call, number=1), 1e-7)))
    best = min(timeit.repeat(call, number=number, repeat=3)) / number
    return best / rows * 1e6


def in_process(store: str, records: list[dict[str, Any]]) -> list[Result]:
    """The floor (the booster alone), the fast path and the reference path, per row."""
    import pandas as pd

    import mlprod
    from mlprod.records._fastpath import check_fast_path
    from mlprod.serving import records_to_frame

    model = mlprod.load("churn@production", store=store)
    check = check_fast_path(model)
    if check.fast is None:
        print(f"warning: the fast path is off for this model: {check.reason}")
    fields, one, hundred = model.signature["fields"], records[:1], records[:100]
    matrix = model.transformer.transform(pd.DataFrame(one))
    frame = pd.DataFrame(one)
    fast = check.fast

    def reference(batch: list[dict[str, Any]]) -> object:
        return model.score(records_to_frame(batch, fields, max_records=len(batch)))

    timings = [
        ("booster on a ready feature row (floor)", 1, lambda: model.scorer.scores(matrix)),
        ("predict_proba, 1-row DataFrame", 1, lambda: model.predict_proba(frame)),
        ("reference path, 1 record", 1, lambda: reference(one)),
        ("reference path, 100 records", 100, lambda: reference(hundred)),
    ]
    if fast is not None:
        timings += [
            ("fast path, 1 record", 1, lambda: fast.score_records(one)),
            ("fast path, 100 records", 100, lambda: fast.score_records(hundred)),
        ]
    results = [
        Result("in-process", label, us_per_row=per_row_us(call, rows))
        for label, rows, call in timings
    ]
    return results + compiled_in_process(model, records)


def compiled_in_process(model: Any, records: list[dict[str, Any]]) -> list[Result]:
    """The same with the trees compiled (the 'compiled' extra), as the server upgrades to."""
    from mlprod.serving import LoadedVersion
    from mlprod.serving._trees import compile_trees, tree_compiler_available

    if not tree_compiler_available():
        print("note: the 'compiled' extra is not installed; servers score on the booster")
        return []
    with tempfile.TemporaryDirectory() as folder:
        trees = compile_trees(model, Path(folder))
    loaded = LoadedVersion.prepare(model)
    fast = loaded.fast
    if trees is None or fast is None:
        return []
    loaded.upgrade(trees)
    matrix = fast.encode(records[:1])
    timings = [
        ("compiled trees on a ready feature row", 1, lambda: trees.scores(matrix)),
        ("fast path + compiled trees, 1 record", 1, lambda: fast.score_records(records[:1])),
        ("fast path + compiled trees, 100 records", 100, lambda: fast.score_records(records[:100])),
    ]
    return [
        Result("in-process", label, us_per_row=per_row_us(call, rows))
        for label, rows, call in timings
    ]


# --- servers ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pinned(core: int, command: list[str]) -> list[str]:
    """`command` pinned to one core when taskset exists (servers 0, load generator 1)."""
    return ["taskset", "-c", str(core), *command] if shutil.which("taskset") else command


@contextmanager
def running(command: list[str], env: dict[str, str], ready_url: str) -> Iterator[None]:
    """Start a server, wait until `ready_url` answers 200, and stop it afterwards.

    mlprod serve is measured once its trees are compiled (when the extra is installed):
    it serves on the booster meanwhile, which is not what it settles at.
    """
    log = tempfile.TemporaryFile()  # noqa: SIM115 - a file, not a pipe that could fill up
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=log, cwd=HERE)
    try:
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None:
                log.seek(0)
                stderr = log.read().decode(errors="replace")
                raise RuntimeError(f"{command} exited early:\n{stderr[-2000:]}")
            try:
                if httpx.get(ready_url, timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"{command} did not become ready")
            time.sleep(0.2)
        if ready_url.endswith("/readyz"):
            wait_for_compiled_trees(ready_url.removesuffix("/readyz"))
        yield
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def wait_for_compiled_trees(url: str, timeout: float = 300.0) -> None:
    """Wait until every route scores with compiled trees, if the server compiles at all."""
    from mlprod.serving._trees import tree_compiler_available

    if not tree_compiler_available():
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        models = httpx.get(f"{url}/v1/models", timeout=5).json()["models"]
        if all(r.get("scorer") == "compiled trees" for m in models for r in m["routes"]):
            return
        time.sleep(0.5)
    print(f"warning: {url} still scores on the booster after {timeout:.0f} s")


@dataclass
class System:
    """One server under test: how to start it, where to send load, when it is ready."""

    name: str
    command: list[str]
    url: str
    ready: str
    env: dict[str, str]


def servers(store: str) -> list[System]:
    """The hand-written baseline, then mlprod serve with and without prediction logging."""
    base = free_port()
    uvicorn = [
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        "--app-dir",
        str(HERE),
        "_baseline_app:create_app",
        "--port",
        str(base),
        "--log-level",
        "warning",
        "--no-access-log",
    ]
    systems = [
        System(
            "baseline (FastAPI + predict_proba)",
            pinned(0, uvicorn),
            f"http://127.0.0.1:{base}/predict",
            f"http://127.0.0.1:{base}/docs",
            {},
        ),
    ]
    variants = (
        ("mlprod serve", {}),
        ("mlprod serve, no logging", {"MLPROD_LOG_SAMPLE_RATE": "0"}),
        ("mlprod serve, no monitoring", {"MLPROD_MONITOR": "false"}),
    )
    for name, env in variants:
        port = free_port()
        serve = [sys.executable, "-m", "mlprod", "serve", "--port", str(port), "--store", store]
        url = f"http://127.0.0.1:{port}"
        systems.append(
            System(name, pinned(0, serve), f"{url}/v1/models/churn/predict", f"{url}/readyz", env)
        )
    return systems


# --- load generators ------------------------------------------------------------------------


def wrk_load(url: str, bodies: Path, connections: int, seconds: float) -> dict[str, float]:
    """A closed-loop run of wrk (one thread, pinned to core 1) cycling through `bodies`."""
    script = bodies.with_suffix(".lua")
    script.write_text(WRK_SCRIPT % {"bodies": bodies}, encoding="utf-8")
    command = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "10s",
        "-s",
        str(script),
        url,
    ]
    done = subprocess.run(pinned(1, command), capture_output=True, text=True, check=True)
    line = next(x for x in done.stdout.splitlines() if x.startswith("RESULT "))
    result: dict[str, float] = json.loads(line.removeprefix("RESULT "))
    return result


def python_load(url: str, bodies: Path, connections: int, seconds: float) -> dict[str, float]:
    """The fallback: one thread per connection, closed loop. Reads low: Python is busy too."""
    payloads = bodies.read_text(encoding="utf-8").splitlines()
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    stop_at = time.perf_counter() + seconds

    def worker(offset: int) -> None:
        mine: list[float] = []
        with httpx.Client(headers={"content-type": "application/json"}, timeout=10) as client:
            i = offset
            while time.perf_counter() < stop_at:
                started = time.perf_counter()
                status = client.post(url, content=payloads[i % len(payloads)]).status_code
                mine.append(time.perf_counter() - started)
                errors[0] += status != 200
                i += 1
        with lock:
            latencies.extend(mine)

    if hasattr(os, "sched_setaffinity") and shutil.which("taskset"):
        os.sched_setaffinity(0, {1})
    threads = [threading.Thread(target=worker, args=(n,)) for n in range(connections)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    micros = np.array(latencies) * 1e6
    return {
        "requests": len(latencies),
        "duration_us": elapsed * 1e6,
        "errors": errors[0],
        "p50_us": float(np.percentile(micros, 50)),
        "p99_us": float(np.percentile(micros, 99)),
    }


# --- the run --------------------------------------------------------------------------------


def measure(
    system: str, url: str, bodies: dict[int, Path], seconds: float, use_wrk: bool
) -> list[Result]:
    """Every load against one running server, each after a short warm-up."""
    return [
        measure_load(system, url, bodies[size], (label, connections, size), seconds, use_wrk)
        for label, connections, size in LOADS
    ]


def measure_load(
    system: str,
    url: str,
    bodies: Path,
    load: tuple[str, int, int],
    seconds: float,
    use_wrk: bool,
    warm_up: bool = True,
) -> Result:
    """One closed-loop run, then the log backlog it left and how long that took to drain."""
    label, connections, size = load
    generate = wrk_load if use_wrk else python_load
    if warm_up:
        generate(url, bodies, connections, min(2.0, seconds))  # not counted
    raw = generate(url, bodies, connections, seconds)
    backlog, drain_s = drain(url)
    req_s = raw["requests"] / (raw["duration_us"] / 1e6)
    return Result(
        system,
        f"{label}, c={connections}",
        req_s=req_s,
        rows_s=req_s * size,
        p50_ms=raw["p50_us"] / 1e3,
        p99_ms=raw["p99_us"] / 1e3,
        errors=int(raw["errors"]),
        backlog=backlog,
        drain_s=drain_s,
    )


def interleaved(
    systems: list[System], bodies: dict[int, Path], seconds: float, use_wrk: bool, rounds: int
) -> list[Result]:
    """Each load on every system in turn, `rounds` times over; the median of each.

    The variants differ by a few percent, about as much as one run differs from the next
    on a shared machine: taking turns and the median keeps drift out of the comparison.
    """
    runs: dict[tuple[str, str], list[Result]] = {}
    for label, connections, size in LOADS:
        for round_ in range(rounds):
            for system in systems:
                result = measure_load(
                    system.name,
                    system.url,
                    bodies[size],
                    (label, connections, size),
                    seconds,
                    use_wrk,
                    warm_up=round_ == 0,
                )
                runs.setdefault((result.system, result.load), []).append(result)
    order = [system.name for system in systems]  # the table reads system by system
    return [median_of(runs[key]) for key in sorted(runs, key=lambda k: order.index(k[0]))]


def median_of(results: list[Result]) -> Result:
    """One line for several runs: median rates and latencies, summed errors, worst backlog."""

    def median(values: list[float | None]) -> float | None:
        present = [v for v in values if v is not None]
        return float(np.median(present)) if present else None

    backlogs = [r.backlog for r in results if r.backlog is not None]
    drains = [r.drain_s for r in results if r.drain_s is not None]
    return Result(
        results[0].system,
        results[0].load,
        req_s=median([r.req_s for r in results]),
        rows_s=median([r.rows_s for r in results]),
        p50_ms=median([r.p50_ms for r in results]),
        p99_ms=median([r.p99_ms for r in results]),
        errors=sum(r.errors for r in results),
        backlog=max(backlogs) if backlogs else None,
        drain_s=max(drains) if drains else None,
        runs=[r.req_s or 0.0 for r in results],
    )


def drain(predict_url: str, timeout: float = 120.0) -> tuple[int | None, float | None]:
    """The log backlog when a load stops; then wait until the spool is empty again.

    Background work may trail the load (it runs at a lower priority than requests): the
    backlog shows how much, and waiting keeps it out of the next measurement.
    """
    metrics = predict_url.split("/v1/")[0] + "/metrics"

    def pending() -> int | None:
        try:
            text = httpx.get(metrics, timeout=5).text
        except httpx.HTTPError:
            return None
        found = re.search(r"^mlprod_predlog_pending (\S+)$", text, re.MULTILINE)
        return int(float(found.group(1))) if found else None

    first, started = pending(), time.monotonic()
    while (pending() or 0) > 0 and time.monotonic() < started + timeout:
        time.sleep(0.2)
    return first, (time.monotonic() - started if first else None)


def table(results: list[Result]) -> str:
    """The side-by-side table, one line per measurement."""

    def cell(value: float | None, digits: int = 0) -> str:
        return "-" if value is None else f"{value:,.{digits}f}"

    header = f"{'system':<36}{'load':<20}{'µs/row':>9}{'req/s':>9}{'rows/s':>10}"
    header += f"{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}{'backlog':>9}{'drain s':>8}"
    lines = [header, "-" * len(header)]
    for r in results:
        lines.append(
            f"{r.system:<36}{r.load:<20}{cell(r.us_per_row, 1):>9}{cell(r.req_s):>9}"
            f"{cell(r.rows_s):>10}{cell(r.p50_ms, 2):>9}{cell(r.p99_ms, 2):>9}{r.errors:>8}"
            f"{cell(r.backlog):>9}{cell(r.drain_s, 1):>8}"
        )
    return "\n".join(lines)


def verdict(results: list[Result]) -> list[str]:
    """The issue's targets, checked against this run."""
    by = {(r.system, r.load): r for r in results}
    base = by.get(("baseline (FastAPI + predict_proba)", "1 record, c=8"))
    mine = by.get(("mlprod serve", "1 record, c=8"))
    batch = by.get(("mlprod serve", "100 records, c=8"))
    if not (base and mine and batch and base.req_s and mine.req_s and mine.p99_ms):
        return []
    ratio = mine.req_s / base.req_s
    return [
        *logging_cost(by),
        f"c=8 throughput: {ratio:.1f}x the baseline (target >= 3x): "
        + ("met" if ratio >= 3 else "NOT met"),
        f"c=8 p99: {mine.p99_ms:.2f} ms (target < 10 ms): "
        + ("met" if mine.p99_ms < 10 else "NOT met"),
        f"100-record batches: {batch.rows_s or 0:,.0f} rows/s (target >= 40,000): "
        + ("met" if (batch.rows_s or 0) >= 40_000 else "NOT met"),
    ]


def logging_cost(by: dict[tuple[str, str], Result]) -> list[str]:
    """Throughput lost to logging every prediction (target: under 10%) and to live counts."""
    lines = []
    for what, without in (("logging", "no logging"), ("monitoring", "no monitoring")):
        for label, connections, _ in LOADS:
            load = f"{label}, c={connections}"
            on, off = by.get(("mlprod serve", load)), by.get((f"mlprod serve, {without}", load))
            if on and off and on.req_s and off.req_s:
                cost = 1 - on.req_s / off.req_s
                verdict = ("met" if cost < 0.10 else "NOT met") if what == "logging" else "measured"
                turns = ""
                if on.runs and off.runs and len(on.runs) == len(off.runs) > 1:
                    pairs = zip(on.runs, off.runs, strict=True)
                    each = ", ".join(f"{100 * (1 - a / b):.0f}" for a, b in pairs)
                    turns = f" (turn by turn: {each}%)"
                lines.append(f"{what} cost, {load}: {100 * cost:.1f}%{turns}: {verdict}")
    return lines


@contextmanager
def throwaway_database(admin_url: str) -> Iterator[str]:
    """A fresh database on `admin_url`'s PostgreSQL server for one run, dropped afterwards."""
    import sqlalchemy as sa

    name = f"mlprod_bench_{os.urandom(4).hex()}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield admin_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per load (10)")
    parser.add_argument("--rows", type=int, default=20_000, help="training rows (20,000)")
    parser.add_argument("--python-load", action="store_true", help="skip wrk even if present")
    parser.add_argument(
        "--rounds", type=int, default=3, help="turns each mlprod variant takes per load (3)"
    )
    parser.add_argument(
        "--postgres",
        metavar="URL",
        help="keep the store in a throwaway database on this PostgreSQL server "
        "(a URL to an existing database there, e.g. .../postgres; needs CREATEDB)",
    )
    args = parser.parse_args(argv)
    use_wrk = shutil.which("wrk") is not None and not args.python_load
    with contextlib.ExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="mlprod-bench-")))
        database = stack.enter_context(throwaway_database(args.postgres)) if args.postgres else None
        if database:  # bundles and the spool stay on this machine's disk
            os.environ["MLPROD_ARTIFACTS"] = str(folder / "artifacts")
            os.environ["MLPROD_SPOOL"] = str(folder / "spool")
            os.environ["MLPROD_COMPILED"] = str(folder / "compiled")
        print(f"training the quickstart model (LightGBM, {args.rows:,} rows) in {folder} ...")
        store = train_model(folder, args.rows, database)
        records = client_rows(2_000)
        bodies = {size: write_bodies(folder, records, size) for size in (1, 100)}
        results = in_process(store, records)
        env = {**os.environ, "MLPROD_STORE": store, "MLPROD_BENCH_REF": "churn@production"}
        baseline, *variants = servers(store)
        print(f"measuring {baseline.name} ...")
        with running(baseline.command, {**env, **baseline.env}, baseline.ready):
            results += measure(baseline.name, baseline.url, bodies, args.duration, use_wrk)
        print(f"measuring {', '.join(v.name for v in variants)}, taking turns ...")
        with contextlib.ExitStack() as running_all:
            for variant in variants:
                running_all.enter_context(
                    running(variant.command, {**env, **variant.env}, variant.ready)
                )
            results += interleaved(variants, bodies, args.duration, use_wrk, args.rounds)
    print()
    print(table(results))
    print()
    print(_setup_line(use_wrk, args.duration) + f"; mlprod lines: median of {args.rounds} turns")
    print("store: " + ("PostgreSQL (throwaway database)" if args.postgres else "SQLite (embedded)"))
    for line in [TARGETS, *verdict(results)]:
        print(line)
    return 0


def _setup_line(use_wrk: bool, seconds: float) -> str:
    pinning = "servers on core 0, load on core 1" if shutil.which("taskset") else "no taskset"
    if use_wrk:
        return f"load: wrk, closed loop, {seconds:g} s per line; {pinning}; {os.cpu_count()} cores"
    return (
        f"load: Python threads + httpx (wrk not found: `apt-get install -y wrk`); these "
        f"figures read LOW; {seconds:g} s per line; {pinning}"
    )


if __name__ == "__main__":
    sys.exit(main())
