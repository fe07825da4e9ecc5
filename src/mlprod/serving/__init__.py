"""Online serving: the REST app, its model pool and routes, tokens, limits and workers.

Example::

    app = create_app(Settings(store="demo/.mlprod"))      # models load at start-up
    run_server(app, Settings())                           # or `mlprod serve`
"""

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
