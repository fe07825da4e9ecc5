"""Loading and promoting versions: the library-level counterparts of the CLI."""

from __future__ import annotations

from mlprod.bundle import Model
from mlprod.pipelines._context import open_store
from mlprod.registry import AuditRecord, open_version, resolve, set_alias
from mlprod.settings import Settings


def load(
    ref: str, *, store: str | None = None, settings: Settings | None = None, fast: bool = True
) -> Model:
    """Load a verified model by reference: ``churn``, ``churn@production`` or ``churn@3``.

    With `fast` (the default) the model is prepared as a server prepares it: the fast path
    is compiled and checked against the full pipeline (to 1e-9, on the version's test
    set), and compiled trees a server or batch job left in the store's cache take over the
    booster after the same check. ``model.path`` says which path scores.

    Example::

        model = mlprod.load("churn@production")
        model.predict_proba(frame)
    """
    settings = settings or Settings()
    if store is not None:
        settings = settings.model_copy(update={"store": store})
    meta, artifacts = open_store(settings=settings)
    with meta:
        record = resolve(meta, ref)
    model = open_version(artifacts, record)
    if fast:
        model.prepare(compiled=settings.compiled_dir())
    return model


def promote(
    model: str,
    version: int,
    alias: str = "production",
    *,
    force: bool = False,
    reason: str | None = None,
    actor: str | None = None,
    store: str | None = None,
    settings: Settings | None = None,
) -> AuditRecord:
    """Point `alias` at a version whose gates passed and that serves; every move is audited.

    A version whose gates failed moves only with ``force=True`` and a `reason`, which the
    audit log keeps. A version whose bundle does not load, verify and score is refused
    (BrokenVersionError), forced or not. `actor` defaults to ``Settings.user``
    (``MLPROD_USER``, else the login).
    """
    settings = settings or Settings()
    meta, artifacts = open_store(store, settings)
    with meta:
        return set_alias(
            meta,
            model,
            alias,
            version,
            artifacts=artifacts,
            actor=actor or settings.user,
            force=force,
            reason=reason,
        )
