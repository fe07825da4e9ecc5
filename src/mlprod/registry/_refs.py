"""Model references: ``churn`` (newest), ``churn@production`` (alias), ``churn@3`` (version).

Aliases start with a letter, so ``@3`` can only ever mean version 3: a reference is never
ambiguous, and the same text means the same thing in the CLI, the server and Python.
"""

from __future__ import annotations

import re
from typing import Annotated, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from mlprod.errors import SpecError

NAME_PATTERN = r"^[a-z][a-z0-9_-]{0,62}$"
ALIAS_PATTERN = r"^[a-z][a-z0-9_-]{0,62}$"
_NAME = re.compile(NAME_PATTERN)
_ALIAS = re.compile(ALIAS_PATTERN)
_VERSION = re.compile(r"^[1-9][0-9]{0,17}$")

FORMS = "'churn' (newest version), 'churn@production' (alias) or 'churn@3' (version)"


class ModelRef(BaseModel):
    """A parsed reference to one model version; at most one of `version` and `alias` is set.

    Example::

        parse_ref("churn@3") == ModelRef(name="churn", version=3)
        str(ModelRef(name="churn", alias="production")) == "churn@production"
    """

    model_config = ConfigDict(frozen=True, defer_build=True)  # built on first use, as records

    name: Annotated[str, Field(pattern=NAME_PATTERN)]
    version: Annotated[int, Field(ge=1)] | None = None
    alias: Annotated[str, Field(pattern=ALIAS_PATTERN)] | None = None

    @model_validator(mode="after")
    def _one_selector(self) -> Self:
        if self.version is not None and self.alias is not None:
            raise ValueError("a reference names a version or an alias, not both")
        return self

    def __str__(self) -> str:
        if self.version is not None:
            return f"{self.name}@{self.version}"
        if self.alias is not None:
            return f"{self.name}@{self.alias}"
        return self.name


def parse_ref(text: str) -> ModelRef:
    """Parse ``name``, ``name@alias`` or ``name@version``; anything else is a SpecError."""
    if not isinstance(text, str):
        raise SpecError(f"a model reference must be text, got {type(text).__name__}; use {FORMS}")
    name, at, selector = text.partition("@")
    if not _NAME.fullmatch(name) or (at and not selector):
        raise SpecError(_bad_ref(text))
    if not at:
        return ModelRef(name=name)
    if _VERSION.fullmatch(selector):
        return ModelRef(name=name, version=int(selector))
    if _ALIAS.fullmatch(selector):
        return ModelRef(name=name, alias=selector)
    raise SpecError(_bad_ref(text))


def check_name(name: str) -> str:
    """`name` if it is a valid model name, else a SpecError saying what is allowed."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise SpecError(
            f"invalid model name {name!r}: use 1-63 characters, lowercase letters, digits, "
            "'-' or '_', starting with a letter (for example 'churn')"
        )
    return name


def check_alias(alias: str) -> str:
    """`alias` if it is a valid alias; plain numbers are refused because they mean versions."""
    if not isinstance(alias, str) or not _ALIAS.fullmatch(alias):
        hint = " (a plain number means a version, not an alias)" if str(alias).isdigit() else ""
        raise SpecError(
            f"invalid alias {alias!r}{hint}: use 1-63 characters, lowercase letters, digits, "
            "'-' or '_', starting with a letter (for example 'production')"
        )
    return alias


def _bad_ref(text: str) -> str:
    return f"invalid model reference {text!r}: use {FORMS}"
