"""Batch scoring: mlprod's local engine and Spark local[2] beside the in-process floor.

Every variant runs in a process of its own (so each peak RSS is its own: the process
tree's summed resident memory, sampled every 0.1 s, JVM and Python workers included) on
the same Parquet file, and the variants take turns, `--passes` times; each line is the
median of its passes.

- floor: pandas + LightGBM in 100k-row chunks, as a hand-written job would (the model's
  own fitted transformer, the booster on every core, a ParquetWriter);
- mlprod: ``mlprod predict`` (log and monitoring on, the default; and ``--no-log``);
- spark: ``mlprod predict --engine spark --master local[2]`` (log and monitoring on).

Then peak RSS of mlprod at 1M and 4M rows (flat in input size), and PostgreSQL to
PostgreSQL on 1M rows (``--input-sql`` into ``--output-table``).

    .venv/bin/pip install -e '.[bench,spark]'
    .venv/bin/python benchmarks/batch.py                 # about 15 minutes
    .venv/bin/python benchmarks/batch.py --rows 200000 --passes 1 --no-spark   # a quick look
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

SPEC = """\
name: bench
data: {source: train.parquet, target: churned, positive: true, entity: customer_id}
candidates: [{type: lightgbm, params: {n_estimators: 200}}]
"""
PG = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
COMPILE = """
import mlprod
from mlprod.bundle import compile_trees
from mlprod.settings import Settings
model = mlprod.load("bench@production", fast=False)
assert compile_trees(model, Settings().compiled_dir()) is not None, "install the bench extra"
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--passes", type=int, default=3)
    parser.add_argument("--no-spark", action="store_true")
    parser.add_argument("--postgres", default=PG, help="server for the SQL run ('' skips it)")
    parser.add_argument("--floor", help=argparse.SUPPRESS)  # internal: run the floor
    args = parser.parse_args()
    if args.floor:
        _floor(*args.floor.split(","))
        return
    with tempfile.TemporaryDirectory(prefix="mlprod-bench-") as tmp:
        root = Path(tmp)
        _project(root)
        data = _data(root, args.rows)
        _compare(root, data, args)
        _memory(root, args.rows)
        if args.postgres:
            _postgres(root, args.postgres)


def _env(root: Path) -> dict[str, str]:
    return {**os.environ, "MLPROD_STORE": str(root / ".mlprod"), "NO_COLOR": "1"}


def _project(root: Path) -> None:
    """A LightGBM model of 200 trees trained on 200k rows, in production, compiled once."""
    from mlprod.data import make_churn_table

    make_churn_table(200_000, seed=1).to_parquet(root / "train.parquet")
    (root / "mlprod.yaml").write_text(SPEC)
    print("training the model (200k rows, 200 trees) ...", flush=True)
    for command in (["train"], ["promote", "bench", "1"]):
        subprocess.run([sys.executable, "-m", "mlprod", *command], cwd=root, env=_env(root),
                       check=True, capture_output=True)  # fmt: skip
    # A version's first long job compiles its trees (once per machine); the runs compared
    # here are the ones after it, which find them cached.
    print("compiling the trees once ...", flush=True)
    subprocess.run([sys.executable, "-c", COMPILE], cwd=root, env=_env(root), check=True)


def _data(root: Path, rows: int) -> Path:
    """`rows` rows to score: the training table repeated, new ids, 100k-row row groups."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = root / f"score-{rows}.parquet"
    if path.exists():
        return path
    base = pd.read_parquet(root / "train.parquet").drop(columns=["churned"])
    writer = None
    for start in range(0, rows, len(base)):
        part = base.head(min(len(base), rows - start)).copy()
        part["customer_id"] = [f"C{start + i:09d}" for i in range(len(part))]
        table = pa.Table.from_pandas(part, preserve_index=False)
        writer = writer or pq.ParquetWriter(path, table.schema)
        writer.write_table(table, row_group_size=100_000)
    assert writer is not None
    writer.close()
    return path


def _measure(command: list[str], root: Path) -> dict[str, float]:
    """Seconds and the peak summed RSS (MiB) of `command`'s process tree."""
    import psutil

    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=root, env=_env(root), stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)  # fmt: skip
    parent, peak = psutil.Process(process.pid), 0
    while process.poll() is None:
        try:
            tree = [parent, *parent.children(recursive=True)]
            peak = max(peak, sum(p.memory_info().rss for p in tree if p.is_running()))
        except psutil.Error:
            pass
        time.sleep(0.1)
    seconds = time.perf_counter() - started
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{process.stderr.read().decode()[-3000:]}")
    return {"seconds": seconds, "rss_mib": peak / 2**20}


