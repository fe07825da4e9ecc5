"""Training checks the model against the interface first, and refuses one that differs."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlprod.errors import SpecError
from mlprod.pipelines import train
from mlprod.registry import list_runs
from mlprod.store import Store
from support import SMALL_SPEC, write_project

DIFFERENT = """\
interface:
  request:
    customer_id: string
    tenure_months: integer
    monthly_charges: number
    total_charges: number
    support_calls: integer
    last_login_days: number
    plan: integer
    region: string
    has_partner: boolean
    paperless_billing: boolean
    signup_date: datetime
    coupon: string
  response:
    label: {values: ["no", "yes"]}
"""


def test_training_refuses_a_model_that_differs_naming_each_difference(
    store_url: str, tmp_path: Path
) -> None:
    project = write_project(tmp_path, rows=600, spec=SMALL_SPEC + DIFFERENT, store=store_url)
    with pytest.raises(SpecError) as caught:
        train(project.spec, settings=project.settings())
    message = str(caught.value)
    assert "4 difference(s)" in message
    plan = "field 'plan': the interface says integer (a numeric input), the model learned it as "
    assert plan + "categorical" in message
    assert "field 'payment_method': the model uses it (categorical) but interface.request" in (
        message
    )
    assert "field 'coupon': interface.request names it but the model does not use it" in message
    label = "response label: the interface says ['no', 'yes'], the training data's classes are "
    assert label + "[False, True]" in message
    assert "customer_id" not in message  # the entity column is the request's, not a feature
    with Store.open(store_url) as store:
        (run,) = list_runs(store, "churn")
        assert run.status == "failed" and run.version is None
