"""A Spark session and JDBC options for the engines that run on Spark (batch scoring, training).

pyspark is optional (``pip install 'mlprod[spark]'``). Workers must run this interpreter
(``PYSPARK_PYTHON``), and every JVM keeps UTC, so timestamps cross JDBC unchanged.
PostgreSQL's JDBC driver is taken from Debian's ``libpostgresql-jdbc-java`` when present;
on a cluster, ship it as clusters do (``spark.jars`` in spark-defaults).

Example::

    spark = spark_session("local[2]")
    spark.read.format("jdbc").options(**jdbc_options(url)).option("query", q).load()
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from pathlib import Path
from typing import Any

from sqlalchemy import make_url

from mlprod.errors import MlprodError

DEBIAN_POSTGRESQL_JAR = Path("/usr/share/java/postgresql.jar")


def spark_available() -> str | None:
    """None when Spark can run here, else why not (no pyspark, no Java)."""
    if importlib.util.find_spec("pyspark") is None:
        return "pyspark is not installed (pip install 'mlprod[spark]')"
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        return "Java is not installed (Spark needs a JVM: apt-get install openjdk-17-jre-headless)"
    return None


def spark_session(master: str | None = None, app: str = "mlprod") -> Any:
    """A Spark session on `master` (default ``local[*]``), reusing one already running."""
    missing = spark_available()
    if missing is not None:
        raise MlprodError(f"the Spark engine cannot start: {missing}")
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    master = master or "local[*]"
    if master.startswith("local"):
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    from pyspark.sql import SparkSession

    utc = "-Duser.timezone=UTC"
    builder = (
        SparkSession.builder.master(master)
        .appName(app)
        .config("spark.ui.enabled", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.driver.extraJavaOptions", utc)
        .config("spark.executor.extraJavaOptions", utc)
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.sql.shuffle.partitions", "8")
    )
    if DEBIAN_POSTGRESQL_JAR.is_file():
        builder = builder.config("spark.jars", str(DEBIAN_POSTGRESQL_JAR))
    return builder.getOrCreate()


def jdbc_options(url: str) -> dict[str, str]:
    """Spark's JDBC options for a SQLAlchemy URL (PostgreSQL and others with a JDBC driver)."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    host = parsed.host or "localhost"
    port = f":{parsed.port}" if parsed.port else ""
    options = {"url": f"jdbc:{backend}://{host}{port}/{parsed.database or ''}"}
    if backend == "postgresql":
        options["driver"] = "org.postgresql.Driver"
    if parsed.username:
        options["user"] = parsed.username
    if parsed.password:
        options["password"] = str(parsed.password)
    return options