def _mlprod(root: Path, data: Path, out: Path, *extra: str) -> dict[str, float]:
    command = [sys.executable, "-m", "mlprod", "predict", "bench", "--input", str(data),
               "--output", str(out), *extra]  # fmt: skip
    try:
        return _measure(command, root)
    finally:
        _remove(out)


def _remove(path: Path) -> None:
    import shutil

    if path.is_dir():
        shutil.rmtree(path)
    path.unlink(missing_ok=True)


def _compare(root: Path, data: Path, args: argparse.Namespace) -> None:
    rows = args.rows
    variants: dict[str, Any] = {
        "floor: pandas + LightGBM chunks": lambda: _measure(
            [sys.executable, __file__, "--floor", f"{data},{root / 'floor.parquet'}"], root
        ),
        "mlprod predict (log + monitoring)": lambda: _mlprod(root, data, root / "m.parquet"),
        "mlprod predict --no-log": lambda: _mlprod(root, data, root / "n.parquet", "--no-log"),
    }
    if not args.no_spark:
        variants["mlprod --engine spark local[2]"] = lambda: _mlprod(
            root, data, root / "spark-out", "--engine", "spark", "--master", "local[2]"
        )  # logged and counted like the local engine
    results: dict[str, list[dict[str, float]]] = {name: [] for name in variants}
    for i in range(args.passes):
        for name, run in variants.items():
            results[name].append(run())
            print(f"pass {i + 1}: {name}: {results[name][-1]['seconds']:.1f} s", flush=True)
    floor = statistics.median(r["seconds"] for r in results["floor: pandas + LightGBM chunks"])
    print(f"\n{rows:,} rows, Parquet -> Parquet, medians of {args.passes} pass(es), 2 cores")
    print(f"{'variant':38} {'rows/s':>10} {'x floor':>8} {'peak RSS':>10}")
    for name, runs in results.items():
        seconds = statistics.median(r["seconds"] for r in runs)
        rss = statistics.median(r["rss_mib"] for r in runs)
        print(f"{name:38} {rows / seconds:>10,.0f} {floor / seconds:>8.2f} {rss:>7,.0f} MiB")


def _memory(root: Path, rows: int) -> None:
    """Peak RSS of mlprod predict at 1M and 4M rows: flat in the input's size."""
    sizes = sorted({1_000_000, 4_000_000})
    print("\npeak RSS of mlprod predict (log + monitoring) by input size")
    peaks = []
    for size in sizes:
        measured = _mlprod(root, _data(root, size), root / "mem.parquet")
        peaks.append(measured["rss_mib"])
        print(f"{size:>10,} rows: {measured['rss_mib']:,.0f} MiB, "
              f"{size / measured['seconds']:,.0f} rows/s")  # fmt: skip
    print(f"4M / 1M peak RSS: {peaks[-1] / peaks[0]:.2f}")


def _postgres(root: Path, url: str) -> None:
    """1M rows from a PostgreSQL table into another, in a throwaway database."""
    import pandas as pd
    import pyarrow.parquet as pq
    import sqlalchemy as sa

    name = f"mlprod_bench_{os.getpid()}"
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    db = url.rsplit("/", 1)[0] + f"/{name}"
    try:
        engine = sa.create_engine(db)
        source = pq.ParquetFile(_data(root, 1_000_000))
        for batch in source.iter_batches(200_000):
            frame = pd.DataFrame(batch.to_pandas())
            frame.to_sql("customers", engine, index=False, if_exists="append", chunksize=50_000)
        engine.dispose()
        command = [sys.executable, "-m", "mlprod", "predict", "bench", "--input-sql",
                   "SELECT * FROM customers ORDER BY customer_id", "--url", db,
                   "--output-table", "scores"]  # fmt: skip
        logged = _measure(command, root)
        quiet = _measure([*command[:-1], "scores_quiet", "--no-log"], root)
        print("\nPostgreSQL -> PostgreSQL, 1,000,000 rows")
        for label, measured in (("log + monitoring", logged), ("--no-log", quiet)):
            print(f"  {label:18} {1_000_000 / measured['seconds']:>10,.0f} rows/s, "
                  f"peak {measured['rss_mib']:,.0f} MiB")  # fmt: skip
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def _floor(data: str, out: str) -> None:
    """The hand-written job: pandas chunks, the fitted transformer, the booster, a writer."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    import mlprod

    model = mlprod.load("bench@production")
    booster = model.scorer.booster  # LightGBM, all cores (its default)
    writer = None
    for batch in pq.ParquetFile(data).iter_batches(batch_size=100_000):
        frame = batch.to_pandas()
        frame["score"] = booster.predict(model.transformer.transform(frame))
        table = pa.Table.from_pandas(frame, preserve_index=False)
        writer = writer or pq.ParquetWriter(out, table.schema)
        writer.write_table(table)
    assert writer is not None
    writer.close()
    print(json.dumps({"ok": True}))


if __name__ == "__main__":
    main()
