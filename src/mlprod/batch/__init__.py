"""Batch scoring: files or SQL in, files or SQL tables out, resumable, on one machine or Spark.

`score` runs one job: chunks of the source scored on every core, each row written with a
prediction id, model, version, score, label and time, logged so outcomes join it, counted
into monitoring, and published all at once. The same job id resumes a killed job and
does nothing for a finished one.

Example::

    model = mlprod.load("churn@production")
    result = score(model, "new/*.parquet", SqlTable(url, "churn_scores"), job_id="nightly")
    result.rows, result.timings
"""

from mlprod.batch._jobs import JobRecord, get_job
from mlprod.batch._result import BatchResult
from mlprod.batch._run import score
from mlprod.batch._sql import SqlQuery, SqlTable

__all__ = ["BatchResult", "JobRecord", "SqlQuery", "SqlTable", "get_job", "score"]
