"""Reading stored datasets back, a row group at a time."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from workers.datasets import row_groups


@pytest.mark.parametrize("columns", [None, ["b"]])
def test_every_row_group_is_read_with_the_chosen_columns(tmp_path, columns):
    path = tmp_path / "three-groups.parquet"
    pq.write_table(pa.table({"a": list(range(10)), "b": [str(i) for i in range(10)]}), path, row_group_size=4)
    rows = [row for group in row_groups(path, columns) for row in group]
    assert rows == ([[i, str(i)] for i in range(10)] if columns is None else [[str(i)] for i in range(10)])
