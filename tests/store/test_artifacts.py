"""The artifact store: atomic writes, and no way out of the root by any path payload."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from mlprod.errors import IntegrityError, NotFoundError
from mlprod.store._artifacts import ArtifactStore, LocalArtifacts, safe_join

# Every payload reported against peers' artifact routes stays here (see RELIABILITY.md).
BAD_IDS = [
    "../etc",
    "..\\..",
    "%2e%2e%2f",
    "%252e%252e%252f",
    "a/../../b",
    "/etc/passwd",
    "C:\\Windows\\win.ini",
    "\\\\server\\share",
    "file:///etc/passwd",
    "..",
    ".",
    "",
    "0" * 31,
    "0" * 33,
    "A" * 32,
    "0" * 31 + "\n",
    "0" * 32 + "\n",
    "0" * 32 + "/..",
    "0" * 32 + "/../..",
    "0" * 32 + "#",
    "0" * 16 + "\x00" + "0" * 15,
    "g" * 32,
]


@pytest.fixture
def source(tmp_path: Path) -> Path:
    folder = tmp_path / "bundle"
    (folder / "nested").mkdir(parents=True)
    (folder / "manifest.json").write_text('{"name": "churn"}', encoding="utf-8")
    (folder / "model.txt").write_bytes(bytes(range(256)) * 10)
    (folder / "nested" / "deep.bin").write_bytes(b"\x00\x01deep")
    return folder


@pytest.fixture
def artifacts(tmp_path: Path) -> LocalArtifacts:
    return LocalArtifacts(tmp_path / "artifacts")


def _files(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()
    }


def test_constructor_does_no_io(tmp_path: Path) -> None:
    store = LocalArtifacts(tmp_path / "not" / "yet")
    assert not (tmp_path / "not").exists()
    assert isinstance(store, ArtifactStore)


def test_put_dir_round_trip(artifacts: LocalArtifacts, source: Path, tmp_path: Path) -> None:
    before = _files(source)
    first = artifacts.put_dir(source)
    second = artifacts.put_dir(source)
    assert first != second
    for artifact_id in (first, second):
        assert len(artifact_id) == 32
        assert set(artifact_id) <= set("0123456789abcdef")
        folder = artifacts.path(artifact_id)
        assert folder == (tmp_path / "artifacts" / "bundles" / artifact_id).resolve()
        assert _files(folder) == before
    assert _files(source) == before
    assert list((tmp_path / "artifacts" / "tmp").iterdir()) == []


def test_put_dir_refuses_a_missing_folder_and_symlinks(
    artifacts: LocalArtifacts, source: Path, tmp_path: Path
) -> None:
    with pytest.raises(NotFoundError, match="not a folder"):
        artifacts.put_dir(tmp_path / "missing")
    secret = tmp_path / "secret.txt"
    secret.write_text("secret", encoding="utf-8")
    (source / "nested" / "link").symlink_to(secret)
    with pytest.raises(IntegrityError, match="symlink"):
        artifacts.put_dir(source)
    assert not (tmp_path / "artifacts" / "bundles").exists()


def test_failed_copy_leaves_nothing_behind(
    artifacts: LocalArtifacts, source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail(folder: Path) -> None:
        raise OSError("disk full")

    monkeypatch.setattr("mlprod.store._artifacts._sync_tree", fail)
    with pytest.raises(OSError, match="disk full"):
        artifacts.put_dir(source)
    assert list((tmp_path / "artifacts" / "tmp").iterdir()) == []
    assert not (tmp_path / "artifacts" / "bundles").exists()


@pytest.mark.skipif(os.name == "nt", reason="SIGKILL is POSIX")
def test_killed_writer_leaves_only_a_tmp_folder(source: Path, tmp_path: Path) -> None:
    """A real kill -9 just before the final rename: no half bundle is ever visible."""
    script = textwrap.dedent(
        """
        import os, signal, sys
        from pathlib import Path
        from mlprod.store import _artifacts
        def die(src, dst):
            os.kill(os.getpid(), signal.SIGKILL)
        _artifacts.os.replace = die
        _artifacts.LocalArtifacts(sys.argv[1]).put_dir(Path(sys.argv[2]))
        """
    )
    root = tmp_path / "artifacts"
    done = subprocess.run(
        [sys.executable, "-c", script, str(root), str(source)], capture_output=True, timeout=120
    )
    assert done.returncode == -9, done.stderr.decode()
    assert list((root / "bundles").iterdir()) == []
    (staged,) = (root / "tmp").iterdir()
    assert _files(staged) == _files(source)  # complete, fsynced, but never published


def test_delete(artifacts: LocalArtifacts, source: Path, tmp_path: Path) -> None:
    kept = artifacts.put_dir(source)
    gone = artifacts.put_dir(source)
    artifacts.delete(gone)
    with pytest.raises(NotFoundError, match=gone):
        artifacts.path(gone)
    with pytest.raises(NotFoundError):
        artifacts.delete(gone)
    assert _files(artifacts.path(kept)) == _files(source)
    assert list((tmp_path / "artifacts" / "tmp").iterdir()) == []


def test_unknown_id_is_not_found(artifacts: LocalArtifacts) -> None:
    with pytest.raises(NotFoundError, match="MLPROD_ARTIFACTS"):
        artifacts.path("0" * 32)


@pytest.mark.parametrize("bad", BAD_IDS)
def test_path_rejects_traversal_ids(
    artifacts: LocalArtifacts, source: Path, tmp_path: Path, bad: str
) -> None:
    artifacts.put_dir(source)
    (tmp_path / "artifacts" / "etc").mkdir()
    with pytest.raises(NotFoundError, match="32 lowercase hex digits"):
        artifacts.path(bad)
    with pytest.raises(NotFoundError):
        artifacts.delete(bad)
    assert (tmp_path / "artifacts" / "etc").is_dir()


@pytest.mark.parametrize("bad", [None, 123, b"0" * 32])
def test_path_rejects_non_text_ids(artifacts: LocalArtifacts, bad: object) -> None:
    with pytest.raises(NotFoundError):
        artifacts.path(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "bad",
    [
        "..",
        "../x",
        "a/../../b",
        "a/..",
        "..\\..",
        "a\\..\\..\\b",
        "/etc/passwd",
        "C:\\Windows",
        "C:relative",
        "\\\\server\\share",
        "\\rooted",
        "a\x00b",
        "",
    ],
)
def test_safe_join_rejects_escapes(tmp_path: Path, bad: str) -> None:
    with pytest.raises(NotFoundError):
        safe_join(tmp_path, "bundles", bad)


@pytest.mark.parametrize("odd", ["%2e%2e%2f", "file:///etc/passwd", "a/b/c", "...", "a..b"])
def test_safe_join_keeps_odd_names_literal_and_inside(tmp_path: Path, odd: str) -> None:
    joined = safe_join(tmp_path, odd)
    assert joined.is_relative_to(tmp_path.resolve())
    assert joined != tmp_path.resolve()


def test_symlink_escape_is_refused(artifacts: LocalArtifacts, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "manifest.json").write_text("{}", encoding="utf-8")
    bundles = tmp_path / "artifacts" / "bundles"
    bundles.mkdir(parents=True)
    planted = "f" * 32
    (bundles / planted).symlink_to(outside, target_is_directory=True)
    with pytest.raises(IntegrityError, match="outside"):
        artifacts.path(planted)
    with pytest.raises(IntegrityError):
        artifacts.delete(planted)
    assert (outside / "manifest.json").is_file()
    (tmp_path / "artifacts" / "up").symlink_to(tmp_path)
    with pytest.raises(IntegrityError):
        safe_join(tmp_path / "artifacts", "up", "outside")
