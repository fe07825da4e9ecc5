"""`mlprod dashboard` on its own: closed reading, sign-in, fixed static files, clear errors."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from mlprod.serving import create_token
from mlprod.store import Store
from support import Project, Server, trained


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    return trained(tmp_path_factory.mktemp("board"))


@pytest.fixture(scope="module")
def closed(project: Project) -> Iterator[Server]:
    board = Server(project, command="dashboard", env={"MLPROD_UI_OPEN": "false"})
    try:
        board.wait_ready()
        yield board
    finally:
        board.stop()


def test_closed_reading_needs_a_token_and_sign_in_keeps_it(
    closed: Server, project: Project
) -> None:
    with Store.open(project.settings().store_url()) as store:
        _, secret = create_token(store, "viewer", ["predict"], actor="t")
    api = httpx.get(closed.url + "/ui/api/overview")
    assert api.status_code == 401 and "/ui/login" in api.json()["error"]["message"]
    page = httpx.get(closed.url + "/ui/", headers={"accept": "text/html"})
    assert page.status_code == 303 and page.headers["location"] == "/ui/login"
    bearer = httpx.get(
        closed.url + "/ui/api/overview", headers={"authorization": f"Bearer {secret}"}
    )
    assert [m["name"] for m in bearer.json()["models"]] == ["churn"]

    with httpx.Client(base_url=closed.url) as browser:
        wrong = browser.post("/ui/login", data={"token": "mlp_nope"})
        assert wrong.status_code == 303 and "error" in wrong.headers["location"]
        signed = browser.post("/ui/login", data={"token": secret})
        assert signed.status_code == 303 and "mlprod_token" in signed.headers["set-cookie"]
        assert "httponly" in signed.headers["set-cookie"].lower()
        assert browser.get("/ui/").status_code == 200  # the cookie now reads for it


def test_static_files_come_from_a_fixed_list(closed: Server) -> None:
    plotly = httpx.get(closed.url + "/ui/static/plotly.min.js")
    assert plotly.status_code == 200 and len(plotly.content) > 1_000_000  # from the package
    assert (
        httpx.get(closed.url + "/ui/static/app.js")
        .headers["content-type"]
        .startswith("text/javascript")
    )
    for probe in ("../settings.py", "..%2F_app.py", "%2e%2e/__init__.py", "templates"):
        assert httpx.get(closed.url + "/ui/static/" + probe).status_code == 404


def test_unknown_things_are_clear_404s(project: Project) -> None:
    board = Server(project, command="dashboard")
    try:
        board.wait_ready()
        missing = httpx.get(board.url + "/ui/api/models/nope")
        assert (
            missing.status_code == 404 and "no model 'nope'" in missing.json()["error"]["message"]
        )
        period = httpx.get(board.url + "/ui/api/overview?period=5y")
        assert period.status_code == 404 and "24h, 7d, 30d, 1y" in period.json()["error"]["message"]
        report = httpx.get(board.url + "/ui/models/churn/versions/9/report")
        assert report.status_code == 404
        assert httpx.get(board.url + "/").headers.get("location") in (None, "/ui/")
    finally:
        board.stop()


def test_version_page_names_the_positive_class(project: Project) -> None:
    board = Server(project, command="dashboard")
    try:
        board.wait_ready()
        page = httpx.get(board.url + "/ui/models/churn/versions/1")
        assert page.status_code == 200 and "positive class churned = true" in page.text
    finally:
        board.stop()
