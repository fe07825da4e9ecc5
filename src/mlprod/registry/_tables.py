"""The metadata store's database layer: schema (SQLAlchemy Core), engines and migrations.

The tables here describe the schema the code expects; the Alembic scripts in
``migrations/versions`` create it. A test compares the two on SQLite and PostgreSQL, so
they cannot drift apart silently.
"""

from __future__ import annotations

import functools
import json
import math
import re
from datetime import UTC, date, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection, Dialect, Engine
from sqlalchemy.pool import StaticPool

from mlprod.errors import StoreError

HINT = "Check --store or MLPROD_STORE (a folder, or a URL such as postgresql+psycopg://host/db)."
NAME = sa.String(63)
MIGRATION_LOCK = 0x6D6C70726F64  # "mlprod" in ASCII: the advisory lock key for migrations


class UTCDateTime(sa.TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite returns naive values)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"refusing a naive datetime {value!r}: the store keeps UTC times")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else as_utc(value)


def as_utc(when: datetime) -> datetime:
    """`when` in UTC; a naive time is UTC already (the store's rule)."""
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


@functools.lru_cache(maxsize=65_536)
def parse_utc(text: str) -> datetime:
    """An ISO time as UTC; cached, since logged rows and live windows repeat few times."""
    return as_utc(datetime.fromisoformat(text))


metadata = sa.MetaData()

models = sa.Table(
    "models",
    metadata,
    sa.Column("name", NAME, primary_key=True),
    sa.Column("created_at", UTCDateTime(), nullable=False),
)

