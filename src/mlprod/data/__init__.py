"""Data: read the source a spec names (or its datamart copy), fingerprint it, split it."""

from mlprod.data._cache import CacheEntry, DataCache, read_source
from mlprod.data._fingerprint import ColumnInfo, DataFingerprint, fingerprint
from mlprod.data._profile import profile_frame
from mlprod.data._sources import as_sql, load_frame, parse_times, require_columns, safe_url
from mlprod.data._spark import jdbc_options, spark_available, spark_session
from mlprod.data._split import Split, make_split
from mlprod.data._synthetic import make_churn_table, make_regime_table

__all__ = [
    "CacheEntry",
    "ColumnInfo",
    "DataCache",
    "DataFingerprint",
    "Split",
    "as_sql",
    "fingerprint",
    "jdbc_options",
    "load_frame",
    "make_churn_table",
    "make_regime_table",
    "make_split",
    "parse_times",
    "profile_frame",
    "read_source",
    "require_columns",
    "safe_url",
    "spark_available",
    "spark_session",
]
