"""One error tree for everything mlprod raises on purpose.

Every error says what went wrong, what was found, and what to do about it, and carries
the HTTP status it maps to, so one handler in the server answers them all::

    MlprodError                      500  root; catch this to catch everything mlprod raises
    ├── SpecError(ValueError)        400  mlprod.yaml is missing, unreadable or invalid
    ├── DataError(ValueError)        400  a source cannot be read or has the wrong shape
    ├── SchemaError(ValueError)      422  a record does not match the model's signature
    ├── UnauthorizedError            401  no bearer token, or one that is unknown or revoked
    ├── ForbiddenError               403  the token lacks the scope the route needs
    ├── NotFoundError(LookupError)   404  no such model, version, alias, run or file
    ├── ConflictError                409  the store changed under us (retry) or a name is taken
    ├── GateFailedError              409  a version's acceptance gates failed
    ├── IntegrityError               500  a bundle file does not match its recorded hash
    │   └── BrokenVersionError       409  a version that cannot load and score takes no traffic
    ├── StoreError                   503  the metadata store is unreachable or not migrated
    ├── UnavailableError             503  a server cannot be reached (client side)
    ├── OnlineStoreError             503  the online feature store did not answer in time
    ├── SpoolFullError               503  the prediction log's local spool is at its size cap
    ├── LoadingError                 503  a version asked for by number is still loading
    ├── NotSupportedError            501  a part of mlprod cannot handle this kind of version yet
    └── TrainingError                500  no candidate could be trained
"""

from __future__ import annotations

from typing import ClassVar


class MlprodError(Exception):
    """Root of every error mlprod raises on purpose; `status` is the HTTP status it maps to."""

    status: int = 500
    code: str = "error"

    def __init__(self, message: str, *, detail: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail  # for the server log only: paths and internals stay out of answers

    def __str__(self) -> str:
        return self.message


class SpecError(MlprodError, ValueError):
    """The project spec (mlprod.yaml) is missing, unreadable or invalid."""

    status = 400
    code = "invalid_spec"


class DataError(MlprodError, ValueError):
    """A data source cannot be read, or its columns are not what the spec says."""

    status = 400
    code = "invalid_data"


class SchemaError(MlprodError, ValueError):
    """Records do not match the model's signature; `fields` lists each problem."""

    status = 422
    code = "invalid_input"

    def __init__(self, message: str, fields: list[dict[str, object]] | None = None) -> None:
        super().__init__(message)
        self.fields = fields or []


class NotFoundError(MlprodError, LookupError):
    """No such model, version, alias, run or file."""

    status = 404
    code = "not_found"


class UnauthorizedError(MlprodError):
    """The request carries no valid bearer token; the server answers with WWW-Authenticate."""

    status = 401
    code = "unauthorized"
    headers: ClassVar[dict[str, str]] = {"WWW-Authenticate": 'Bearer realm="mlprod"'}


class ForbiddenError(MlprodError):
    """The token is valid but lacks the scope this route needs (admin, predict)."""

    status = 403
    code = "forbidden"


class ConflictError(MlprodError):
    """The store changed under us, or the name is already taken."""

    status = 409
    code = "conflict"


class GateFailedError(MlprodError):
    """A version's acceptance gates failed, so it may not take that alias."""

    status = 409
    code = "gate_failed"


class IntegrityError(MlprodError):
    """A bundle file does not match the hash recorded when it was registered."""

    status = 500
    code = "integrity"


class BrokenVersionError(IntegrityError):
    """A promotion or deployment refused: the version does not load, verify and score.

    409, not 500: the request asked for something the version's state forbids, like a
    failed gate. Unlike a gate, ``--force`` does not override it: a version that cannot
    load serves nothing.
    """

    status = 409
    code = "broken_version"


class StoreError(MlprodError):
    """The metadata store cannot be reached or used."""

    status = 503
    code = "store_unavailable"


class SpoolFullError(MlprodError):
    """The prediction log's spool holds as many unflushed bytes as it may: shed the request.

    Raised instead of growing without bound (KServe's logger ran out of memory) or losing
    logs silently; the server answers 503 so clients retry once the backlog drains.
    """

    status = 503
    code = "overloaded"
    headers: ClassVar[dict[str, str]] = {"Retry-After": "1"}


class LoadingError(MlprodError):
    """A version asked for by number is still loading (verified and warmed up before it
    answers); the server answers 503 with ``Retry-After`` rather than letting the request
    time out, and the load carries on."""

    status = 503
    code = "loading"
    headers: ClassVar[dict[str, str]] = {"Retry-After": "1"}


class NotSupportedError(MlprodError):
    """A part of mlprod cannot handle this kind of version yet (e.g. a multiclass one on live
    outcomes, for the retraining comparison).

    The message names the part, the version and what does work instead.
    """

    status = 501
    code = "not_supported"


class TrainingError(MlprodError):
    """Training could not produce a model."""

    status = 500
    code = "training_failed"


class OnlineStoreError(MlprodError):
    """The online feature store (Redis) could not answer within the lookup budget.

    The server answers 503 only when the model's spec says so (``on_error: fail``) or
    rejects missing entities; otherwise it follows the missing-entity policy and flags it.
    """

    status = 503
    code = "features_unavailable"
    headers: ClassVar[dict[str, str]] = {"Retry-After": "1"}


class UnavailableError(MlprodError, ConnectionError):
    """A server cannot be reached (raised by `mlprod.Client`)."""

    status = 503
    code = "unavailable"
