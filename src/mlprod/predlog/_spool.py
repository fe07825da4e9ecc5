"""A local, append-only spool: prediction logs land here before the request is answered.

Why a spool: the request must never wait on the metadata store, and a store that is slow
or down must never cost a log record (KServe's logger ran out of memory when its sink was
down; Seldon stored 300 of 1,000). So records go to disk first and a flusher moves them
into the store later, at least once; the store's unique prediction id makes it exactly once.

Layout under the spool folder, one subfolder per live process::

    <spool>/<host>-<pid>-<token>/0000000001.jsonl   segments: JSON lines, append-only
                                /position.json      first byte not yet flushed
                                /lock               flock held while the process lives
    <spool>/rejected.jsonl                          lines the store refused, kept for a human

Durability: `append` is one ``os.write`` on an ``O_APPEND`` descriptor, so once it returns
the lines are in the OS page cache and survive ``kill -9``; a background thread
``fdatasync``s every 50 ms or every 10,000 records, which bounds what a power cut can take.
A process that dies leaves its subfolder behind; `adopt_orphans` in any later process on
the same host copies the unflushed lines into its own spool and removes the orphan.

Example::

    with Spool(Path("/var/spool/mlprod"), max_bytes=256 << 20) as spool:
        spool.append([{"id": "a1", "model": "churn"}])
        rows, position = spool.read(500)
        ...  # store the rows
        spool.commit(position)
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import shutil
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import orjson

from mlprod._threads import lower_priority
from mlprod.errors import SpoolFullError
from mlprod.predlog._entries import entry_size, line_rows

log = logging.getLogger("mlprod.serving")

SEGMENT_BYTES = 8 * 1024 * 1024
SYNC_INTERVAL = 0.05  # seconds between background fdatasyncs
SYNC_ROWS = 10_000  # or sooner, once this many records are waiting
COPY_CHUNK = 256 * 1024  # adoption copies in chunks so appends keep flowing
READ_BLOCK = 1024 * 1024  # the flusher reads this much at a time
STAGING_GRACE = 60.0  # seconds before a half-made subfolder counts as abandoned
_SEGMENT = re.compile(r"(\d{10})\.jsonl")
_FOLDER = re.compile(r"(?P<host>.+)-(?P<pid>\d+)-(?P<token>[0-9a-f]{8})")
_MIB = 1024 * 1024
SHEDDING = (
    "the server is shedding load: its prediction log cannot keep up with the store; "
    "retry in a moment"
)


@dataclass(frozen=True)
class SpoolPosition:
    """Where a `read` stopped: pass it to `commit` once its rows are stored."""

    segment: int
    offset: int
    rows: int  # rows consumed since the committed position the read started from
    start: tuple[int, int]  # that committed position, so a stale commit is caught

    @property
    def moved(self) -> bool:
        """Whether the read got anywhere (rows, or lines it had to skip)."""
        return (self.segment, self.offset) != self.start


class Spool:
    """Append-only JSON-lines segments in a per-process subfolder of `folder`.

    Each line is one entry (a JSON object) standing for one or more prediction rows (a
    request's entry holds all its records); counts and `read` limits are in rows.
    `max_bytes` caps unflushed data: an append that would pass it raises `SpoolFullError`
    rather than letting the backlog grow without bound. One consumer reads and commits;
    any number of threads may append. Nothing touches the disk until `open` (or ``with``).
    """

    def __init__(self, folder: Path, *, max_bytes: int, segment_bytes: int = SEGMENT_BYTES) -> None:
        self.folder = Path(folder)
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        self.path: Path | None = None  # this process's subfolder, once open
        self.appended = 0  # rows appended by this process
        self.recovered = 0  # rows adopted from dead processes' spools
        self.torn = 0  # unterminated final lines skipped (a crash mid-write)
        self.rejected = 0  # lines or rows moved to rejected.jsonl
        self._lock = threading.Lock()
        self._commit_lock = threading.Lock()
        self._sync_lock = threading.Lock()  # one syncer at a time: it closes retired descriptors
        self._kick = threading.Event()
        self._closing = threading.Event()
        self._sync_thread: threading.Thread | None = None
        self._lock_fd = -1
        self._fd = -1
        self._seq = 0  # active segment
        self._size = 0  # bytes in the active segment
        self._starts: dict[int, int] = {}  # segment -> global byte offset of its start
        self._committed = (1, 0)
        self._pending_rows = 0
        self._unsynced = 0
        self._retired: list[int] = []  # rotated descriptors, synced and closed by the thread
        self._dir_dirty = False
        self._reported: set[tuple[int, int]] = set()  # bad lines already counted, by position

    # --- lifecycle

    def open(self) -> Self:
        """Create this process's subfolder and start the sync thread; a no-op when open."""
        if self.path is not None:
            return self
        self.folder.mkdir(parents=True, exist_ok=True)
        staging = self.folder / f".new-{uuid.uuid4().hex}"
        staging.mkdir()
        self._lock_fd = _lock_file(staging / "lock", blocking=True)
        self.path = self.folder / f"{_host()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        staging.rename(self.path)  # appears complete and locked, never half-made
        self._seq, self._size, self._starts = 1, 0, {1: 0}
        self._fd = _open_segment(self.path, 1)
        _fsync_dir(self.folder)
        self._closing.clear()
        self._sync_thread = threading.Thread(
            target=self._sync_loop, name="mlprod-spool-sync", daemon=True
        )
        self._sync_thread.start()
        return self

    def close(self) -> None:
        """Sync and release; the subfolder stays when it still holds unflushed rows."""
        if self.path is None:
            return
        self._closing.set()
        self._kick.set()
        if self._sync_thread is not None:
            self._sync_thread.join()
        with self._lock:
            self._retired.append(self._fd)
            self._fd = -1
        self._sync()
        if self._pending_rows == 0:
            shutil.rmtree(self.path, ignore_errors=True)  # nothing to replay: leave no orphan
        os.close(self._lock_fd)
        self._lock_fd = -1
        self.path = None

    def __enter__(self) -> Self:
        return self.open()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # --- the request path

    def append(self, entries: list[dict[str, Any]]) -> None:
        """Write `entries` as JSON lines with one ``os.write``; `SpoolFullError` at the cap.

        When this returns the entries survive the process being killed. Datetimes become ISO
        strings, NaN becomes null (orjson), numpy scalars their plain values.
        """
        if not entries:
            return
        if len(entries) == 1:  # a request's entry: no join, which would copy its bytes again
            data, rows = orjson.dumps(entries[0], option=_LINE), entry_size(entries[0])
        else:
            data = b"".join([orjson.dumps(entry, option=_LINE) for entry in entries])
            rows = sum(map(entry_size, entries))
        with self._lock:
            if self._fd < 0:
                raise RuntimeError("the spool is not open: call open() first")
            pending = self._end() - self._global(self._committed)
            if pending + len(data) > self.max_bytes:
                raise SpoolFullError(
                    SHEDDING,
                    detail=f"the prediction log's spool at {self.folder} holds "
                    f"{_size(pending)} not yet in the store, and {rows} more record(s) "
                    f"would pass its cap of {_size(self.max_bytes)}: the store is down or not "
                    "keeping up. Raise MLPROD_SPOOL_MAX_BYTES, or set MLPROD_SPOOL_FULL=drop to "
                    "drop and count logs instead of shedding requests",
                )
            try:
                self._write(data, rows)
            except OSError as exc:
                raise SpoolFullError(
                    SHEDDING,
                    detail=f"cannot write to the prediction log's spool at {self.folder}: "
                    f"{exc.strerror or exc}. Free disk space or point MLPROD_SPOOL elsewhere",
                ) from exc
            self.appended += rows

    def _write(self, data: bytes, rows: int) -> None:
        """Append `data` to the active segment; the caller holds the lock."""
        written = 0
        try:
            while written < len(data):  # a regular file takes it all in one go, barring errors
                written += os.write(self._fd, data[written:])
        except OSError:
            self._undo(written)
            raise
        self._size += written
        self._pending_rows += rows
        self._unsynced += rows
        if self._unsynced >= SYNC_ROWS:
            self._kick.set()
        if self._size >= self.segment_bytes:
            self._rotate()

    def _undo(self, written: int) -> None:
        """Cut a partial write off, or seal the segment so the torn line stays its last."""
        if not written:
            return
        try:
            os.ftruncate(self._fd, self._size)
        except OSError:
            self._size += written
            self._rotate()

    def _rotate(self) -> None:
        self._retired.append(self._fd)
        end = self._end()
        self._seq += 1
        self._starts[self._seq] = end
        self._size = 0
        assert self.path is not None
        self._fd = _open_segment(self.path, self._seq)
        self._dir_dirty = True
        self._kick.set()

    # --- the flusher's side

    def read(self, max_rows: int) -> tuple[list[bytes], SpoolPosition]:
        """Entries (JSON lines, as written) from the committed position, about `max_rows`
        rows' worth, and where the read stopped.

        Lines come back unparsed: a store that expands them itself never pays for Python
        objects. Reading again without committing returns the same lines: nothing is lost
        when the store refuses a batch. Lines that are not JSON objects go to rejected.jsonl.
        """
        with self._lock:
            if self.path is None:
                raise RuntimeError("the spool is not open: call open() first")
            path, start, active = self.path, self._committed, self._seq
            ends = {
                seq: self._starts.get(seq + 1, 0) - first for seq, first in self._starts.items()
            }
            ends[active] = self._size  # appends after this point wait for the next read
        entries: list[bytes] = []
        segment, offset, consumed = start[0], start[1], 0
        while True:
            end = ends[segment]
            with (path / _name(segment)).open("rb", buffering=0) as file:
                file.seek(offset)
                rest = b""  # an unfinished line carried into the next block
                while consumed < max_rows and offset + len(rest) < end:
                    # big blocks, not readline: each read hands the GIL back and forth
                    block = file.read(min(READ_BLOCK, end - offset - len(rest)))
                    if not block:
                        break
                    *lines, rest = (rest + block).split(b"\n")
                    for line in lines:
                        if consumed >= max_rows:
                            break
                        where, offset = (segment, offset), offset + len(line) + 1
                        rows = self._count(line, where)
                        if rows is not None:
                            entries.append(line)
                        consumed += 1 if rows is None else rows
                if rest and consumed < max_rows and offset + len(rest) == end:
                    self._skip_torn(path / _name(segment), (segment, offset))
                    offset = end  # a crash cut this last line short
            if segment == active or offset < end:
                break
            segment, offset = segment + 1, 0  # a sealed segment read to its end
        return entries, SpoolPosition(segment, offset, consumed, start)

    def _count(self, line: bytes, where: tuple[int, int]) -> int | None:
        """The rows `line` stands for; None (and set aside once) when it is not an entry."""
        rows = line_rows(line)
        if rows is None and where not in self._reported:  # a re-read sees it again
            self._reported.add(where)
            self._keep({"line": line.decode("utf-8", "replace")}, "a spool line is not JSON")
        return rows

    def _skip_torn(self, segment: Path, where: tuple[int, int] | None = None) -> None:
        if where is not None and where in self._reported:
            return
        if where is not None:
            self._reported.add(where)
        self.torn += 1
        log.warning("skipped a partial last line in %s: written when a process died", segment)

    def commit(self, position: SpoolPosition) -> None:
        """Record that everything before `position` is stored, then delete spent segments."""
        with self._commit_lock:
            if (position.segment, position.offset) == self._committed:
                return
            if position.start != self._committed:
                raise ValueError("commit a position from the latest read; this one is stale")
            assert self.path is not None
            _write_atomic(
                self.path / "position.json",
                orjson.dumps({"segment": position.segment, "offset": position.offset}),
            )
            with self._lock:
                self._committed = (position.segment, position.offset)
                self._pending_rows -= position.rows
                spent = [seq for seq in self._starts if seq < position.segment]
                for seq in spent:
                    del self._starts[seq]
            for seq in spent:
                with contextlib.suppress(FileNotFoundError):
                    (self.path / _name(seq)).unlink()

    def reject(self, row: dict[str, Any] | bytes, reason: str) -> None:
        """Keep a row or entry line the store refuses in rejected.jsonl: counted and logged,
        never silently.

        The caller commits past it afterwards, so one bad record cannot block the log.
        """
        if isinstance(row, bytes):
            self._keep({"line": row.decode("utf-8", "replace")}, reason)
        else:
            self._keep({"row": row}, reason)

    def _keep(self, entry: dict[str, Any], reason: str) -> None:
        target = self.folder / "rejected.jsonl"
        line = orjson.dumps({"reason": reason, **entry}, option=_DUMPS, default=str) + b"\n"
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
        try:
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)
        self.rejected += 1
        log.error("a prediction log record was moved to %s: %s", target, reason)

    # --- what is waiting

    @property
    def pending_rows(self) -> int:
        """Rows appended or adopted but not yet committed as stored."""
        return self._pending_rows

    @property
    def pending_bytes(self) -> int:
        """Bytes of those rows: what counts against `max_bytes`."""
        with self._lock:
            return self._end() - self._global(self._committed)

    def _end(self) -> int:
        return self._starts[self._seq] + self._size

    def _global(self, position: tuple[int, int]) -> int:
        segment, offset = position
        if segment in self._starts:
            return self._starts[segment] + offset
        return self._end()  # a position past every segment we hold

    # --- durability

    def _sync_loop(self) -> None:
        lower_priority()
        while not self._closing.is_set():
            self._kick.wait(SYNC_INTERVAL)
            self._kick.clear()
            try:
                self._sync()
            except OSError as exc:  # a full or failing disk: say so, keep the process serving
                log.error("cannot sync the prediction log spool %s: %s", self.path, exc)

    def _sync(self, *, force: bool = False) -> None:
        """fdatasync the active segment and the rotated ones; close the rotated ones."""
        with self._sync_lock:
            with self._lock:
                fd = self._fd if force or self._unsynced else -1
                retired, self._retired = self._retired, []
                dir_dirty, self._dir_dirty = self._dir_dirty, False
                self._unsynced = 0
            for old in retired:
                try:
                    _datasync(old)
                finally:
                    os.close(old)
            if fd >= 0:
                _datasync(fd)  # a rotation may retire it meanwhile; only a syncer closes it
            if dir_dirty and self.path is not None:
                _fsync_dir(self.path)

    # --- orphans of dead processes

    def adopt_orphans(self) -> int:
        """Copy the unflushed rows of dead processes' spools on this host into this one.

        An orphan is a subfolder whose process is gone (or is this pid reused) and whose lock
        is free. Its lines are copied, synced, then the orphan is deleted; a crash in between
        only means the rows are stored twice over, which the store's unique ids absorb.
        Returns the number of rows adopted.
        """
        if self.path is None:
            raise RuntimeError("the spool is not open: call open() first")
        adopted = 0
        for orphan in self._orphans():
            lock_fd = _try_lock(orphan / "lock")
            if lock_fd < 0:
                continue  # alive after all, or another process is adopting it
            try:
                adopted += self._copy(orphan)
                self._sync(force=True)  # the copy is durable before the original goes
                shutil.rmtree(orphan, ignore_errors=True)
            finally:
                os.close(lock_fd)
        if adopted:
            log.warning("adopted %d unflushed prediction log rows from dead servers", adopted)
        return adopted

    def _orphans(self) -> Iterator[Path]:
        host, pid = _host(), os.getpid()
        for child in sorted(self.folder.iterdir()):
            if child == self.path or not child.is_dir():
                continue
            if child.name.startswith(".new-"):
                _remove_stale_staging(child)
                continue
            match = _FOLDER.fullmatch(child.name)
            if match is None or match["host"] != host:
                continue  # not ours to judge: another host's processes may be alive
            owner = int(match["pid"])
            if owner == pid or not _pid_alive(owner):
                yield child

    def _copy(self, orphan: Path) -> int:
        """Append `orphan`'s unflushed complete lines to the active segment, past the cap."""
        segment, offset = _read_position(orphan)
        copied = 0
        for seq in sorted(_segments(orphan)):
            if seq < segment:
                continue
            start = offset if seq == segment else 0
            for chunk, torn in _chunks(orphan / _name(seq), start):
                if torn:
                    self._skip_torn(orphan / _name(seq))
                if chunk:
                    rows = sum(self._rows_in(line) for line in chunk.splitlines())
                    with self._lock:
                        self._write(chunk, rows)
                        self.recovered += rows
                    copied += rows
        return copied

    def _rows_in(self, line: bytes) -> int:
        """Rows a spooled line stands for, as `read` will count them (a bad line is one)."""
        return line_rows(line) or 1