runs = sa.Table(
    "runs",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("model", NAME, sa.ForeignKey("models.name"), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("user_name", sa.Text(), nullable=False),
    sa.Column("started_at", UTCDateTime(), nullable=False),
    sa.Column("ended_at", UTCDateTime(), nullable=True),
    sa.Column("spec", sa.JSON(), nullable=False),
    sa.Column("params", sa.JSON(), nullable=False),
    sa.Column("metrics", sa.JSON(), nullable=False),
    sa.Column("fingerprint", sa.JSON(), nullable=False),
    sa.Column("candidates", sa.JSON(), nullable=False),
    sa.Column("git_commit", sa.Text(), nullable=True),
    sa.Column("library_versions", sa.JSON(), nullable=False),
    sa.Column("parent_run_id", sa.String(32), sa.ForeignKey("runs.id"), nullable=True),
    sa.Column("version", sa.Integer(), nullable=True),
    sa.Column("error", sa.Text(), nullable=True),
    sa.Index("ix_runs_model_started_at", "model", "started_at"),
)

versions = sa.Table(
    "versions",
    metadata,
    sa.Column("model", NAME, sa.ForeignKey("models.name"), primary_key=True),
    sa.Column("version", sa.Integer(), primary_key=True, autoincrement=False),
    sa.Column("run_id", sa.String(32), sa.ForeignKey("runs.id"), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("bundle_id", sa.Text(), nullable=False),
    sa.Column("flavor", sa.Text(), nullable=False),
    sa.Column("metrics", sa.JSON(), nullable=False),
    sa.Column("gates", sa.JSON(), nullable=False),
    sa.Column("gates_passed", sa.Boolean(), nullable=False),
    sa.Column("signature", sa.JSON(), nullable=False),
    sa.Column("threshold", sa.Float(), nullable=False),
)

aliases = sa.Table(
    "aliases",
    metadata,
    sa.Column("model", NAME, primary_key=True),
    sa.Column("alias", NAME, primary_key=True),
    sa.Column("version", sa.Integer(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(["model", "version"], ["versions.model", "versions.version"]),
)

audit = sa.Table(
    "audit",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
    sa.Column("at", UTCDateTime(), nullable=False),
    sa.Column("actor", sa.Text(), nullable=False),
    sa.Column("action", sa.Text(), nullable=False),
    sa.Column("model", NAME, nullable=False),
    sa.Column("alias", NAME, nullable=True),
    sa.Column("from_version", sa.Integer(), nullable=True),
    sa.Column("to_version", sa.Integer(), nullable=True),
    sa.Column("reason", sa.Text(), nullable=True),
    sa.Index("ix_audit_model_id", "model", "id"),
)

# --- serving (revision 0002): deployments, the prediction log, API tokens

deployments = sa.Table(
    "deployments",
    metadata,
    sa.Column("model", NAME, primary_key=True),
    sa.Column("routes", sa.JSON(), nullable=False),  # [{"version": 3, "weight": 90}, ...]
    sa.Column("shadows", sa.JSON(), nullable=False),  # [5, ...]
    sa.Column("log_sample_rate", sa.Float(), nullable=True),  # 0003; None: the server's default
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.Column("updated_by", sa.Text(), nullable=False),
)

predictions = sa.Table(
    "predictions",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("model", NAME, nullable=False),
    sa.Column("version", sa.Integer(), nullable=False),
    sa.Column("at", UTCDateTime(), nullable=False),
    sa.Column("record", sa.JSON(), nullable=False),
    sa.Column("score", sa.Float(), nullable=True),
    sa.Column("label", sa.JSON(), nullable=True),
    sa.Column("latency_ms", sa.Float(), nullable=False),
    sa.Column("entity", sa.Text(), nullable=True),
    sa.Column("shadow_of", sa.String(32), nullable=True),  # the answered prediction's id
    sa.Column("labelled", sa.Boolean(), nullable=True),  # 0004: its outcome was counted
    sa.Index("ix_predictions_model_at", "model", "at"),
    sa.Index("ix_predictions_entity", "model", "entity", "at"),  # 0004: outcomes by entity
    sa.Index(  # 0004: outcomes reach shadows too; only shadow rows are indexed
        "ix_predictions_shadow_of",
        "shadow_of",
        sqlite_where=sa.text("shadow_of IS NOT NULL"),
        postgresql_where=sa.text("shadow_of IS NOT NULL"),
    ),
)

tokens = sa.Table(
    "tokens",
    metadata,
    sa.Column("id", sa.String(16), primary_key=True),
    sa.Column("name", sa.Text(), nullable=False),
    sa.Column("secret_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("scopes", sa.JSON(), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("created_by", sa.Text(), nullable=False),
    sa.Column("revoked_at", UTCDateTime(), nullable=True),
)

# --- experiments (revision 0005): tuning trials and training curves

trials = sa.Table(
    "trials",
    metadata,
    sa.Column("run_id", sa.String(32), sa.ForeignKey("runs.id"), primary_key=True),
    sa.Column("candidate", sa.String(100), primary_key=True),
    sa.Column("number", sa.Integer(), primary_key=True, autoincrement=False),
    sa.Column("state", sa.String(16), nullable=False),  # complete, pruned, fail, running
    sa.Column("value", sa.Float(), nullable=True),
    sa.Column("params", sa.JSON(), nullable=False),
    sa.Column("fold_scores", sa.JSON(), nullable=False),
    sa.Column("attrs", sa.JSON(), nullable=False),  # best_iteration, error, retry_of
    sa.Column("started_at", UTCDateTime(), nullable=True),
    sa.Column("finished_at", UTCDateTime(), nullable=True),
    sa.Column("seconds", sa.Float(), nullable=True),
)

curves = sa.Table(
    "curves",
    metadata,
    sa.Column("run_id", sa.String(32), sa.ForeignKey("runs.id"), primary_key=True),
    sa.Column("candidate", sa.String(100), primary_key=True),
    sa.Column("curve", sa.JSON(), nullable=False),  # x, loss, metric and their names
)


# --- monitoring (revision 0004): additive live statistics per window, outcomes, alerts

COUNT = sa.BigInteger()
ROW_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # SQLite autoincrements INTEGER

window_stats = sa.Table(
    "window_stats",
    metadata,
    sa.Column("model", NAME, primary_key=True),
    sa.Column("version", sa.Integer(), primary_key=True),
    sa.Column("window_start", UTCDateTime(), primary_key=True),
    sa.Column("predictions", COUNT, nullable=False),
    sa.Column("predicted_positive", COUNT, nullable=False),
    sa.Column("est_tp", sa.Float(), nullable=False),  # sum of calibrated P(+) where label is +
    sa.Column("est_positive", sa.Float(), nullable=False),  # sum of calibrated P(+)
    sa.Column("score_hist", sa.JSON(), nullable=False),  # scores in equal-width bins
    sa.Column("labelled", COUNT, nullable=False),  # predictions joined to an outcome
    sa.Column("tp", COUNT, nullable=False),
    sa.Column("fp", COUNT, nullable=False),
    sa.Column("fn", COUNT, nullable=False),
    sa.Column("tn", COUNT, nullable=False),
    sa.Column("pos_hist", sa.JSON(), nullable=False),  # scores of observed positives
    sa.Column("neg_hist", sa.JSON(), nullable=False),  # scores of observed negatives
    sa.Index("ix_window_stats_model_window", "model", "window_start"),
)

feature_counts = sa.Table(
    "feature_counts",
    metadata,
    sa.Column("model", NAME, primary_key=True),
    sa.Column("version", sa.Integer(), primary_key=True),
    sa.Column("feature", sa.String(255), primary_key=True),
    sa.Column("window_start", UTCDateTime(), primary_key=True),
    sa.Column("counts", sa.JSON(), nullable=False),  # in the version's reference bins
    sa.Column("total", COUNT, nullable=False),
    sa.Index("ix_feature_counts_model_window", "model", "window_start"),
)

request_errors = sa.Table(
    "request_errors",
    metadata,
    sa.Column("model", NAME, primary_key=True),
    sa.Column("window_start", UTCDateTime(), primary_key=True),
    sa.Column("code", sa.String(32), primary_key=True),
    sa.Column("count", COUNT, nullable=False),
)

outcomes = sa.Table(
    "outcomes",
    metadata,
    sa.Column("id", ROW_ID, primary_key=True, autoincrement=True),
    sa.Column("model", NAME, nullable=True),
    sa.Column("prediction_id", sa.String(32), nullable=True),
    sa.Column("entity", sa.Text(), nullable=True),
    sa.Column("event_time", UTCDateTime(), nullable=True),
    sa.Column("label", sa.JSON(), nullable=False),
    sa.Column("received_at", UTCDateTime(), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # pending, matched, invalid, duplicate
    sa.Column("matched_id", sa.String(32), nullable=True),
    sa.Column("version", sa.Integer(), nullable=True),
    sa.Column("note", sa.Text(), nullable=True),
    sa.UniqueConstraint("prediction_id", name="uq_outcomes_prediction"),
    sa.UniqueConstraint("model", "entity", "event_time", name="uq_outcomes_entity_time"),
    sa.Index("ix_outcomes_status_id", "status", "id"),
    sa.Index("ix_outcomes_received_at", "received_at"),
)

alerts = sa.Table(
    "alerts",
    metadata,
    sa.Column("id", ROW_ID, primary_key=True, autoincrement=True),
    sa.Column("model", NAME, nullable=False),
    sa.Column("version", sa.Integer(), nullable=True),
    sa.Column("kind", sa.String(16), nullable=False),  # drift, performance, errors
    sa.Column("subject", sa.Text(), nullable=False),  # the feature or metric
    sa.Column("open_key", sa.Text(), nullable=True),  # unique while open: one incident, one row
    sa.Column("opened_at", UTCDateTime(), nullable=False),
    sa.Column("last_seen_at", UTCDateTime(), nullable=False),
    sa.Column("closed_at", UTCDateTime(), nullable=True),
    sa.Column("message", sa.Text(), nullable=False),
    sa.Column("details", sa.JSON(), nullable=False),
    sa.UniqueConstraint("open_key", name="uq_alerts_open_key"),
    sa.Index("ix_alerts_model_opened", "model", "opened_at"),
)


def json_dumps(value: Any) -> str:
    """JSON for the store: NaN and infinities become null, as pydantic's JSON mode does.

    PostgreSQL refuses NaN in JSON and SQLite would store invalid JSON, so one rule for both
    keeps the backends identical (a metric that is undefined reads back as None). orjson
    does that natively and fast (the prediction log serializes every record); the standard
    library takes over for what orjson refuses, such as integers beyond 64 bits.
    """
    try:
        return orjson.dumps(value, default=_plain, option=_ORJSON).decode()
    except orjson.JSONEncodeError:
        return json.dumps(_finite(value), allow_nan=False, default=_plain, separators=(",", ":"))


_ORJSON = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


def plain_json(value: Any) -> Any:
    """`value` as the store will hand it back: plain JSON types, non-finite floats as None.

    Raises TypeError before any transaction starts when something cannot be stored.
    """
    return json.loads(json_dumps(value))


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value


def _plain(value: Any) -> Any:
    """numpy scalars and arrays, dates and paths: the values training code hands us."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    for method in ("tolist", "item"):
        convert = getattr(value, method, None)
        if callable(convert):
            return _finite(convert())
    raise TypeError(f"cannot store {type(value).__name__} as JSON: convert it to plain data")


# --- engines: one per Store, tuned per backend


def create_engine(url: str) -> Engine:
    """An engine for `url`; SQLite gets WAL, a 30 s busy timeout and foreign keys."""
    try:
        parsed = sa.make_url(url)
    except sa_exc.ArgumentError:
        raise StoreError(f"{hide_password(str(url))!r} is not a database URL. {HINT}") from None
    try:
        if parsed.get_backend_name() == "sqlite":
            return _sqlite_engine(parsed)
        connect_args: dict[str, Any] = {}
        if parsed.get_backend_name() == "postgresql" and "connect_timeout" not in parsed.query:
            connect_args["connect_timeout"] = 10
        return sa.create_engine(
            parsed, pool_pre_ping=True, json_serializer=json_dumps, connect_args=connect_args
        )
    except (sa_exc.ArgumentError, ImportError, OSError) as exc:
        detail = scrub(str(exc), parsed.password)
        raise StoreError(f"cannot open the store {hide_password(url)}: {detail}. {HINT}") from None


def _sqlite_engine(url: sa.URL) -> Engine:
    database = url.database or ""
    memory = database in ("", ":memory:") or url.query.get("mode") == "memory"
    if not memory and not url.query.get("uri"):
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    options: dict[str, Any] = {"json_serializer": json_dumps}
    if memory:
        options.update(poolclass=StaticPool, connect_args={"check_same_thread": False})
    else:
        options["connect_args"] = {"timeout": 30}
    engine = sa.create_engine(url, **options)
    event.listen(engine, "connect", _sqlite_connect)
    event.listen(engine, "begin", _sqlite_begin)
    return engine


PRAGMAS = (
    "busy_timeout = 30000",
    "journal_mode = WAL",
    "foreign_keys = ON",
    "synchronous = NORMAL",
    # The prediction log inserts under random keys: index pages must stay in memory (up to
    # 64 MB) and the WAL may reach ~40 MB before a checkpoint copies it back. Together
    # they take a busy log from 37k to 52k rows/s.
    "cache_size = -65536",
    "wal_autocheckpoint = 10000",
)


def _sqlite_connect(dbapi_connection: Any, record: Any) -> None:
    """Let SQLAlchemy, not the sqlite3 module, decide when a transaction begins."""
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        for pragma in PRAGMAS:
            cursor.execute(f"PRAGMA {pragma}")
    finally:
        cursor.close()


def _sqlite_begin(conn: Connection) -> None:
    """Writers take the lock up front, so they queue instead of deadlocking on upgrade."""
    immediate = conn.get_execution_options().get("mlprod_write", False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def hide_password(url: str) -> str:
    """`url` with its password replaced by ``***``, safe for messages and logs."""
    try:
        return sa.make_url(url).render_as_string(hide_password=True)
    except sa_exc.ArgumentError:
        return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", str(url))


def scrub(text: str, password: str | None) -> str:
    """`text` without `password`: driver messages may echo connection parameters."""
    return text.replace(password, "***") if password else text


# --- migrations: Alembic, driven from code; users never need an alembic.ini


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic config pointing at the migrations shipped inside the package."""
    config = Config()
    config.set_main_option("script_location", str(_migrations_dir()))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def _migrations_dir() -> Path:
    return Path(str(resources.files("mlprod.registry").joinpath("migrations")))


@functools.cache
def head_revision() -> str:
    """The newest schema revision this code knows."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise RuntimeError(f"no migrations found in {_migrations_dir()}; the install is broken")
    return head


@functools.cache
def known_revisions() -> frozenset[str]:
    """Every revision this code can migrate from."""
    scripts = ScriptDirectory.from_config(alembic_config())
    return frozenset(script.revision for script in scripts.walk_revisions())


def current_revision(connection: Connection) -> str | None:
    """The revision the database is at; None for an empty database."""
    return MigrationContext.configure(connection).get_current_revision()


def upgrade_locked(connection: Connection) -> None:
    """Upgrade to head unless a concurrent opener already did, holding a migration lock.

    PostgreSQL: a transaction-scoped advisory lock. SQLite: the caller's ``BEGIN
    IMMEDIATE`` already holds the database's write lock. Either way the revision is read
    again once the lock is held, so the second of two racing processes does nothing.
    """
    if connection.dialect.name == "postgresql":
        connection.execute(sa.select(sa.func.pg_advisory_xact_lock(MIGRATION_LOCK)))
    if current_revision(connection) != head_revision():
        upgrade(connection)


def upgrade(connection: Connection) -> None:
    """Bring the database on `connection` to head, inside the caller's transaction."""
    command.upgrade(alembic_config(connection), "head")
