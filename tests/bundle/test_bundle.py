"""Bundles: native formats that round-trip exactly; tampering and foreign types refused."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import mlprod
from mlprod.bundle import Manifest, Model, load_scorer, save_model, save_skops, seal_bundle
from mlprod.errors import IntegrityError
from mlprod.spec import CATALOGUE
from mlprod.training import make_estimator
from support import Project


class NotAllowed:
    """A type outside the platform's allow-list."""

    def __init__(self) -> None:
        self.payload = "anything"


@pytest.mark.parametrize("kind", CATALOGUE)
def test_every_flavour_round_trips_scores_exactly(
    kind: str, rng: np.random.Generator, tmp_path: Path
) -> None:
    X = rng.normal(size=(300, 4))
    y = (X[:, 0] + rng.normal(size=300) > 0).astype(int)
    estimator = make_estimator(kind, {}, seed=0).fit(X, y)
    saved = save_model(estimator, tmp_path)
    expected = {"lightgbm": "lightgbm", "xgboost": "xgboost", "mlp": "mlp"}.get(kind, "sklearn")
    assert saved.flavor == expected
    assert not list(tmp_path.glob("*.pkl"))
    scorer = load_scorer(saved.flavor, tmp_path / saved.filename, list(saved.trusted_types))
    np.testing.assert_allclose(
        scorer.scores(X), estimator.predict_proba(X)[:, 1], rtol=0, atol=1e-12
    )


@pytest.fixture
def bundle(trained_project: Project, tmp_path: Path) -> Path:
    source = mlprod.load("churn@1", store=trained_project.store).folder
    copy = tmp_path / "bundle"
    shutil.copytree(source, copy)
    return copy


def test_manifest_lists_every_file_with_its_hash(bundle: Path) -> None:
    manifest = json.loads((bundle / "manifest.json").read_text())
    files = {p.name for p in bundle.iterdir()} - {"manifest.json"}
    assert set(manifest["files"]) == files
    assert {"transformer.skops", "test.parquet", "metrics.json", "report.html"} <= files
    assert manifest["name"] == "churn" and manifest["signature"]["classes"] == [False, True]
    assert Model.open(bundle).name == "churn"


@pytest.mark.parametrize("victim", ["transformer.skops", "test.parquet", "metrics.json"])
def test_a_modified_file_is_refused(bundle: Path, victim: str) -> None:
    with (bundle / victim).open("ab") as handle:
        handle.write(b"\0")
    with pytest.raises(IntegrityError, match=f"{victim} was modified"):
        Model.open(bundle)


def test_a_modified_model_file_and_an_extra_file_are_refused(bundle: Path) -> None:
    manifest = json.loads((bundle / "manifest.json").read_text())
    (bundle / manifest["model_file"]).write_bytes(b"tampered")
    with pytest.raises(IntegrityError, match="modified"):
        Model.open(bundle)
    (bundle / manifest["model_file"]).unlink()
    with pytest.raises(IntegrityError, match="missing"):
        Model.open(bundle)


def test_an_unrecorded_file_is_refused(bundle: Path) -> None:
    (bundle / "evil.pkl").write_bytes(b"\x80\x04")
    with pytest.raises(IntegrityError, match="unrecorded"):
        Model.open(bundle)


def test_a_resealed_bundle_with_a_foreign_type_is_still_refused(
    bundle: Path, tmp_path: Path
) -> None:
    """Even with matching hashes, skops may only build allowed types."""
    with pytest.raises(IntegrityError, match="does not allow"):
        save_skops(NotAllowed(), tmp_path / "x.skops", "sklearn")
    import skops.io as sio

    sio.dump(NotAllowed(), bundle / "transformer.skops")
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest.pop("files")
    seal_bundle(bundle, Manifest.model_validate(manifest))
    with pytest.raises(IntegrityError, match="NotAllowed"):
        Model.open(bundle)
