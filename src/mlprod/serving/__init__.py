"""Online serving: the REST app, signature validation, the model pool."""

from mlprod.serving._app import create_app
from mlprod.serving._pool import ModelPool
from mlprod.serving._scoring import score_records
from mlprod.serving._validate import records_to_frame

__all__ = ["ModelPool", "create_app", "records_to_frame", "score_records"]
