"""Loading a bundle imports what its flavour needs, not every library mlprod can use.

Each check runs in a fresh interpreter, where nothing else has imported anything yet.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from bundle_kit import write_small_bundle

WATCHED = ("lightgbm", "skops.io", "sklearn.gaussian_process", "torch")


def loaded_after(code: str) -> list[str]:
    """Which of `WATCHED` a fresh interpreter holds after running `code`."""
    probe = (
        f"import json, sys\n{code}\nprint(json.dumps([m for m in {WATCHED!r} if m in sys.modules]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=300
    )
    return sorted(json.loads(done.stdout.strip().splitlines()[-1]))


@pytest.mark.skipif(
    importlib.util.find_spec("torch") is None, reason="PyTorch is not installed: nothing to avoid"
)
def test_loading_a_lightgbm_bundle_imports_neither_torch_nor_all_of_sklearn(
    tmp_path: Path,
) -> None:
    folder = write_small_bundle(tmp_path / "bundle", kind="lightgbm")
    code = (
        "import pandas as pd\nfrom mlprod.bundle import Model\n"
        f"model = Model.open({str(folder)!r})\n"
        "print(model.score(pd.DataFrame({'amount': [50.0], 'plan': ['basic']})))"
    )
    # The booster and the skops transformer did load; PyTorch and the estimators no
    # bundle holds (sklearn.gaussian_process stands for them) did not.
    assert loaded_after(code) == ["lightgbm", "skops.io"]


def test_importing_skops_the_usual_way_loads_what_the_bundle_loader_avoids() -> None:
    # The sibling: skops' own import walks every scikit-learn module (torch too, when
    # installed), so the absence above is the loader's doing.
    found = loaded_after("import skops.io")
    assert "sklearn.gaussian_process" in found
    assert ("torch" in found) == (importlib.util.find_spec("torch") is not None)


def test_skops_trusts_the_scipy_ufuncs_its_own_search_names_and_no_label_stays() -> None:
    """The loader labels scipy's ufuncs with the module skops' search would find, so skops
    reads the label instead of searching every loaded module; the names must not move."""
    code = (
        "import json, warnings\n"
        "import mlprod.pipelines._train  # a training process's modules, in its order\n"
        "import numpy as np, scipy.special\n"
        "from mlprod.bundle.flavors._skops import skops_io\n"
        "skops_io()\n"
        "from skops.io import _trusted_types\n"
        "from skops.io._utils import get_public_type_names\n"
        "with warnings.catch_warnings():\n"
        "    warnings.simplefilter('ignore', DeprecationWarning)\n"
        "    searched = get_public_type_names(module=scipy.special, oftype=np.ufunc)\n"
        "left = [n for n, v in vars(scipy.special).items()\n"
        "        if isinstance(v, np.ufunc) and getattr(v, '__module__', None) is not None]\n"
        "print(json.dumps([_trusted_types.SCIPY_UFUNC_TYPE_NAMES, searched, left]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300
    )
    trusted, searched, left = json.loads(done.stdout.strip().splitlines()[-1])
    assert len(searched) > 100 and trusted == searched
    assert left == []
