"""The ``interface:`` section: the request and response contract, agreed before any model.

A consuming team builds against it on day one (``mlprod interface`` prints it as an
OpenAPI document); every trained version is checked against it, and the server enforces
it value by value. Example::

    interface:
      extra: reject                 # ignore | reject fields the contract does not name
      request:
        tenure_months: {type: integer, minimum: 0, maximum: 600}
        plan: {type: string, values: [basic, plus, pro]}
        region: {type: string, max_length: 40, nullable: false}
        signup_date: datetime       # shorthand for {type: datetime}
      response:
        label: {values: [false, true]}
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

InterfaceType = Literal["number", "integer", "string", "boolean", "datetime"]
INTERFACE_TYPES = ("number", "integer", "string", "boolean", "datetime")
# The feature kind a field of each type is scored as.
KIND_OF_TYPE: dict[str, str] = {
    "number": "numeric",
    "integer": "numeric",
    "string": "categorical",
    "boolean": "boolean",
    "datetime": "datetime",
}
Scalar = str | bool | int | float


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


class FieldContract(_Strict):
    """One request field: its type, whether it may be absent or null, and its bounds."""

    type: InterfaceType
    required: bool = Field(default=True, description="The field must be present.")
    nullable: bool = Field(default=True, description="null (an unknown value) is accepted.")
    minimum: float | None = Field(default=None, description="Smallest number accepted.")
    maximum: float | None = Field(default=None, description="Largest number accepted.")
    values: list[Scalar] | None = Field(
        default=None, min_length=1, description="The only strings accepted."
    )
    max_length: int | None = Field(default=None, ge=1, description="Longest string accepted.")
    description: str = ""

    @model_validator(mode="after")
    def _bounds_fit_the_type(self) -> FieldContract:
        numeric = self.type in ("number", "integer")
        if (self.minimum is not None or self.maximum is not None) and not numeric:
            raise ValueError(
                f"minimum and maximum apply to number and integer fields, not {self.type}"
            )
        if self.minimum is not None and self.maximum is not None and self.minimum > self.maximum:
            raise ValueError(f"minimum {self.minimum:g} is above maximum {self.maximum:g}")
        if (self.values is not None or self.max_length is not None) and self.type != "string":
            raise ValueError(f"values and max_length apply to string fields, not {self.type}")
        if self.values is not None:
            odd = [v for v in self.values if not isinstance(v, str)]
            if odd:
                raise ValueError(f"values of a string field must be strings, got {odd[:3]}")
            longest = max(len(str(v)) for v in self.values)
            if self.max_length is not None and longest > self.max_length:
                raise ValueError(
                    f"max_length {self.max_length} is shorter than an allowed value "
                    f"({longest} characters)"
                )
        return self

    @property
    def kind(self) -> str:
        """The feature kind the model must have learned for this field."""
        return KIND_OF_TYPE[self.type]

    def constraints(self) -> dict[str, Any]:
        """What a version's signature keeps of this contract (defaults left out)."""
        kept: dict[str, Any] = {"type": self.type}
        if not self.required:
            kept["required"] = False
        if not self.nullable:
            kept["nullable"] = False
        for key in ("minimum", "maximum", "values", "max_length"):
            value = getattr(self, key)
            if value is not None:
                kept[key] = value
        if self.description:
            kept["description"] = self.description
        return kept


class LabelContract(_Strict):
    """The two classes a prediction's ``label`` takes, as the training data spells them."""

    values: list[Scalar] = Field(min_length=2, max_length=2)


class ResponseContract(_Strict):
    """What each prediction carries besides its id, version and score."""

    label: LabelContract | None = None


class InterfaceSpec(_Strict):
    """The contract: request fields by name, the extra-field policy, the response."""

    extra: Literal["ignore", "reject"] = Field(
        default="ignore",
        description="Fields the contract does not name: dropped before logging, or a 422.",
    )
    request: dict[str, FieldContract] = Field(min_length=1)
    response: ResponseContract = Field(default_factory=ResponseContract)

    @field_validator("request", mode="before")
    @classmethod
    def _type_shorthand(cls, value: Any) -> Any:
        """``field: integer`` is short for ``field: {type: integer}``."""
        if isinstance(value, dict):
            return {k: {"type": v} if isinstance(v, str) else v for k, v in value.items()}
        return value

    def kinds(self) -> dict[str, str]:
        """Request field name to the feature kind it must be scored as."""
        return {name: field.kind for name, field in self.request.items()}
