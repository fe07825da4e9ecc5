"""The artifact store: bundles addressed by id, written atomically, never by a client path.

Peers were broken again and again by path traversal "fixed" with string denylists. Here
every path built from input goes through one helper, `safe_join`, which refuses anything
that is not a plain relative name and then checks the *resolved* path (symlinks followed)
still lies under the root. Artifact ids are 32 lowercase hex digits and nothing else.
"""

from __future__ import annotations

import os
import re
import shutil
import uuid
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from mlprod.errors import IntegrityError, NotFoundError

if TYPE_CHECKING:
    from mlprod.settings import Settings

_ARTIFACT_ID = re.compile(r"[0-9a-f]{32}")


@runtime_checkable
class ArtifactStore(Protocol):
    """Where bundles live; `LocalArtifacts` today, object stores later behind the same methods."""

    def put_dir(self, source: Path) -> str:
        """Copy a folder in, atomically; return its new id."""
        ...

    def path(self, artifact_id: str) -> Path:
        """A local folder holding the artifact's files."""
        ...

    def delete(self, artifact_id: str) -> None:
        """Remove the artifact; a missing id is a NotFoundError."""
        ...


def safe_join(root: Path, *parts: str) -> Path:
    """`root` joined with `parts`, guaranteed to stay under `root` once resolved.

    Refuses absolute paths, drive letters, ``..`` segments and NUL bytes outright
    (NotFoundError: there is nothing by that name), then resolves symlinks and refuses
    a result outside the root (IntegrityError: something on disk points out of the store).

    Example::

        safe_join(Path("/srv/artifacts"), "bundles", artifact_id)
    """
    base = Path(root).resolve()
    for part in parts:
        _check_part(part)
    joined = base.joinpath(*parts).resolve()
    if not joined.is_relative_to(base):
        raise IntegrityError(
            f"{'/'.join(parts)!r} resolves to {joined}, outside {base}; a symlink points "
            "out of the artifact store. Remove it: artifacts must be plain files under the root"
        )
    return joined


def _check_part(part: str) -> None:
    if not isinstance(part, str) or not part or "\x00" in part:
        raise NotFoundError(f"no artifact path {part!r}: expected a relative name under the root")
    windows = PureWindowsPath(part)
    if PurePosixPath(part).is_absolute() or windows.drive or windows.root:
        raise NotFoundError(f"no artifact path {part!r}: absolute paths are not accepted")
    if ".." in re.split(r"[\\/]", part):
        raise NotFoundError(f"no artifact path {part!r}: '..' is not accepted")


class LocalArtifacts:
    """Bundles as folders under ``root/bundles/<id>``; staging happens in ``root/tmp``.

    A bundle appears under its id only once every file is written and synced, through one
    ``os.replace``: a killed process leaves at most a stray folder in ``tmp``.

    Example::

        artifacts = LocalArtifacts(".mlprod/artifacts")
        bundle_id = artifacts.put_dir(Path("build/bundle"))
        artifacts.path(bundle_id) / "manifest.json"
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"LocalArtifacts({str(self.root)!r})"

    def put_dir(self, source: Path) -> str:
        """Copy the folder `source` in; returns the new artifact's id."""
        source = Path(source)
        if not source.is_dir():
            raise NotFoundError(f"cannot store {source}: it is not a folder")
        _refuse_links(source)
        artifact_id = uuid.uuid4().hex
        staging = safe_join(self._ensure("tmp"), artifact_id)
        try:
            shutil.copytree(source, staging, symlinks=True)
            _sync_tree(staging)
            final = safe_join(self._ensure("bundles"), artifact_id)
            os.replace(staging, final)
            _sync_dir(final.parent)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return artifact_id

    def path(self, artifact_id: str) -> Path:
        """The folder of an existing artifact; unknown or malformed ids are NotFoundError."""
        if not isinstance(artifact_id, str) or not _ARTIFACT_ID.fullmatch(artifact_id):
            raise NotFoundError(
                f"no artifact {artifact_id!r}: artifact ids are 32 lowercase hex digits"
            )
        folder = safe_join(self.root, "bundles", artifact_id)
        if not folder.is_dir():
            raise NotFoundError(
                f"no artifact {artifact_id} under {self.root}: check MLPROD_ARTIFACTS "
                "points at the folder the store's bundles were written to"
            )
        return folder

    def delete(self, artifact_id: str) -> None:
        """Remove an artifact: moved out of ``bundles`` first, so it vanishes in one step."""
        folder = self.path(artifact_id)
        doomed = safe_join(self._ensure("tmp"), f"deleting-{uuid.uuid4().hex}")
        os.replace(folder, doomed)
        shutil.rmtree(doomed)

    def _ensure(self, name: str) -> Path:
        folder = safe_join(self.root, name)
        folder.mkdir(parents=True, exist_ok=True)
        return folder


def _refuse_links(source: Path) -> None:
    """Bundles hold regular files only: a symlink could point anywhere once copied."""
    for path in [source, *source.rglob("*")]:
        if path.is_symlink():
            raise IntegrityError(
                f"cannot store {source}: {path} is a symlink; bundles hold regular files only"
            )


def _sync_tree(folder: Path) -> None:
    for path in sorted(folder.rglob("*"), reverse=True):
        if path.is_file():
            with path.open("rb") as handle:
                os.fsync(handle.fileno())
        else:
            _sync_dir(path)
    _sync_dir(folder)


def _sync_dir(folder: Path) -> None:
    """Make a rename or new entry durable; not possible on Windows, where it is skipped."""
    if os.name == "nt":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def open_artifacts(settings: Settings) -> ArtifactStore:
    """The artifact store `settings` name (``MLPROD_ARTIFACTS``, else beside the store).

    A ``redis://`` URL keeps bundles in Redis by content hash, with this host's verified
    copies in ``MLPROD_ARTIFACTS_CACHE`` (default ``<store>/bundles``).
    """
    if settings.artifacts and "://" in settings.artifacts:
        from mlprod.store._redis_artifacts import RedisArtifacts  # redis only when asked for

        return RedisArtifacts.open(
            settings.artifacts, cache_dir=settings.artifacts_dir(), prefix=settings.redis_prefix
        )
    return LocalArtifacts(settings.artifacts_dir())
