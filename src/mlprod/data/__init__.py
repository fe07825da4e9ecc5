"""Data: read the source a spec names, fingerprint it, and split it without leakage."""

from mlprod.data._fingerprint import ColumnInfo, DataFingerprint, fingerprint
from mlprod.data._profile import profile_frame
from mlprod.data._sources import load_frame, parse_times, require_columns, safe_url
from mlprod.data._spark import jdbc_options, spark_available, spark_session
from mlprod.data._split import Split, make_split
from mlprod.data._synthetic import make_churn_table

__all__ = [
    "ColumnInfo",
    "DataFingerprint",
    "Split",
    "fingerprint",
    "jdbc_options",
    "load_frame",
    "make_churn_table",
    "make_split",
    "parse_times",
    "profile_frame",
    "require_columns",
    "safe_url",
    "spark_available",
    "spark_session",
]
