"""Batch mode: compress a folder of documents into a SQLite log (``python -m batch --help``)."""
from .runner import BatchRunner, BatchSettings

__all__ = ["BatchRunner", "BatchSettings"]