# --- helpers


def _size(count: int) -> str:
    """Bytes as people read them: 512 B, 30.0 KiB, 256.0 MiB."""
    if count < 1024:
        return f"{count} B"
    if count < _MIB:
        return f"{count / 1024:.1f} KiB"
    return f"{count / _MIB:.1f} MiB"


_DUMPS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS
_LINE = _DUMPS | orjson.OPT_APPEND_NEWLINE  # one JSON line, newline included, no copy


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9._]", "_", socket.gethostname()) or "host"


def _name(seq: int) -> str:
    return f"{seq:010d}.jsonl"


def _segments(folder: Path) -> list[int]:
    names = (_SEGMENT.fullmatch(p.name) for p in folder.iterdir())
    return [int(m[1]) for m in names if m is not None]


def _open_segment(folder: Path, seq: int) -> int:
    flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC
    return os.open(folder / _name(seq), flags, 0o644)


def _chunks(path: Path, offset: int) -> Iterator[tuple[bytes, bool]]:
    """(complete lines, whether a torn tail followed) in ~COPY_CHUNK pieces."""
    with path.open("rb") as file:
        file.seek(offset)
        rest = b""
        while block := file.read(COPY_CHUNK):
            data = rest + block
            cut = data.rfind(b"\n") + 1
            rest = data[cut:]
            yield data[:cut], False
        if rest:
            yield b"", True


