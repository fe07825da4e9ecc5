"""Settings read from the environment (prefix ``MLPROD_``) at the edge, then passed down.

An explicit argument (``--store`` on the CLI, ``store=`` in Python) always beats the
environment variable; the environment beats the default.
"""

from __future__ import annotations

import getpass
import ipaddress
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_STORE = ".mlprod"


def login_name() -> str:
    """The operating system's name for whoever runs this process."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


LOCAL_NAMES = ("localhost", "127.0.0.1", "::1")


def is_loopback(host: str) -> bool:
    """Whether binding `host` keeps a server reachable from this machine only."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:
        return False


class Settings(BaseSettings):
    """Where the store lives and how the server listens.

    Example::

        Settings()                                  # .mlprod/ in the working directory
        Settings(store="postgresql+psycopg://db/mlprod", artifacts="/shared/artifacts")
    """

    model_config = SettingsConfigDict(env_prefix="MLPROD_", extra="ignore")

    store: str = Field(
        default=DEFAULT_STORE,
        description="A folder (SQLite file and artifacts inside) or a SQLAlchemy URL.",
    )
    artifacts: str | None = Field(
        default=None,
        description="Folder for bundles, or a redis:// URL to keep them in Redis; defaults "
        "to <store folder>/artifacts, or .mlprod/artifacts when the store is a database URL.",
    )
    artifacts_cache: str | None = Field(
        default=None,
        description="Local folder for bundles fetched from Redis (default <store>/bundles).",
    )
    user: str = Field(
        default_factory=login_name,
        min_length=1,
        description="Who acts: recorded with runs, alias moves, deployments and tokens.",
    )
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = Field(default=1, ge=1, description="Server processes sharing the port.")

    # serving: limits that keep a busy server answering instead of falling over
    predict_open: bool | None = Field(
        default=None,
        description="Allow predictions without a token; unset: only on a loopback bind "
        "(admin always needs one).",
    )
    outcomes_open: bool | None = Field(
        default=None,
        description="Allow posting outcomes without a token; unset: only on a loopback bind.",
    )
    allowed_hosts: str | None = Field(
        default=None,
        description="Comma-separated names the server answers to in the Host header "
        "(*.example.com for subdomains, * for any); unset: the bind address and localhost.",
    )
    max_body_bytes: int = Field(default=2 * 1024 * 1024, gt=0, description="Larger bodies get 413.")
    max_records: int = Field(default=10_000, gt=0, description="Records per request.")
    request_timeout: float = Field(default=2.0, gt=0, description="Seconds before a 504.")
    write_timeout: float = Field(
        default=30.0, gt=0, description="Seconds before a 504 on bulk writes (outcomes)."
    )
    max_concurrency: int = Field(default=64, gt=0, description="In-flight requests at most.")
    queue_timeout: float = Field(
        default=1.0,
        ge=0,
        description="Seconds a request beyond the concurrency limit waits for a slot before "
        "503 (0: refuse at once).",
    )
    grace_period: float = Field(default=10.0, ge=0, description="Seconds to drain on SIGTERM.")
    poll_interval: float = Field(default=0.5, gt=0, description="Seconds between registry polls.")

    # prediction log: local spool first, then batched inserts into the store
    spool: str | None = Field(default=None, description="Spool folder (default <store>/spool).")
    spool_max_bytes: int = Field(default=256 * 1024 * 1024, gt=0)
    spool_full: Literal["shed", "drop"] = Field(
        default="shed", description="When the spool is full: answer 503 (shed) or drop and count."
    )
    log_sample_rate: float = Field(
        default=1.0, ge=0, le=1, description="Share of predictions logged."
    )

    # compiled trees: LightGBM forests as native code, swapped in once verified
    compile_trees: bool = Field(
        default=True,
        description="Compile LightGBM trees in the background (needs the 'compiled' extra).",
    )
    compiled: str | None = Field(
        default=None, description="Folder of compiled trees (default <store>/compiled)."
    )

    # monitoring: live statistics per window, outcome matching, alerts
    monitor: bool = Field(default=True, description="Count live statistics per time window.")
    monitor_bucket: int = Field(
        default=60, ge=1, description="Seconds per live-statistics window (keep one per store)."
    )
    monitor_flush: float = Field(
        default=1.0, gt=0, description="Seconds between merges of live statistics."
    )
    monitor_interval: float = Field(
        default=60.0, gt=0, description="Seconds between alert checks in a running server."
    )
    webhook: str | None = Field(default=None, description="Alert webhook; beats the spec's.")
    ui: bool = Field(default=False, description="Mount the dashboard under /ui of mlprod serve.")
    ui_open: bool = Field(
        default=True, description="Let anyone read the dashboard (admin actions need a token)."
    )
    webhook_allow_private: bool = Field(
        default=False, description="Let webhooks reach loopback and private addresses."
    )
    # features: the online store (Redis) and the datamart cache
    online: str | None = Field(
        default=None, description="Redis URL of the online feature store (aggregates)."
    )
    online_timeout: float = Field(
        default=0.02, gt=0, description="Seconds a feature lookup may take before it fails."
    )
    online_connections: int = Field(
        default=16, ge=1, description="Redis connections per server process for lookups."
    )
    redis_prefix: str = Field(
        default="mlprod", min_length=1, description="Prefix of every key mlprod keeps in Redis."
    )
    cache: str | None = Field(
        default=None, description="Redis URL of the datamart: cached sources train reads."
    )
    cache_ttl: int = Field(default=3600, gt=0, description="Seconds a cached source stays.")
    # the closed loop: `mlprod scheduler`
    scheduler_tick: float = Field(
        default=30.0, gt=0, description="Seconds between the scheduler's looks at what is due."
    )
    scheduler_lease: float = Field(
        default=60.0, gt=0, description="Seconds a dead scheduler holds its runs before takeover."
    )
    scheduler_workers: int = Field(
        default=2, ge=0, description="Jobs run at once per scheduler (0: one at a time, inline)."
    )
    # tuning: workers beat every `tune_heartbeat` seconds; silent for 3 beats means dead
    tune_heartbeat: int = Field(
        default=10, ge=1, le=600, description="Seconds between tuning workers' heartbeats."
    )

    def opens(self, scope: Literal["predict", "outcomes"]) -> bool:
        """Whether `scope`'s routes answer without a token: as set, else only on loopback.

        A server bound to a loopback address is reachable from this host only, so open
        routes there are a convenience; on any other address they are an exposure.
        """
        if scope == "predict":
            return is_loopback(self.host) if self.predict_open is None else self.predict_open
        if self.outcomes_open is not None:
            return self.outcomes_open
        # outcomes used to share predict's scope: closing predictions still closes them
        return is_loopback(self.host) and self.predict_open is not False

    def host_names(self) -> frozenset[str] | None:
        """Names a request's Host header may carry (lower case, no port); None: any."""
        if self.allowed_hosts:
            names = {name.strip().lower() for name in self.allowed_hosts.split(",")}
            names.discard("")
            return None if "*" in names else frozenset(names)
        return frozenset({self.host.strip("[]").lower(), *LOCAL_NAMES})

    def store_url(self) -> str:
        """The SQLAlchemy URL of the metadata store."""
        if "://" in self.store:
            return self.store
        folder = Path(self.store).expanduser().resolve()
        return f"sqlite:///{folder / 'mlprod.db'}"

    def spool_dir(self) -> Path:
        """The folder of the prediction log's local spool."""
        if self.spool:
            return Path(self.spool).expanduser().resolve()
        base = DEFAULT_STORE if "://" in self.store else self.store
        return (Path(base).expanduser() / "spool").resolve()

    def compiled_dir(self) -> Path:
        """The folder that caches compiled trees (object code for this host's CPU)."""
        if self.compiled:
            return Path(self.compiled).expanduser().resolve()
        base = DEFAULT_STORE if "://" in self.store else self.store
        return (Path(base).expanduser() / "compiled").resolve()

    def artifacts_dir(self) -> Path:
        """The folder that holds model bundles (with Redis artifacts: the local copies)."""
        if self.artifacts and "://" in self.artifacts:
            if self.artifacts_cache:
                return Path(self.artifacts_cache).expanduser().resolve()
            base = DEFAULT_STORE if "://" in self.store else self.store
            return (Path(base).expanduser() / "bundles").resolve()
        if self.artifacts:
            return Path(self.artifacts).expanduser().resolve()
        base = DEFAULT_STORE if "://" in self.store else self.store
        return (Path(base).expanduser() / "artifacts").resolve()
