"""What a user sees when a version's files were damaged: one line with the reason, no change."""

from __future__ import annotations

from pathlib import Path

import pytest

from bundle_kit import Shelf, good_and_evil, swap_file
from mlprod.registry import alias_map, create_run, get_deployment, register_version
from mlprod.store import Store
from support import Project, run_cli


@pytest.fixture(scope="module")
def xgb(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return good_and_evil(tmp_path_factory.mktemp("cli-xgb"))


@pytest.mark.slow
def test_promote_and_deploy_refuse_a_swapped_model_file_in_one_line(
    store_url: str, tmp_path: Path, xgb: dict[str, Path]
) -> None:
    project = Project(tmp_path, store=store_url)
    shelf = Shelf(project.settings().artifacts_dir(), xgb["good"])
    with Store.open(store_url) as store:
        run = create_run(store, "churn", user="t", spec={}, git_commit=None, library_versions={})
        for _ in range(2):
            bundle_id, files = shelf.put("churn", fresh=True)
            register_version(store,
                "churn", run_id=run, bundle_id=bundle_id, flavor="xgboost", metrics={},
                gates=[], gates_passed=True, signature={"fields": []}, threshold=0.5, files=files,
            )  # fmt: skip
    swap_file(shelf.folder("churn"), "model.ubj", xgb["evil"] / "model.ubj")  # the newest copy

    refused = {
        "become 'production'": ("promote", "churn", "2", "--force", "--reason", "try"),
        "take traffic": ("deploy", "churn", "--route", "1=90", "--route", "2=10"),
    }
    for role, args in refused.items():
        done = run_cli(project, *args, check=False)
        assert done.returncode == 1, done.stdout
        assert f"churn@2 cannot {role}" in done.stderr
        assert "model.ubj" in done.stderr and "Traceback" not in done.stderr
    run_cli(project, "promote", "churn", "1")
    with Store.open(store_url) as store:
        assert alias_map(store, "churn") == {"production": 1}
        assert get_deployment(store, "churn") is None
