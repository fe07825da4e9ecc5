"""Bad artifacts: paths out of the bundle, functions in skops files, hashes a manifest rewrites."""

from __future__ import annotations

import builtins
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bundle_kit import good_and_evil, rewrite_manifest, swap_file
from mlprod.bundle import Model, bundle_files, read_manifest
from mlprod.bundle.flavors import load_skops
from mlprod.errors import IntegrityError


@pytest.fixture(scope="module")
def sealed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return good_and_evil(tmp_path_factory.mktemp("bundles"))


@pytest.fixture
def bundle(sealed: dict[str, Path], tmp_path: Path) -> Path:
    return Path(shutil.copytree(sealed["good"], tmp_path / "bundle"))


def test_a_swapped_model_file_with_a_rewritten_hash_is_refused_against_the_stores_copy(
    bundle: Path, sealed: dict[str, Path]
) -> None:
    recorded = bundle_files(bundle)
    assert set(recorded) == {p.name for p in bundle.iterdir()}  # manifest.json included
    before = Model.open(bundle, expected=recorded).score(Model.open(bundle).test_data()[0])
    swap_file(bundle, "model.ubj", sealed["evil"] / "model.ubj")
    # The manifest alone is fooled: it was rewritten to match, and the scores flip.
    fooled = Model.open(bundle)
    after = fooled.score(fooled.test_data()[0])
    assert np.mean((before >= 0.5) != (after >= 0.5)) > 0.5
    with pytest.raises(IntegrityError, match=r"model\.ubj") as caught:
        Model.open(bundle, expected=recorded)
    assert "manifest.json" in str(caught.value) and "registration" in str(caught.value)


def test_an_untouched_bundle_loads_against_the_stores_copy(bundle: Path) -> None:
    model = Model.open(bundle, expected=bundle_files(bundle))
    scores = model.warm_up()
    assert scores.shape == (5,) and np.all((scores >= 0) & (scores <= 1))


def test_a_file_added_beside_the_recorded_ones_is_refused(bundle: Path) -> None:
    recorded = bundle_files(bundle)
    (bundle / "extra.json").write_text("{}")
    with pytest.raises(IntegrityError, match=r"unrecorded file\(s\) \['extra.json'\]"):
        Model.open(bundle, expected=recorded)


@pytest.mark.parametrize("where", ["../outside/model.ubj", "ABSOLUTE", "sub/model.ubj", ".."])
def test_a_model_file_outside_the_bundle_is_refused(bundle: Path, where: str) -> None:
    outside = bundle.parent / "outside"
    outside.mkdir()
    shutil.copy(bundle / "model.ubj", outside / "model.ubj")
    name = str(outside / "model.ubj") if where == "ABSOLUTE" else where
    rewrite_manifest(bundle, model_file=name)
    with pytest.raises(IntegrityError, match="model_file") as caught:
        Model.open(bundle)
    assert "not a file inside the bundle" in str(caught.value)


def test_a_hashed_file_name_outside_the_bundle_is_refused(bundle: Path) -> None:
    files = read_manifest(bundle).files
    rewrite_manifest(bundle, files={**files, "../metrics.json": files["metrics.json"]})
    with pytest.raises(IntegrityError, match=r"'\.\./metrics\.json' is not a file inside"):
        Model.open(bundle)


def test_a_model_file_the_manifest_does_not_hash_is_refused(bundle: Path) -> None:
    files = read_manifest(bundle).files
    rewrite_manifest(bundle, files={k: v for k, v in files.items() if k != "metrics.json"})
    (bundle / "metrics.json").rename(bundle / "other.ubj")
    shutil.copy(bundle / "model.ubj", bundle / "other.ubj")
    rewrite_manifest(bundle, model_file="other.ubj")
    with pytest.raises(IntegrityError, match="unrecorded"):
        Model.open(bundle)


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "eval": builtins.eval,
    "exec": builtins.exec,
    "open": builtins.open,
}


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_a_skops_file_carrying_a_builtin_function_is_refused_even_if_the_manifest_lists_it(
    bundle: Path, name: str
) -> None:
    import skops.io as sio
    from sklearn.preprocessing import FunctionTransformer

    path = bundle / "transformer.skops"
    sio.dump(FunctionTransformer(func=FUNCTIONS[name]), path)
    needed = sio.get_untrusted_types(file=path)
    assert any(t.endswith(f".{name}") for t in needed)
    with pytest.raises(IntegrityError, match="does not allow"):
        load_skops(path, needed)
    swap_file(bundle, "transformer.skops", path)
    trusted = read_manifest(bundle).trusted_types
    rewrite_manifest(bundle, trusted_types={**trusted, "transformer.skops": needed})
    with pytest.raises(IntegrityError, match=rf"\.{name}'\], which mlprod does not allow"):
        Model.open(bundle)


def test_extra_trusted_types_in_a_manifest_widen_nothing(bundle: Path) -> None:
    """Listing more types changes no decision: a good file loads, a bad one is still refused."""
    trusted = read_manifest(bundle).trusted_types
    extra = ["builtins.eval", "os.system", "io.open"]
    widened = {name: [*types, *extra] for name, types in trusted.items()}
    rewrite_manifest(bundle, trusted_types=widened)
    files = read_manifest(bundle).files  # the manifest changed, its files did not
    assert Model.open(bundle).warm_up().shape == (5,)
    import skops.io as sio

    sio.dump({"f": builtins.eval}, bundle / "transformer.skops")
    rewrite_manifest(bundle, files=files)
    swap_file(bundle, "transformer.skops", bundle / "transformer.skops")
    with pytest.raises(IntegrityError, match=r"builtins\.eval"):
        Model.open(bundle)
