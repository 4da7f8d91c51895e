"""Batch mode: compress a folder of documents into a SQLite log (``hyco2-batch --help``).

Importing this package loads no model code (``hyco2-batch report`` starts without torch); ``BatchRunner``
and ``BatchSettings`` load on first use."""


def __getattr__(name: str):
    if name in ("BatchRunner", "BatchSettings"):
        from . import runner

        return getattr(runner, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["BatchRunner", "BatchSettings"]
