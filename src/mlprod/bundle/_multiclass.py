"""Where a multiclass version is refused, clearly, until that part of mlprod handles it.

Training, evaluation, gates, the registry, `Model`, serving, batch scoring and the
retraining comparison handle k > 2 classes. `require_binary` stays for any part (or
plugin) that assumes one positive class: it refuses such a version with a
`NotSupportedError` rather than misreading its n x k probabilities.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mlprod.errors import NotSupportedError


def require_binary(classes: Sequence[Any], what: str, where: str) -> None:
    """NotSupportedError when `what` (e.g. ``tiers@3``) has more than two classes.

    `where` names the refusing part (``serving``, ``batch scoring``, ...).

    >>> require_binary(["no", "yes"], "churn@1", "batch scoring")
    """
    if len(classes) <= 2:
        return
    shown = ", ".join(str(c) for c in list(classes)[:10])
    raise NotSupportedError(
        f"{where} does not support multiclass versions yet: {what} has {len(classes)} classes "
        f"({shown}). Score it with the library instead: mlprod.load({what!r}).predict_proba"
    )
