"""Registry fixtures: a small real bundle, stored per test, so promotions can load it."""

from __future__ import annotations

from pathlib import Path

import pytest

from bundle_kit import Shelf, write_small_bundle


@pytest.fixture(scope="session")
def small_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_small_bundle(tmp_path_factory.mktemp("small") / "bundle")


@pytest.fixture
def shelf(small_bundle: Path, tmp_path: Path) -> Shelf:
    return Shelf(tmp_path / "artifacts", small_bundle)
