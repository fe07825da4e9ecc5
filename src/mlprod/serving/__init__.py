"""Online serving: the REST app, its model pool and routes, tokens, limits and workers.

Example::

    app = create_app(Settings(store="demo/.mlprod"))      # models load at start-up
    run_server(app, Settings())                           # or `mlprod serve`

Each name loads its module on first use: the app brings FastAPI and uvicorn, while the
command line's token commands and `models show`'s fast-path check need neither.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlprod.records import FastPathCheck, check_fast_path, records_to_frame
    from mlprod.serving._app import create_app
    from mlprod.serving._auth import Authenticator
    from mlprod.serving._crashes import CrashLog
    from mlprod.serving._guard import GuardState, run_server
    from mlprod.serving._hosts import HostCheck
    from mlprod.serving._loaded import LoadedVersion
    from mlprod.serving._openapi import interface_document
    from mlprod.serving._pool import ModelPool
    from mlprod.serving._scoring import score_records
    from mlprod.serving._tokens import (
        TokenRecord,
        create_token,
        list_tokens,
        revoke_token,
        verify_token,
    )
    from mlprod.serving._workers import run_workers

_LAZY = {
    "Authenticator": "mlprod.serving._auth",
    "CrashLog": "mlprod.serving._crashes",
    "FastPathCheck": "mlprod.records",
    "GuardState": "mlprod.serving._guard",
    "HostCheck": "mlprod.serving._hosts",
    "LoadedVersion": "mlprod.serving._loaded",
    "ModelPool": "mlprod.serving._pool",
    "TokenRecord": "mlprod.serving._tokens",
    "check_fast_path": "mlprod.records",
    "create_app": "mlprod.serving._app",
    "create_token": "mlprod.serving._tokens",
    "interface_document": "mlprod.serving._openapi",
    "list_tokens": "mlprod.serving._tokens",
    "records_to_frame": "mlprod.records",
    "revoke_token": "mlprod.serving._tokens",
    "run_server": "mlprod.serving._guard",
    "run_workers": "mlprod.serving._workers",
    "score_records": "mlprod.serving._scoring",
    "verify_token": "mlprod.serving._tokens",
}

__all__ = [
    "Authenticator",
    "CrashLog",
    "FastPathCheck",
    "GuardState",
    "HostCheck",
    "LoadedVersion",
    "ModelPool",
    "TokenRecord",
    "check_fast_path",
    "create_app",
    "create_token",
    "interface_document",
    "list_tokens",
    "records_to_frame",
    "revoke_token",
    "run_server",
    "run_workers",
    "score_records",
    "verify_token",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'mlprod.serving' has no attribute {name!r}")
