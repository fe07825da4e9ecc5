"""Model references: the three accepted forms, and clear errors for everything else."""

from __future__ import annotations

import pydantic
import pytest

from mlprod.errors import SpecError
from mlprod.registry._refs import ModelRef, check_alias, check_name, parse_ref


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("churn", ModelRef(name="churn")),
        ("churn@production", ModelRef(name="churn", alias="production")),
        ("churn@3", ModelRef(name="churn", version=3)),
        ("churn@12345", ModelRef(name="churn", version=12345)),
        ("churn-v2_eu@canary-1", ModelRef(name="churn-v2_eu", alias="canary-1")),
        ("a@b", ModelRef(name="a", alias="b")),
        ("x" * 63 + "@" + "y" * 63, ModelRef(name="x" * 63, alias="y" * 63)),
    ],
)
def test_parse_accepts_the_three_forms(text: str, expected: ModelRef) -> None:
    ref = parse_ref(text)
    assert ref == expected
    assert str(ref) == text


@pytest.mark.parametrize(
    "text",
    [
        "",
        "@production",
        "churn@",
        "churn@@3",
        "churn@3@4",
        "churn@0",
        "churn@03",
        "churn@-1",
        "churn@3.0",
        "Churn",
        "churn@Production",
        "1churn",
        "churn@_prod",
        " churn",
        "churn ",
        "churn\n",
        "churn@prod\n",
        "churn/../x",
        "x" * 64,
        "churn@" + "y" * 64,
    ],
)
def test_parse_rejects_anything_else_showing_the_forms(text: str) -> None:
    with pytest.raises(SpecError) as info:
        parse_ref(text)
    message = str(info.value)
    assert repr(text) in message
    assert "'churn@production'" in message
    assert "'churn@3'" in message


def test_parse_rejects_non_text() -> None:
    with pytest.raises(SpecError, match="must be text, got int"):
        parse_ref(3)  # type: ignore[arg-type]


def test_ref_is_frozen_and_validated() -> None:
    ref = ModelRef(name="churn", version=2)
    with pytest.raises(pydantic.ValidationError):
        ref.version = 3  # type: ignore[misc]
    with pytest.raises(pydantic.ValidationError, match="not both"):
        ModelRef(name="churn", version=2, alias="production")
    with pytest.raises(pydantic.ValidationError):
        ModelRef(name="Churn")
    with pytest.raises(pydantic.ValidationError):
        ModelRef(name="churn", version=0)
    assert {ModelRef(name="a"), ModelRef(name="a")} == {ModelRef(name="a")}


def test_aliases_are_never_plain_numbers() -> None:
    with pytest.raises(SpecError, match="a plain number means a version"):
        check_alias("3")
    assert check_alias("production") == "production"
    with pytest.raises(SpecError, match="invalid model name 'Bad'"):
        check_name("Bad")
    assert check_name("churn") == "churn"
