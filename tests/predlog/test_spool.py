"""The spool on real files: round trips, rotation, torn lines, the cap, and a real kill -9."""

from __future__ import annotations

import os
import shutil
import textwrap
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from mlprod.errors import MlprodError, SpoolFullError
from mlprod.predlog import prediction_entry
from mlprod.predlog._spool import Spool, SpoolPosition
from support import run_and_kill


def rows(start: int, stop: int, pad: int = 40) -> list[dict[str, object]]:
    return [{"id": f"{i:032x}", "n": i, "pad": "x" * pad} for i in range(start, stop)]


def read(spool: Spool, max_rows: int) -> tuple[list[dict[str, Any]], SpoolPosition]:
    """`Spool.read`, its lines parsed."""
    lines, position = spool.read(max_rows)
    return [orjson.loads(line) for line in lines], position


@pytest.fixture
def spool(tmp_path: Path) -> Iterator[Spool]:
    with Spool(tmp_path / "spool", max_bytes=1 << 20) as opened:
        yield opened


def segments(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob("*.jsonl"))


def test_append_read_commit_round_trip(spool: Spool) -> None:
    spool.append(rows(0, 3))
    assert spool.pending_rows == 3

    got, position = read(spool, 10)
    assert [r["n"] for r in got] == [0, 1, 2]
    assert got[0] == {"id": f"{0:032x}", "n": 0, "pad": "x" * 40}
    again, _ = read(spool, 10)  # nothing is lost when a flush fails and reads again
    assert again == got

    spool.commit(position)
    assert spool.pending_rows == 0
    assert spool.pending_bytes == 0
    assert spool.read(10)[0] == []
    assert spool.path is not None
    saved = orjson.loads((spool.path / "position.json").read_bytes())
    assert saved == {"segment": position.segment, "offset": position.offset}


def test_read_takes_at_most_max_rows_in_order(spool: Spool) -> None:
    spool.append(rows(0, 7))
    first, position = read(spool, 4)
    spool.commit(position)
    second, position = read(spool, 4)
    spool.commit(position)
    assert [r["n"] for r in first + second] == list(range(7))
    assert spool.pending_rows == 0


def entry(start: int, count: int) -> dict[str, Any]:
    """One request's entry: `count` answers in one line, its row count in its first bytes."""
    answers = [{"id": f"{i:032x}", "score": 0.5} for i in range(start, start + count)]
    records = [{"n": i} for i in range(count)]
    return prediction_entry("churn", records, answers, at=datetime.now(UTC), latency_ms=1.0)


def test_counts_are_in_rows_whatever_each_line_holds(tmp_path: Path) -> None:
    """A request's entry counts its rows: in pending, in read limits and when adopted."""
    base = tmp_path / "spool"
    dead = Spool(base, max_bytes=1 << 20).open()
    dead.append([entry(0, 100), entry(100, 100), *rows(200, 203), entry(203, 50)])
    assert dead.pending_rows == dead.appended == 253
    got, position = read(dead, 150)  # whole entries until 150 rows are reached
    assert [len(e.get("predictions", [e])) for e in got] == [100, 100]
    assert position.rows == 200
    dead.commit(position)
    assert dead.pending_rows == 53
    dead._closing.set()  # abandon it as a killed process would: no close, lock released
    os.close(dead._lock_fd)
    folder = dead.path
    assert folder is not None
    dead_pid = folder.name.split("-")[-2]
    folder.rename(folder.with_name(folder.name.replace(f"-{dead_pid}-", "-999999999-")))

    with Spool(base, max_bytes=1 << 20) as spool:
        adopted = spool.adopt_orphans()
        for _ in range(50):  # a process forked meanwhile may hold the dead lock a moment
            if adopted:
                break
            time.sleep(0.1)
            adopted = spool.adopt_orphans()
        assert adopted == 53
        assert spool.pending_rows == spool.recovered == 53
        got, position = read(spool, 1000)
        assert position.rows == 53
        spool.commit(position)
        assert spool.pending_rows == 0
    assert [e["n"] for e in got[:3]] == [200, 201, 202]
    assert [p["id"] for p in got[3]["predictions"]][:1] == [f"{203:032x}"]


def test_lines_cut_across_read_blocks_come_back_whole(tmp_path: Path) -> None:
    with Spool(tmp_path, max_bytes=1 << 30) as spool:
        spool.append(rows(0, 700, pad=5000))  # 3.5 MB: lines straddle the 1 MB read blocks
        got, position = read(spool, 650)
        assert [r["n"] for r in got] == list(range(650))
        assert all(r["pad"] == "x" * 5000 for r in got)
        spool.commit(position)
        rest, position = read(spool, 1000)
        assert [r["n"] for r in rest] == list(range(650, 700))
        spool.commit(position)
        assert spool.pending_rows == 0


def test_a_stale_position_is_refused(spool: Spool) -> None:
    spool.append(rows(0, 4))
    _, stale = spool.read(2)
    _, fresh = spool.read(4)
    spool.commit(fresh)
    with pytest.raises(ValueError, match="stale"):
        spool.commit(stale)