def _read_position(folder: Path) -> tuple[int, int]:
    try:
        saved = orjson.loads((folder / "position.json").read_bytes())
        return int(saved["segment"]), int(saved["offset"])
    except (FileNotFoundError, orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return 0, 0  # replay everything: the store ignores ids it already holds


def _write_atomic(path: Path, data: bytes) -> None:
    temp = path.with_name(path.name + ".tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temp, path)
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _datasync(fd: int) -> None:
    sync = getattr(os, "fdatasync", os.fsync)
    sync(fd)


def _lock_file(path: Path, *, blocking: bool) -> int:
    """An open descriptor holding an exclusive flock on `path`, or -1 when it is taken."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
    except BlockingIOError:
        os.close(fd)
        return -1
    return fd


def _try_lock(path: Path) -> int:
    try:
        return _lock_file(path, blocking=False)
    except FileNotFoundError:
        return -1  # the folder went away: another process adopted it first


def _remove_stale_staging(folder: Path) -> None:
    """Remove a staging folder whose creator died before naming it; it never holds rows.

    Only old ones: a young one may belong to a process between ``mkdir`` and ``flock``.
    """
    try:
        if time.time() - folder.stat().st_mtime < STAGING_GRACE:
            return
    except FileNotFoundError:
        return
    fd = _try_lock(folder / "lock")
    if fd < 0:
        return
    try:
        shutil.rmtree(folder, ignore_errors=True)
    finally:
        os.close(fd)


def _pid_alive(pid: int) -> bool:
    """Whether `pid` runs; a zombie (killed, not yet reaped by its parent) counts as dead."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[:1] != ["Z"]
