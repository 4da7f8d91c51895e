"""``python -m batch`` from a clone: the same command as ``python -m hyco2.batch`` (``hyco2-batch``)."""
import sys

from hyco2.batch.__main__ import main

if __name__ == "__main__":
    sys.exit(main())
