"""Where a batch job writes: a Parquet or CSV file, a folder of Parquet parts, or a SQL table.

Every sink stages a job's chunks out of sight and publishes them in one atomic step, so
nobody ever sees half a job: files go to a hidden staging folder beside the output
(one part per chunk, each written whole then renamed) and a table's rows to a staging
table (one transaction per chunk). What is staged is the job's progress: a job run again
counts the staged rows and carries on after them. Publishing renames the file or folder
into place, or appends the staged rows to the table and drops the staging table in one
transaction.

Example::

    sink = open_sink("scores.parquet", job_key="3f2a9c1e77d0b4a1")
    sink.check(schema); sink.staged_rows()
    sink.write(0, table); sink.publish()
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any, Protocol

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import sqlalchemy as sa

from mlprod.batch._sql import FITS, Database, SqlTable, sql_type, type_family
from mlprod.errors import DataError

STAGE_PREFIX = "mlprod_stage_"


class Sink(Protocol):
    """An output that stages chunks and publishes them all at once."""

    def describe(self) -> dict[str, Any]:
        """Where the rows go, for the job record."""
        ...

    def check(self, schema: pa.Schema) -> None:
        """Refuse an output that cannot take rows of `schema`, before anything is written."""
        ...

    def staged_rows(self) -> int:
        """Rows already staged by an earlier run of this job (0 for a new job)."""
        ...

    def write(self, index: int, rows: pa.Table) -> None:
        """Stage chunk `index` whole, or not at all."""
        ...

    def publish(self) -> None:
        """Make every staged row visible at once and remove the staging."""
        ...

    def staging_exists(self) -> bool:
        """Whether anything of this job is staged (False once published)."""
        ...

    def discard(self) -> None:
        """Remove whatever is staged."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


def open_sink(output: str | Path | SqlTable, job_key: str) -> Sink:
    """The sink for a file path, a folder path, or a `SqlTable`."""
    if isinstance(output, SqlTable):
        return TableSink(output, job_key)
    return FileSink(Path(output), job_key)


class FileSink:
    """A Parquet or CSV file (assembled from the parts on publish), or a folder of parts."""

    def __init__(self, output: Path, job_key: str) -> None:
        self.output = output
        name = output.name.lower()
        self.kind = "csv" if name.endswith(".csv") else "parquet"
        self.folder = not name.endswith((".csv", ".parquet", ".pq"))
        if self.folder and output.suffix:
            raise DataError(
                f"cannot write {output.name!r}: name a .parquet or .csv file, or a folder "
                "(no suffix) for Parquet parts"
            )
        self.stage = output.parent / f".{output.name}.mlprod-{job_key}"

    def describe(self) -> dict[str, Any]:
        return {"kind": "folder" if self.folder else self.kind, "path": str(self.output.resolve())}

    def check(self, schema: pa.Schema) -> None:
        if self.folder and self.output.exists() and any(self.output.iterdir()):
            raise DataError(
                f"output folder {str(self.output)!r} is not empty; write to a new folder "
                "(a job's parts appear there all at once)"
            )
        if not self.folder and self.output.is_dir():
            raise DataError(f"output {str(self.output)!r} is a folder; name a file instead")
        self.output.parent.mkdir(parents=True, exist_ok=True)

    def staged_rows(self) -> int:
        return sum(rows for _, rows in self._parts())

    def write(self, index: int, rows: pa.Table) -> None:
        self.stage.mkdir(parents=True, exist_ok=True)
        final = self.stage / f"part-{index:06d}-{rows.num_rows}.{self.kind}"
        tmp = final.with_name(final.name + ".tmp")
        if self.kind == "csv":
            options = pacsv.WriteOptions(include_header=index == 0)
            pacsv.write_csv(rows, tmp, write_options=options)
        else:
            pq.write_table(rows, tmp, row_group_size=max(rows.num_rows, 1))
        os.replace(tmp, final)  # a part is whole or absent, whatever kills us

    def publish(self) -> None:
        parts = [path for path, _ in self._parts()]
        if self.folder:
            self._publish_folder(parts)
            return
        if self.kind == "csv":
            self._publish_csv(parts)
        else:
            self._publish_parquet(parts)
        shutil.rmtree(self.stage, ignore_errors=True)

    def _publish_folder(self, parts: list[Path]) -> None:
        for i, part in enumerate(parts):
            part.rename(self.stage / f"part-{i:06d}.parquet")
        if self.output.exists():
            self.output.rmdir()  # checked empty before the job began
        for leftover in self.stage.glob("*.tmp"):
            leftover.unlink()
        os.replace(self.stage, self.output)

    def _publish_csv(self, parts: list[Path]) -> None:
        tmp = self.stage / "result.tmp"
        with tmp.open("wb") as out:
            for part in parts:
                with part.open("rb") as handle:
                    shutil.copyfileobj(handle, out, 1 << 20)
        os.replace(tmp, self.output)

    def _publish_parquet(self, parts: list[Path]) -> None:
        """One file from the parts, row group by row group (memory stays one part)."""
        tmp = self.stage / "result.tmp"
        writer: pq.ParquetWriter | None = None
        try:
            for part in parts:
                table = pq.read_table(part)
                if writer is None:
                    writer = pq.ParquetWriter(tmp, table.schema)
                writer.write_table(table.cast(writer.schema))
        finally:
            if writer is not None:
                writer.close()
        if writer is None:  # a job with no rows still writes a file with its columns
            raise DataError("nothing to publish: the job staged no rows")
        os.replace(tmp, self.output)

    def staging_exists(self) -> bool:
        return self.stage.is_dir()

    def discard(self) -> None:
        shutil.rmtree(self.stage, ignore_errors=True)

    def close(self) -> None:
        """A file sink holds nothing open."""

    def _parts(self) -> list[tuple[Path, int]]:
        """Staged parts in chunk order; only the contiguous run from chunk 0 counts."""
        if not self.stage.is_dir():
            return []
        found: dict[int, tuple[Path, int]] = {}
        for path in self.stage.glob(f"part-*.{self.kind}"):
            _, index, rows = path.stem.split("-")
            found[int(index)] = (path, int(rows))
        parts: list[tuple[Path, int]] = []
        while len(parts) in found:
            parts.append(found[len(parts)])
        return parts


