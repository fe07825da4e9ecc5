"""The ``interface:`` section: parsed strictly, drafted from data, compared with a model."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from mlprod.errors import SpecError
from mlprod.features import check_contract, contract_differences, draft_interface
from mlprod.spec import InterfaceSpec, parse_spec, render_spec

BASE: dict[str, Any] = {"name": "churn", "data": {"source": "x.csv", "target": "churned"}}


def _spec(interface: Any) -> Any:
    return parse_spec({**BASE, "interface": interface})


def test_fields_types_bounds_and_shorthand_parse() -> None:
    spec = _spec(
        {
            "extra": "reject",
            "request": {
                "tenure_months": {"type": "integer", "minimum": 0, "maximum": 600},
                "plan": {"type": "string", "values": ["basic", "pro"], "nullable": False},
                "region": {"type": "string", "max_length": 40, "required": False},
                "signup_date": "datetime",
            },
            "response": {"label": {"values": [False, True]}},
        }
    )
    interface = spec.interface
    assert interface is not None and interface.extra == "reject"
    assert interface.kinds() == {
        "tenure_months": "numeric", "plan": "categorical", "region": "categorical",
        "signup_date": "datetime",
    }  # fmt: skip
    assert interface.request["signup_date"].type == "datetime"
    assert interface.request["region"].constraints() == {
        "type": "string", "required": False, "max_length": 40,
    }  # fmt: skip
    assert parse_spec(BASE).interface is None  # the section is optional


@pytest.mark.parametrize(
    ("interface", "says"),
    [
        ({"request": {"age": "int"}}, "interface.request.age.type"),
        ({"request": {"age": {"type": "number", "minimum": 5, "maximum": 1}}}, "above maximum"),
        ({"request": {"age": {"type": "number", "values": ["a"]}}}, "apply to string fields"),
        ({"request": {"plan": {"type": "string", "minimum": 0}}}, "apply to number and integer"),
        ({"request": {"plan": {"type": "string", "values": [1, 2]}}}, "must be strings"),
        (
            {"request": {"plan": {"type": "string", "values": ["premium"], "max_length": 3}}},
            "max_length 3 is shorter",
        ),
        ({"request": {"age": {"type": "number", "maxlen": 3}}}, "unknown key"),
        ({"request": {}}, "interface.request"),
        ({"extra": "drop", "request": {"age": "number"}}, "interface.extra"),
        ({"request": {"churned": "boolean"}}, "is the target column"),
        ({"request": {"a": "number"}, "response": {"label": {"values": [1]}}}, "label.values"),
    ],
)
def test_mistakes_name_the_key_and_what_is_allowed(interface: Any, says: str) -> None:
    with pytest.raises(SpecError) as caught:
        _spec(interface)
    assert says in str(caught.value)


def _interface(**extra: Any) -> InterfaceSpec:
    request = {"age": "integer", "plan": "string", "customer_id": "string"}
    return InterfaceSpec.model_validate({"request": request, **extra})


def test_a_model_that_matches_has_no_differences() -> None:
    kinds = {"age": "numeric", "plan": "categorical"}
    found = contract_differences(_interface(), kinds, [0, 1], context=["customer_id"])
    assert found == []


def test_every_difference_is_named() -> None:
    interface = _interface(response={"label": {"values": ["no", "yes"]}})
    kinds = {"age": "categorical", "income": "numeric", "spend_7d": "numeric"}
    found = contract_differences(interface, kinds, ["No", "Yes"], computed=["spend_7d"])
    text = "\n".join(found)
    assert len(found) == 5, text
    age = "field 'age': the interface says integer (a numeric input), the model learned it as "
    assert age + "categorical" in text
    assert "field 'income': the model uses it (numeric) but interface.request does not" in text
    assert "field 'plan': interface.request names it but the model does not use it" in text
    assert "field 'customer_id'" in text  # not declared as context here
    assert "response label: the interface says ['no', 'yes']" in text and "'No'" in text
    assert "spend_7d" not in text  # looked up by the server, never in a request
    with pytest.raises(SpecError, match=r"5 difference\(s\)"):
        check_contract(interface, kinds, ["No", "Yes"], computed=["spend_7d"])


def test_a_draft_from_data_states_types_ranges_values_and_nulls() -> None:
    frame = pd.DataFrame(
        {
            "age": [30, 41, None, 25],
            "spend": [1.5, -2.0, 3.0, 0.0],
            "plan": ["basic", "pro", "pro", "basic"],
            "member": [True, False, True, True],
            "joined": pd.to_datetime(["2024-01-01", "2024-02-01", None, "2024-03-01"]),
            "churned": [0, 1, 0, 1],
        }
    )
    kinds = {"age": "numeric", "spend": "numeric", "plan": "categorical", "member": "boolean",
             "joined": "datetime"}  # fmt: skip
    draft = draft_interface(frame, kinds, target="churned")
    fields = {name: f.constraints() for name, f in draft.request.items()}
    assert fields == {
        "age": {"type": "integer", "minimum": 0.0},
        "spend": {"type": "number", "nullable": False},
        "plan": {"type": "string", "nullable": False, "values": ["basic", "pro"]},
        "member": {"type": "boolean", "nullable": False},
        "joined": {"type": "datetime"},
    }
    assert draft.response.label is not None and draft.response.label.values == [0, 1]
    many = pd.DataFrame({"city": [f"c{i}" for i in range(40)], "churned": [0, 1] * 20})
    city = draft_interface(many, {"city": "categorical"}, target="churned").request["city"]
    assert city.values is None and city.max_length == 64


def test_the_drafted_section_in_a_written_spec_reads_back_the_same() -> None:
    import yaml

    draft = InterfaceSpec.model_validate(
        {"request": {"age": {"type": "integer", "minimum": 0}, "plan": {"type": "string",
         "values": ["basic", "pro"], "nullable": False}}, "response": {"label": {"values":
         ["no", "yes"]}}}
    )  # fmt: skip
    text = render_spec("churn", "x.csv", "churned", {"age": "numeric", "plan": "categorical"},
                       interface=draft)  # fmt: skip
    assert "    age: {type: integer, minimum: 0}" in text
    spec = parse_spec(yaml.safe_load(text))
    assert spec.interface == draft
