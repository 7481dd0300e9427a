"""Wide tables (spectra, arrays: thousands of columns) through the API: counted right, ingested with
statistics for every column, stored whole (statistics beyond one document's size), read back by
column, and asked with SQL."""

from __future__ import annotations

import numpy as np
import pytest

from server import create_app
from tests.api.test_ingestion import finished, form
from tests.conftest import job_settings, problem

COLUMNS = 4_500
ROWS = 30


def wide_csv(columns: int = COLUMNS, rows: int = ROWS, text_column: bool = False) -> tuple[bytes, np.ndarray]:
    values = np.arange(rows * columns, dtype=np.float64).reshape(rows, columns) / 8
    header = ",".join(["label" if text_column and c == 0 else f"mz_{c}" for c in range(columns)])
    lines = [header]
    for r in range(rows):
        cells = [repr(float(v)) for v in values[r]]
        if text_column:
            cells[0] = f"s{r}"
        lines.append(",".join(cells))
    return ("\n".join(lines) + "\n").encode(), values


@pytest.fixture
async def client(aiohttp_client, services, tmp_path):
    return await aiohttp_client(create_app(job_settings(services, tmp_path, {"ingest": {"max_columns": 6000}})))


async def ingest(client, team, name, data):
    response = await client.post(f"/api/projects/{team.project_id}/ingestions",
                                 data=form([(name, data, "text/csv")]), headers=team.member.headers)  # fmt: skip
    assert response.status == 202, await response.text()
    return await finished(client, team, (await response.json())["jobs"][0]["id"])


async def test_a_wide_table_is_ingested_whole_with_statistics(client, team):
    data, values = wide_csv()
    job = await ingest(client, team, "spectra.csv", data)
    assert job["status"] == "succeeded", job["error"]
    dataset_id = job["result"]["dataset_id"]
    dataset = await (await client.get(f"/api/datasets/{dataset_id}", headers=team.viewer.headers)).json()
    assert dataset["row_count"] == ROWS
    assert len(dataset["schema"]) == COLUMNS
    assert dataset["schema"][-1] == {"name": f"mz_{COLUMNS - 1}", "type": "number", "unit": None}
    assert len(dataset["stats"]) == COLUMNS
    last = dataset["stats"][f"mz_{COLUMNS - 1}"]
    assert last["min"] == values[0, -1]
    assert last["max"] == values[-1, -1]
    assert last["mean"] == pytest.approx(values[:, -1].mean())
    assert len(dataset["sample"]) == 20
    assert dataset["sample"][3][f"mz_{COLUMNS - 1}"] == values[3, -1]
    # the rows table pages its columns
    page = await (await client.get(f"/api/datasets/{dataset_id}/rows",
                                   params={"columns": "mz_4000,mz_4499", "offset": 10, "limit": 2},
                                   headers=team.viewer.headers)).json()  # fmt: skip
    assert page["rows"] == [{"mz_4000": values[10, 4000], "mz_4499": values[10, 4499]},
                            {"mz_4000": values[11, 4000], "mz_4499": values[11, 4499]}]  # fmt: skip
    # and SQL sees every column
    answer = await client.post("/api/sql", json={"sql": "SELECT max(mz_4499) AS top, count(*) AS n FROM wind_tunnel.spectra"},
                               headers=team.member.headers)  # fmt: skip
    assert (await answer.json())["rows"] == [[values[-1, -1], ROWS]]


async def test_a_wide_table_with_text_is_read_too(client, team):
    data, values = wide_csv(columns=2_500, rows=12, text_column=True)
    job = await ingest(client, team, "mixed.csv", data)
    assert job["status"] == "succeeded", job["error"]
    dataset = await (await client.get(f"/api/datasets/{job['result']['dataset_id']}", headers=team.member.headers)).json()
    assert dataset["schema"][0]["type"] == "text"
    assert dataset["stats"]["mz_2499"]["max"] == values[-1, -1]


@pytest.mark.parametrize("columns", [7_321, 61_723])  # the second's lines are longer than a first look reads
async def test_too_many_columns_are_counted_right_in_the_refusal(client, team, columns):
    data, _ = wide_csv(columns=columns, rows=3)
    job = await ingest(client, team, "too-wide.csv", data)
    assert job["status"] == "failed"
    assert job["error"]["code"] == "limit_exceeded"
    assert f"{columns} columns" in job["error"]["message"]
    assert "at most 6000" in job["error"]["message"]


async def test_the_default_limit_is_fifty_thousand_columns(client, team):
    from domain.core.settings import IngestSettings

    assert IngestSettings().max_columns == 50_000
    await problem(await client.get("/api/datasets/000000000000000000000000", headers=team.member.headers), 404)
