"""``mlprod.Client``: call a running mlprod server from Python.

Error answers come back as the same mlprod errors the server raised (a 422 is a
`SchemaError` with its `fields`, a 404 a `NotFoundError`, ...), so callers handle one
error tree whether they score in process or over HTTP. A version asked for by number that
the server is still loading is asked again after the server's Retry-After.

Example::

    client = mlprod.Client("http://127.0.0.1:8000", token="mlp_...", model="churn")
    client.predict([{"tenure_months": 3, "plan": "basic", ...}])
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any, Self

import httpx

from mlprod import errors

_BY_CODE: dict[str, type[errors.MlprodError]] = {
    cls.code: cls
    for cls in (
        errors.SpecError, errors.DataError, errors.SchemaError, errors.NotFoundError,
        errors.ConflictError, errors.GateFailedError, errors.IntegrityError, errors.StoreError,
        errors.TrainingError, errors.UnauthorizedError, errors.ForbiddenError,
        errors.LoadingError, errors.SpoolFullError, errors.OnlineStoreError,
    )
}  # fmt: skip
RETRY_AFTER_MAX = 5.0  # seconds one "loading" answer may make the client wait


class Client:
    """A small, typed client for the REST API; reuse one for many calls (keep-alive)."""

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        model: str | None = None,
        timeout: float = 10.0,
    ) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.model = model
        self.timeout = timeout
        self._http = httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=timeout)

    def predict(
        self,
        records: Sequence[Mapping[str, Any]] | Mapping[str, Any] | Any,
        *,
        model: str | None = None,
        version: int | None = None,
    ) -> list[dict[str, Any]]:
        """Score records (a list of dicts, one dict, or a pandas DataFrame).

        Returns one ``{"id", "version", "score", "label"}`` per record, in order; a
        multiclass model's also carry ``"probabilities"`` (every class's, keyed by the
        class as a string), its score being the probability of the predicted class.
        """
        name = model or self.model or self._only_model()
        path = (
            f"/v1/models/{name}/predict"
            if version is None
            else f"/v1/models/{name}/versions/{version}/predict"
        )
        answer = self._call("POST", path, json={"records": _as_records(records)})
        predictions: list[dict[str, Any]] = answer["predictions"]
        return predictions

    def models(self) -> list[dict[str, Any]]:
        """What the server serves: names, versions, routes, fields."""
        listed: list[dict[str, Any]] = self._call("GET", "/v1/models")["models"]
        return listed

    def ready(self) -> bool:
        """True when the server has every routed version loaded."""
        try:
            return self._http.get("/readyz").status_code == 200
        except httpx.TransportError:
            return False

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _only_model(self) -> str:
        names = [m["name"] for m in self.models()]
        if len(names) != 1:
            raise errors.SpecError(f"the server serves {names or 'no models'}; pass model=NAME")
        return str(names[0])

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        """One call; a version still loading (503 ``loading``, nothing scored) is asked
        again after its Retry-After, until the client's timeout has passed."""
        deadline = time.monotonic() + self.timeout
        while True:
            response = self._request(method, path, **kwargs)
            if response.is_success:
                return response.json()
            error = _error_from(response)
            wait = _retry_after(response)
            if not isinstance(error, errors.LoadingError) or time.monotonic() + wait > deadline:
                raise error
            time.sleep(wait)

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise errors.UnavailableError(
                f"cannot reach the server at {self._http.base_url}: {exc}; "
                "is `mlprod serve` running?"
            ) from None


def _retry_after(response: httpx.Response) -> float:
    """The server's Retry-After in seconds, kept between 0.1 and `RETRY_AFTER_MAX`."""
    try:
        seconds = float(response.headers.get("retry-after", "1"))
    except ValueError:
        return 1.0
    return min(max(seconds, 0.1), RETRY_AFTER_MAX) if math.isfinite(seconds) else 1.0


def _error_from(response: httpx.Response) -> errors.MlprodError:
    try:
        body = response.json()["error"]
        code, message = str(body["code"]), str(body["message"])
    except (ValueError, KeyError, TypeError):
        return errors.MlprodError(f"HTTP {response.status_code}: {response.text[:200]}")
    cls = _BY_CODE.get(code, errors.MlprodError)
    if cls is errors.SchemaError:
        return errors.SchemaError(message, fields=body.get("fields"))
    error = cls(message)
    if cls is errors.MlprodError:
        error.status, error.code = response.status_code, code
    return error


def _as_records(records: Any) -> list[dict[str, Any]]:
    if hasattr(records, "to_dict") and hasattr(records, "columns"):
        records = records.to_dict("records")
    if isinstance(records, Mapping):
        records = [records]
    return [{str(k): _plain(v) for k, v in record.items()} for record in records]


def _plain(value: Any) -> Any:
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
