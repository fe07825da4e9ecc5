"""The manifest: what a bundle holds and the sha256 of every file, as one typed document.

``manifest.json`` is written last (`seal_bundle`) and read first: loading checks every
file against it before anything is deserialized. `api_version` says which layout wrote
the bundle, so a newer mlprod can keep reading older bundles (api_version 1 bundles were
written with the key ``format``).

A manifest checks only itself: whoever rewrites a file can rewrite its hash too. So the
registry keeps `bundle_files` (every file's sha256, the manifest's included) when a
version is registered, and loading a version checks against that copy (`verify_files`
with the store's hashes). Every name a manifest gives is a plain file name inside the
bundle (`inside`): nothing outside the folder is read because a manifest says so.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError, field_validator

from mlprod.errors import IntegrityError, NotFoundError

API_VERSION = 1
MANIFEST = "manifest.json"
TRANSFORMER = "transformer.skops"
TEST_DATA = "test.parquet"
METRICS = "metrics.json"
REFERENCE = "reference.json"  # reference distributions for drift, since monitoring began
REPORT = "report.html"
TARGET_COLUMN = "__target__"


class Manifest(BaseModel):
    """A bundle's manifest. Unknown keys are kept (a newer writer may add some).

    Example::

        manifest = read_manifest(Path("bundle"))      # hashes checked
        manifest.flavor, manifest.model_file, manifest.files["model.txt"]
    """

    model_config = ConfigDict(frozen=True, extra="allow", populate_by_name=True)

    api_version: int = Field(
        default=API_VERSION, validation_alias=AliasChoices("api_version", "format")
    )
    name: str
    run_id: str
    flavor: str
    model_file: str
    threshold: float
    signature: dict[str, Any]
    importance: dict[str, Any] | list[Any] = Field(default_factory=dict)
    libraries: dict[str, str] = Field(default_factory=dict)
    trusted_types: dict[str, list[str]] = Field(default_factory=dict)
    files: dict[str, str] = Field(default_factory=dict)

    @field_validator("model_file")
    @classmethod
    def _model_file_inside(cls, name: str) -> str:
        check_name(name, "model_file")
        return name

    @field_validator("files", "trusted_types")
    @classmethod
    def _keys_inside(cls, entries: dict[str, Any]) -> dict[str, Any]:
        for name in entries:
            check_name(name, "a key of files/trusted_types")
        return entries

    def document(self) -> dict[str, Any]:
        """The manifest as written to ``manifest.json``."""
        return self.model_dump(mode="json", by_alias=False)


def check_name(name: str, field: str) -> None:
    """ValueError unless `name` is a plain file name: no folder, no ``..``, not absolute."""
    plain = (
        bool(name)
        and name not in {".", ".."}
        and "\x00" not in name
        and PurePosixPath(name).name == name
        and PureWindowsPath(name).name == name
    )
    if not plain:
        raise ValueError(
            f"{field} {name!r} is not a file inside the bundle: a manifest names plain "
            "file names only (no folders, '..' or absolute paths)"
        )


def inside(folder: Path, name: str, field: str) -> Path:
    """`folder / name`, refused unless it is a plain name resolving to a file in `folder`.

    The resolved check catches a symlink planted in the bundle that points elsewhere.
    """
    try:
        check_name(name, field)
    except ValueError as exc:
        raise IntegrityError(f"bundle {folder.name}: {exc}; refusing it") from None
    path = folder / name
    if path.is_symlink() or path.resolve().parent != folder.resolve():
        raise IntegrityError(
            f"bundle {folder.name}: {field} {name!r} resolves outside the bundle; refusing it"
        )
    return path


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def seal_bundle(folder: Path, manifest: Manifest) -> Manifest:
    """Hash every file in `folder` and write the manifest beside them; returns it sealed."""
    files = {
        path.name: sha256_file(path)
        for path in sorted(folder.iterdir())
        if path.is_file() and path.name != MANIFEST
    }
    sealed = manifest.model_copy(update={"files": files, "api_version": API_VERSION})
    text = json.dumps(sealed.document(), indent=2, sort_keys=True)
    (folder / MANIFEST).write_text(text, encoding="utf-8")
    return sealed


def load_manifest(folder: Path) -> Manifest:
    """The manifest of the bundle in `folder`, parsed but not yet checked against the files."""
    path = folder / MANIFEST
    if not path.is_file():
        raise NotFoundError(f"no bundle at {folder}: {MANIFEST} is missing")
    try:
        return Manifest.model_validate(json.loads(path.read_text(encoding="utf-8")))
    except json.JSONDecodeError as exc:
        raise IntegrityError(f"{path} is not valid JSON ({exc}); the bundle is damaged") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise IntegrityError(
            f"{path} is not a bundle manifest ({where}: {first['msg']}); the bundle is damaged"
        ) from None


def read_manifest(folder: Path, expected: Mapping[str, str] | None = None) -> Manifest:
    """The manifest of a bundle, after checking every file against its hash.

    With `expected` (the hashes the store kept at registration, ``manifest.json``
    included), files are checked against those and the manifest must agree with them;
    without it (versions registered before the store kept hashes), against the manifest.
    """
    if expected is None:
        manifest = load_manifest(folder)
        verify_files(folder, manifest.files)
        return manifest
    verify_files(folder, expected, against="the store recorded at registration")
    manifest = load_manifest(folder)
    if {**manifest.files, MANIFEST: expected.get(MANIFEST, "")} != dict(expected):
        raise IntegrityError(
            f"bundle {folder.name}: {MANIFEST} does not list the files the store recorded "
            "at registration; refusing it. Restore the bundle or register a new version."
        )
    return manifest


def bundle_files(folder: Path) -> dict[str, str]:
    """Every file's sha256, ``manifest.json``'s included: the copy a registry keeps.

    The bundle is checked against its manifest first, so what is recorded is what was
    sealed. Example: ``register_version(..., files=bundle_files(artifacts.path(bundle_id)))``.
    """
    manifest = read_manifest(folder)
    return {**manifest.files, MANIFEST: sha256_file(folder / MANIFEST)}


def verify_files(
    folder: Path, recorded: Mapping[str, str], *, against: str = "recorded in its manifest"
) -> None:
    """Every recorded file exists with its sha256, and nothing else is present.

    Every mismatch is named at once, so a swapped model file shows up beside the rewritten
    manifest that tried to cover for it.
    """
    present = {p.name for p in folder.iterdir() if p.is_file()}
    if MANIFEST not in recorded:
        present.discard(MANIFEST)
    unexpected = sorted(present - set(recorded))
    if unexpected:
        raise IntegrityError(
            f"bundle {folder.name} holds unrecorded file(s) {unexpected}; refusing it"
        )
    changed: list[str] = []
    for name, digest in sorted(recorded.items()):
        path = inside(folder, name, "file")
        if not path.is_file():
            raise IntegrityError(f"bundle {folder.name} is missing {name}; re-register the model")
        if sha256_file(path) != digest:
            changed.append(name)
    if changed:
        files = f"files {', '.join(changed)} were" if changed[1:] else f"file {changed[0]} was"
        raise IntegrityError(
            f"bundle {files} modified after registration (bundle {folder.name}): the sha256 "
            f"does not match the one {against}; refusing to load it. Restore the files or "
            "train and register a new version."
        )


def read_reference(folder: Path) -> dict[str, Any] | None:
    """A bundle's reference distributions, hash-checked, without loading the model.

    None for bundles trained before mlprod recorded them: such versions report traffic
    and performance but no drift.
    """
    expected = load_manifest(folder).files.get(REFERENCE)
    if expected is None:
        return None
    path = folder / REFERENCE
    if not path.is_file() or sha256_file(path) != expected:
        raise IntegrityError(
            f"bundle file {REFERENCE} of {folder.name} does not match its recorded hash; "
            "refusing it. Re-train or restore the file."
        )
    reference: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return reference
