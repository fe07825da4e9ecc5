"""A small, safe filter language over runs: ``roc_auc > 0.85 and params.model == 'lightgbm'``.

The text is parsed with Python's ``ast`` into a tree that may only hold comparisons,
``and``/``or``/``not``, field names, dotted paths and literal values; anything else (calls,
subscripts, arithmetic, lambdas) is refused with a message naming it. Nothing is ever
evaluated as Python: the allowed tree is walked by `matches`.

Fields: ``model``, ``status``, ``user``, ``version``, ``id``, ``parent``, ``winner``; a
metric name alone (``roc_auc``, the test point estimate); ``metrics.NAME`` or
``metrics.NAME.low``/``.high``; ``params.NAME``; ``spec.a.b`` for the resolved spec.
"""

from __future__ import annotations

import ast
import itertools
import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mlprod.errors import SpecError
from mlprod.registry._records import RunRecord

RUN_FIELDS = {
    "model": lambda r: r.model,
    "status": lambda r: r.status,
    "user": lambda r: r.user,
    "version": lambda r: r.version,
    "id": lambda r: r.id,
    "parent": lambda r: r.parent_run_id,
    "winner": lambda r: r.params.get("winner"),
    "started_at": lambda r: r.started_at.isoformat(),
}
METRICS = ("roc_auc", "average_precision", "precision", "recall", "f1", "log_loss", "brier")
ROOTS = ("metrics", "params", "spec")
_COMPARE: dict[type[ast.cmpop], Callable[[Any, Any], bool]] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.In: lambda a, b: a in b,
    ast.NotIn: lambda a, b: a not in b,
}
_WORDS: dict[str, Any] = {"true": True, "false": False, "none": None, "null": None}


def _fields_help() -> str:
    names = ", ".join([*RUN_FIELDS, *METRICS])
    return f"fields: {names}, metrics.NAME[.low|.high], params.NAME, spec.PATH"


@dataclass(frozen=True)
class Field:
    """A path into a run: ('metrics', 'roc_auc', 'value'), ('params', 'model'), ..."""

    path: tuple[str, ...]

    def read(self, run: RunRecord) -> Any:
        head, *rest = self.path
        if head in RUN_FIELDS and not rest:
            return RUN_FIELDS[head](run)
        value: Any = getattr(run, head)
        for part in rest:
            if not isinstance(value, dict):
                return None
            value = value.get(part)
        if isinstance(value, dict) and head == "metrics" and "value" in value:
            return value["value"]
        return value


def parse_where(text: str) -> ast.expr:
    """The checked syntax tree of a filter; `SpecError` names what is not allowed."""
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        where = f" at column {exc.offset}" if exc.offset else ""
        raise SpecError(
            f"--where {text!r} is not a valid filter{where}: {exc.msg}. "
            "Example: roc_auc > 0.85 and params.model == 'lightgbm'"
        ) from None
    _check(tree.body, text)
    return tree.body


def field_of(node: ast.expr, text: str) -> Field:
    """A Name or dotted Attribute as a checked Field."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        raise SpecError(f"--where {text!r}: expected a field name, got {ast.unparse(node)!r}")
    parts.append(node.id)
    path = tuple(reversed(parts))
    head = path[0]
    if len(path) == 1 and head in RUN_FIELDS:
        return Field(path)
    if len(path) == 1 and head in METRICS:
        return Field(("metrics", head))
    if head in ROOTS and len(path) > 1:
        return Field(path)
    raise SpecError(f"--where {text!r}: unknown field {'.'.join(path)!r}; {_fields_help()}")


def _literal(node: ast.expr, text: str) -> Any:
    if isinstance(node, ast.Constant) and isinstance(node.value, str | int | float | bool):
        return node.value
    if isinstance(node, ast.Constant) and node.value is None:
        return None
    if isinstance(node, ast.Name) and node.id.lower() in _WORDS:
        return _WORDS[node.id.lower()]
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        value = _literal(node.operand, text)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return -value
    if isinstance(node, ast.List | ast.Tuple):
        return tuple(_literal(item, text) for item in node.elts)
    raise SpecError(
        f"--where {text!r}: {ast.unparse(node)!r} is not allowed here; compare a field "
        "with a number, a quoted string, true/false/None or a list of those"
    )


def _check(node: ast.expr, text: str) -> None:
    if isinstance(node, ast.BoolOp):
        for value in node.values:
            _check(value, text)
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        _check(node.operand, text)
    elif isinstance(node, ast.Compare):
        operands = [node.left, *node.comparators]
        for op in node.ops:
            if type(op) not in _COMPARE:
                raise SpecError(f"--where {text!r}: operator {type(op).__name__} is not allowed")
        for a, b in itertools.pairwise(operands):
            if _is_field(a) == _is_field(b):
                raise SpecError(
                    f"--where {text!r}: compare a field with a value, got "
                    f"{ast.unparse(a)!r} and {ast.unparse(b)!r}"
                )
            field_of(a if _is_field(a) else b, text)
            _literal(b if _is_field(a) else a, text)
    else:
        raise SpecError(
            f"--where {text!r}: {ast.unparse(node)!r} is not a comparison; write conditions "
            "like `roc_auc > 0.85`, joined with and / or / not"
        )


def _is_field(node: ast.expr) -> bool:
    return isinstance(node, ast.Attribute) or (
        isinstance(node, ast.Name) and node.id.lower() not in _WORDS
    )


def matches(node: ast.expr, run: RunRecord, text: str) -> bool:
    """Whether `run` satisfies the checked tree; a missing value never matches."""
    if isinstance(node, ast.BoolOp):
        results = (matches(value, run, text) for value in node.values)
        return all(results) if isinstance(node.op, ast.And) else any(results)
    if isinstance(node, ast.UnaryOp):
        return not matches(node.operand, run, text)
    assert isinstance(node, ast.Compare)  # _check allowed nothing else
    operands = [node.left, *node.comparators]
    for op, (a, b) in zip(node.ops, itertools.pairwise(operands), strict=True):
        left, right = (_value(a, run, text), _value(b, run, text))
        if (left is None or right is None) and type(op) not in (ast.Eq, ast.NotEq):
            return False
        try:
            if not _COMPARE[type(op)](left, right):
                return False
        except TypeError:
            return False
    return True


def _value(node: ast.expr, run: RunRecord, text: str) -> Any:
    if _is_field(node):
        return field_of(node, text).read(run)
    return _literal(node, text)


def sort_key(text: str) -> tuple[bool, Field]:
    """``-roc_auc`` -> (descending, field); the same names as the filter."""
    descending = text.startswith("-")
    name = text.lstrip("+-").strip()
    try:
        tree = ast.parse(name, mode="eval").body
    except SyntaxError:
        raise SpecError(f"--sort {text!r}: give a field such as -roc_auc or started_at") from None
    return descending, field_of(tree, f"--sort {text}")
