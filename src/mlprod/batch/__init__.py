"""Batch scoring: files in bounded-memory chunks, written back with version and timestamp."""

from mlprod.batch._score import score_file, score_frame

__all__ = ["score_file", "score_frame"]
