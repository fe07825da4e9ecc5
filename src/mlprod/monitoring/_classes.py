"""The classes of a multiclass version, as monitoring reads them.

A multiclass answer is right or wrong, so outcome matching counts right answers as true
positives and wrong ones as false positives (false negatives and true negatives stay 0):
accuracy, its estimate from calibrated top-class probabilities and the confidence
histograms then reuse the binary columns. A class's precision and recall need more, the
k x k confusion matrix (row: observed class, column: predicted class), which matching
adds under the pseudo-feature `CONFUSION` beside the feature counts.

Classes are named as their text (``str``), as the test metrics and gates name them
(``recall[gold]``).

Example::

    class_index("Gold", ["bronze", "gold", "silver"])   # 1
    class_key("recall", "gold")                         # 'recall[gold]'
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from mlprod.records import category_string

PER_CLASS = ("precision", "recall")
PER_CLASS_KEY = re.compile(r"^(precision|recall)\[(.+)\](_low|_high)?$")


def is_multiclass(classes: Sequence[Any]) -> bool:
    """Three or more classes: answers are a class, not a score against a threshold."""
    return len(classes) > 2


def class_names(classes: Sequence[Any]) -> list[str]:
    """Each class as its text, in the version's probability order."""
    return [str(c) for c in classes]


def class_key(metric: str, name: str) -> str:
    """``recall[gold]``: how a per-class figure is keyed in the report and named in a gate."""
    return f"{metric}[{name}]"


def class_index(label: Any, classes: Sequence[Any]) -> int | None:
    """The position of `label` among `classes`, compared as category text; None if none.

    An exact match wins; otherwise case is ignored when that leaves one class, as the
    binary matching does (an outcome ``"Gold"`` names class ``gold``).
    """
    if label is None:
        return None
    text = category_string(label)
    names = [category_string(c) for c in classes]
    if text in names:
        return names.index(text)
    lowered = [name.lower() for name in names]
    if lowered.count(text.lower()) == 1:
        return lowered.index(text.lower())
    return None


def not_a_class_note(label: Any, classes: Sequence[Any]) -> str:
    """Why an outcome was refused: its label is none of the version's classes."""
    shown = ", ".join(repr(c) for c in classes)
    return f"label {label!r} is no class of the model (classes: {shown})"
