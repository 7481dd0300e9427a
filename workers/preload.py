"""Imported once by the forkserver so that every worker starts with the heavy modules loaded."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot
import numpy
import pandas
import pyarrow
import pyarrow.csv
import pyarrow.parquet

import workers.pool

__all__ = ["matplotlib", "numpy", "pandas", "pyarrow", "workers"]
