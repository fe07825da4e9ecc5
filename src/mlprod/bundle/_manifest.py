"""The manifest: what a bundle holds and the sha256 of every file, as one typed document.

``manifest.json`` is written last (`seal_bundle`) and read first: loading checks every
file against it before anything is deserialized. `api_version` says which layout wrote
the bundle, so a newer mlprod can keep reading older bundles (api_version 1 bundles were
written with the key ``format``).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError

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

    def document(self) -> dict[str, Any]:
        """The manifest as written to ``manifest.json``."""
        return self.model_dump(mode="json", by_alias=False)


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


def read_manifest(folder: Path) -> Manifest:
    """The manifest of a bundle, after checking every file against its hash."""
    manifest = load_manifest(folder)
    verify_files(folder, manifest)
    return manifest


def verify_files(folder: Path, manifest: Manifest) -> None:
    """Every listed file exists with its recorded sha256, and nothing else is present."""
    recorded = manifest.files
    present = {p.name for p in folder.iterdir() if p.is_file() and p.name != MANIFEST}
    unexpected = sorted(present - set(recorded))
    if unexpected:
        raise IntegrityError(
            f"bundle {folder.name} holds unrecorded file(s) {unexpected}; refusing it"
        )
    for name, expected in recorded.items():
        path = folder / name
        if not path.is_file() or Path(name).name != name:
            raise IntegrityError(f"bundle {folder.name} is missing {name}; re-register the model")
        actual = sha256_file(path)
        if actual != expected:
            raise IntegrityError(
                f"bundle file {name} was modified after registration: sha256 {actual[:12]}... "
                f"does not match the recorded {expected[:12]}...; refusing to load it. "
                "Re-train or restore the file."
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