class TableSink:
    """A SQL table: created if absent, appended otherwise, through a staging table."""

    def __init__(self, target: SqlTable, job_key: str) -> None:
        self.target = target
        self.db = Database(target.url)
        owner, _, _ = target.name.rpartition(".")
        self.stage_name = f"{owner + '.' if owner else ''}{STAGE_PREFIX}{job_key}"
        self.schema: pa.Schema | None = None

    def describe(self) -> dict[str, Any]:
        return {"kind": "table", "url": self.db.shown, "table": self.target.name}

    def check(self, schema: pa.Schema) -> None:
        """The existing table must take every output column; the difference is the message."""
        self.schema = schema
        existing = self.db.columns(self.target.name)
        if existing is None:
            return
        problems = []
        for f in schema:
            column = existing.get(f.name)
            if column is None:
                problems.append(f"no column {f.name} ({sql_type(f)})")
                continue
            have, want = type_family(column["type"]), type_family(f.type)
            if (want, have) not in FITS:
                problems.append(f"column {f.name} is {column['type']}, the output writes {want}")
        for name, column in existing.items():
            needed = not column.get("nullable", True) and column.get("default") is None
            if name not in schema.names and needed and column.get("autoincrement") is not True:
                problems.append(f"column {name} is NOT NULL without a default and gets no value")
        if problems:
            raise DataError(
                f"table {self.target.name} on {self.db.shown!r} does not fit the output: "
                f"{'; '.join(problems)}. Write to a new table with --output-table, or alter it"
            )

    def staged_rows(self) -> int:
        if self.db.columns(self.stage_name) is None:
            return 0
        stage = self._stage_table()
        return int(self.db.write(lambda conn: self.db.count(conn, stage), "counting staged rows"))

    def write(self, index: int, rows: pa.Table) -> None:
        stage = self._stage_table()
        if index == 0 or self.db.columns(self.stage_name) is None:
            self.db.write(lambda conn: stage.create(conn, checkfirst=True), "creating staging")
        self.db.append(stage, rows)

    def publish(self) -> None:
        """Create the table if absent, append the staged rows, drop the staging: one step."""
        stage = self._stage_table()
        target = self.db.table(self.target.name, self._schema(), sa.MetaData())
        columns: list[Any] = [sa.column(name) for name in self._schema().names]

        def work(conn: Any) -> None:
            target.create(conn, checkfirst=True)
            conn.execute(
                sa.insert(target).from_select(columns, sa.select(*stage.columns).select_from(stage))
            )
            stage.drop(conn)

        self.db.write(work, f"appending to {self.target.name}")

    def staging_exists(self) -> bool:
        return self.db.columns(self.stage_name) is not None

    def discard(self) -> None:
        if self.staging_exists():
            stage = self._stage_table()
            self.db.write(lambda conn: stage.drop(conn, checkfirst=True), "dropping staging")

    def close(self) -> None:
        self.db.close()

    def _schema(self) -> pa.Schema:
        if self.schema is None:
            raise RuntimeError("TableSink.check must run before rows are written")
        return self.schema

    def _stage_table(self) -> sa.Table:
        return self.db.table(self.stage_name, self._schema(), sa.MetaData())
