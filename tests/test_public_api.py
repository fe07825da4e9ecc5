"""The public surface changes only on purpose, and importing mlprod stays cheap."""

from __future__ import annotations

import subprocess
import sys

import mlprod


def test_top_level_exports() -> None:
    assert sorted(mlprod.__all__) == [
        "Client", "MlprodError", "Model", "TrainedRun", "__version__", "load", "promote", "train",
    ]  # fmt: skip
    for name in mlprod.__all__:
        assert getattr(mlprod, name) is not None


def test_import_does_no_heavy_work() -> None:
    heavy = "('sklearn', 'lightgbm', 'sqlalchemy', 'pandas')"
    code = f"import sys, mlprod; print(sorted(m for m in {heavy} if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_every_error_maps_to_an_http_status() -> None:
    from mlprod import errors

    children = [
        c
        for c in vars(errors).values()
        if isinstance(c, type) and issubclass(c, errors.MlprodError)
    ]
    assert len(children) >= 10
    for cls in children:
        assert 400 <= cls.status < 600
        assert cls.code
        assert cls.__name__ in (errors.__doc__ or "")
