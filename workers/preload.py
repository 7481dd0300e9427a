"""Imported once by the forkserver so that every worker starts with the heavy modules loaded."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal

import matplotlib

# this runs in the forkserver, which the server starts from its main thread: make the forkserver
# die with the server (its workers die with it in turn, see workers.worker.init_worker)
with contextlib.suppress(AttributeError, OSError):
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
if os.environ.get("_LABHUB_POOL_PARENT", str(os.getppid())) != str(os.getppid()):
    os._exit(0)  # the server is already gone

matplotlib.use("Agg")

import matplotlib.pyplot
import numpy
import pandas
import pyarrow
import pyarrow.csv
import pyarrow.parquet

import workers.ingest.run  # the job functions (the server names them; only workers import them)
import workers.plots
import workers.worker

__all__ = ["matplotlib", "numpy", "pandas", "pyarrow", "workers"]

# the first figure pays for font discovery and caches: pay it once here, not in every job
_warm = matplotlib.pyplot.figure(figsize=(1, 1))
_warm.text(0.5, 0.5, "warm-up")
_warm.canvas.draw()
matplotlib.pyplot.close(_warm)
