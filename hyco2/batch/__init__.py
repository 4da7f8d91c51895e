"""Batch mode: compress a folder of documents into a SQLite log (``python -m hyco2.batch --help``)."""
from .runner import BatchRunner, BatchSettings

__all__ = ["BatchRunner", "BatchSettings"]