def test_rotation_deletes_flushed_segments_only(tmp_path: Path) -> None:
    with Spool(tmp_path, max_bytes=1 << 20, segment_bytes=300) as spool:
        for i in range(20):  # ~97 bytes a line: a new segment every 4 lines
            spool.append(rows(i, i + 1))
        assert spool.path is not None
        assert len(segments(spool.path)) == 6

        seen: list[int] = []
        while True:
            got, position = read(spool, 5)
            if position.rows == 0:
                break
            seen += [r["n"] for r in got]
            spool.commit(position)
            assert spool.path is not None
            assert int(segments(spool.path)[0][:10]) == position.segment  # older ones gone
        assert seen == list(range(20))
        assert segments(spool.path) == ["0000000006.jsonl"]  # only the active one is left
        assert spool.pending_bytes == 0


def test_cap_raises_spool_full_and_frees_up_after_a_flush(tmp_path: Path) -> None:
    with Spool(tmp_path, max_bytes=1000) as spool:
        for i in range(10):  # lines of 97-98 bytes: ten fit under 1,000
            spool.append(rows(i, i + 1))
        with pytest.raises(SpoolFullError) as raised:
            spool.append(rows(10, 11))  # the 11th does not
        assert spool.pending_rows == 10
        assert spool.pending_bytes == 970
        assert raised.value.status == 503
        assert raised.value.code == "overloaded"
        assert isinstance(raised.value, MlprodError)
        assert "MLPROD_SPOOL_MAX_BYTES" in (raised.value.detail or "")  # for the server log
        assert str(tmp_path) not in str(raised.value)  # the answer names no path

        _, position = spool.read(100)
        spool.commit(position)
        spool.append(rows(100, 105))  # room again once flushed
        assert spool.pending_rows == 5


def test_torn_final_line_is_skipped_and_earlier_data_kept(tmp_path: Path) -> None:
    dead = Spool(tmp_path, max_bytes=1 << 20).open()
    dead.append(rows(0, 5))
    folder = dead.path
    dead.close()  # rows still pending: the folder stays, like a crashed server's
    assert folder is not None
    with (folder / "0000000001.jsonl").open("ab") as file:
        file.write(b'{"id": "0000000000000000000000000000000a", "n": 5, "pa')  # cut mid-line

    with Spool(tmp_path, max_bytes=1 << 20) as spool:
        assert spool.adopt_orphans() == 5
        got, _ = read(spool, 100)
        assert [r["n"] for r in got] == [0, 1, 2, 3, 4]
        assert spool.torn == 1
        assert spool.rejected == 0
        assert not folder.exists()


def test_corrupt_line_before_the_end_is_rejected_not_skipped(tmp_path: Path) -> None:
    dead = Spool(tmp_path, max_bytes=1 << 20).open()
    dead.append(rows(0, 2))
    folder = dead.path
    dead.close()
    assert folder is not None
    with (folder / "0000000001.jsonl").open("ab") as file:
        file.write(b"not json\n" + orjson.dumps(rows(2, 3)[0]) + b"\n")

    with Spool(tmp_path, max_bytes=1 << 20) as spool:
        spool.adopt_orphans()
        got, position = read(spool, 100)
        spool.read(100)  # a re-read does not count it twice
        assert [r["n"] for r in got] == [0, 1, 2]
        assert position.rows == 4
        assert spool.rejected == 1
        kept = (tmp_path / "rejected.jsonl").read_bytes().splitlines()
        assert [orjson.loads(line)["line"] for line in kept] == ["not json"]


def test_a_live_spool_is_never_adopted(tmp_path: Path) -> None:
    with Spool(tmp_path, max_bytes=1 << 20) as first, Spool(tmp_path, max_bytes=1 << 20) as second:
        first.append(rows(0, 3))
        assert second.adopt_orphans() == 0
        assert first.pending_rows == 3
        assert second.pending_rows == 0


def test_a_clean_close_leaves_no_folder_behind(tmp_path: Path) -> None:
    with Spool(tmp_path, max_bytes=1 << 20) as spool:
        spool.append(rows(0, 2))
        _, position = spool.read(10)
        spool.commit(position)
        folder = spool.path
    assert folder is not None
    assert not folder.exists()


CHILD = textwrap.dedent(
    """
    import os, sys
    from pathlib import Path
    from mlprod.predlog._spool import Spool, SpoolPosition

    spool = Spool(Path(sys.argv[1]), max_bytes=1 << 30, segment_bytes=4096).open()
    i = 0
    while True:
        spool.append([{"id": f"{i:032x}", "n": i, "pad": "x" * 40}])
        os.write(1, f"{i}\\n".encode())  # acknowledged: append returned
        i += 1
        if i == 300:  # a flusher got this far before the crash
            _, position = spool.read(300)
            spool.commit(position)
    """
)


def test_rows_appended_before_kill_9_are_replayed_by_the_next_process(tmp_path: Path) -> None:
    base = tmp_path / "spool"
    acked = run_and_kill(CHILD, str(base), acked=2000, tmp_path=tmp_path)
    orphans = [p for p in base.iterdir() if p.is_dir()]
    assert len(orphans) == 1
    assert len(segments(orphans[0])) > 5  # rotated; the first ones were flushed and deleted

    with Spool(base, max_bytes=1 << 30) as spool:  # this process: a different pid
        adopted = spool.adopt_orphans()
        got, position = read(spool, 1_000_000)
        spool.commit(position)
    numbers = [r["n"] for r in got]
    # every acknowledged append after the committed 300, each once; at most the one
    # append in flight at the kill beyond them
    assert numbers == list(range(300, 300 + len(numbers)))
    assert acked <= 300 + len(numbers) <= acked + 1
    assert adopted == len(numbers)
    assert not orphans[0].exists()
    shutil.rmtree(base)
