"""mlprod.Client against a real server: records in, predictions out, errors typed."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

import mlprod
from mlprod.errors import (
    LoadingError,
    MlprodError,
    NotFoundError,
    SchemaError,
    UnavailableError,
)
from support import Project, Server, free_port


@pytest.fixture
def frame(trained_project: Project) -> pd.DataFrame:
    return pd.read_csv(trained_project.root / "customers.csv").drop(columns=["churned"]).head(20)


def test_client_scores_frames_lists_and_single_records(
    server: Server, trained_project: Project, frame: pd.DataFrame
) -> None:
    expected = mlprod.load("churn@production", store=trained_project.store).score(frame)
    with mlprod.Client(server.url) as client:
        assert client.ready()
        assert [m["name"] for m in client.models()] == ["churn"]
        from_frame = client.predict(frame)  # the only served model is picked
        from_list = client.predict(frame.to_dict("records"), model="churn")
        single = client.predict(frame.iloc[0].to_dict(), model="churn", version=1)
    np.testing.assert_allclose([p["score"] for p in from_frame], expected, rtol=0, atol=1e-12)
    assert [p["score"] for p in from_list] == [p["score"] for p in from_frame]
    assert len(single) == 1
    assert single[0]["version"] == 1


def test_client_raises_the_servers_errors(server: Server, frame: pd.DataFrame) -> None:
    with mlprod.Client(server.url, model="churn") as client:
        with pytest.raises(SchemaError) as caught:
            client.predict([{**frame.iloc[0].to_dict(), "tenure_months": "many"}])
        assert caught.value.fields[0]["field"] == "tenure_months"
        with pytest.raises(NotFoundError, match="not served"):
            client.predict(frame, model="other")


def test_client_says_when_no_server_answers() -> None:
    with mlprod.Client(f"http://127.0.0.1:{free_port()}", model="churn", timeout=2) as client:
        assert not client.ready()
        with pytest.raises(UnavailableError, match="mlprod serve"):
            client.predict([{"a": 1}])


@pytest.mark.slow
def test_client_waits_for_a_version_the_server_is_still_loading(
    trained_project: Project, frame: pd.DataFrame
) -> None:
    """A 150 ms budget answers the first call to an unloaded version "loading" (503,
    Retry-After: 1): the client asks again and returns the scores; a client whose own
    timeout is shorter than the wait raises `LoadingError` instead."""
    import time

    expected = mlprod.load("churn@1", store=trained_project.store).score(frame.head(3))
    # the impatient client first: no server has checked this version's fast path yet,
    # so its load takes a second or more, far beyond what is left of the 0.4 s budget
    for patience, budget in ((0.9, "0.4"), (60.0, "0.15")):
        # no load fits in the budget; the impatient client's must leave time to say
        # "loading" before a busy server's 504, and its own timeout is under Retry-After
        env = {"MLPROD_REQUEST_TIMEOUT": budget}
        server = Server(trained_project, "--alias", "staging", env=env)  # nothing loaded yet
        try:
            server.wait_ready()
            with mlprod.Client(server.url, model="churn", timeout=patience) as client:
                if patience < 1:
                    with pytest.raises(LoadingError, match="churn@1 is still loading"):
                        client.predict(frame.head(3), version=1)
                    continue
                started = time.monotonic()
                answered = _patiently(lambda: client.predict(frame.head(3), version=1))
                assert time.monotonic() - started >= 0.9  # it waited out a Retry-After
            scores = [p["score"] for p in answered]
            np.testing.assert_allclose(scores, expected, rtol=0, atol=1e-12)
        finally:
            server.stop()


def _patiently(call: Any) -> Any:
    """`call()`, again after a 504: on a busy machine scoring can outrun a 150 ms budget."""
    for _ in range(20):
        try:
            return call()
        except MlprodError as exc:
            if exc.code != "timeout":
                raise
    raise AssertionError("every call timed out")
