"""SQL over datasets through the API: real DuckDB in the query lane, over real ingested datasets."""

from __future__ import annotations

import csv
import io
import statistics

import pyarrow as pa
import pyarrow.ipc
import pyarrow.parquet as pq
import pytest

from handlers.keys import ACCOUNTS, JOBS, OBJECTS, QUERY_POOL
from server import create_app
from tests.api.test_ingestion import finished, form
from tests.conftest import job_settings, problem, wait_until

ROWS = 3000
CSV = b"time,speed,gust,site\n" + b"".join(
    b"%d,%d.5,%d,%s\n" % (i, i % 17, (i * 7) % 23, b"ab"[i % 2 : i % 2 + 1]) for i in range(ROWS)
)


@pytest.fixture
async def client(aiohttp_client, services, tmp_path):
    return await aiohttp_client(create_app(job_settings(services, tmp_path, {"sql": {"timeout_s": 3.0}})))


async def ingested(client, team, name="Wind.csv", data=CSV, project_id=None, who=None):
    response = await client.post(
        f"/api/projects/{project_id or team.project_id}/ingestions",
        data=form([(name, data, "text/csv")]), headers=(who or team.member).headers,
    )  # fmt: skip
    assert response.status == 202, await response.text()
    job = await finished(client, team, (await response.json())["jobs"][0]["id"])
    assert job["status"] == "succeeded", job
    return job["result"]["dataset_id"]


async def sql(client, who, statement, **fields):
    headers = {**who.headers, **fields.pop("headers", {})}
    return await client.post("/api/sql", json={"sql": statement, **fields}, headers=headers)


async def rows_of(response):
    assert response.status == 200, await response.text()
    return await response.json()


async def test_a_question_is_answered_in_every_format(client, team):
    dataset_id = await ingested(client, team)
    statement = "SELECT site, avg(speed) AS mean, count(*) AS n FROM wind_tunnel.wind GROUP BY site ORDER BY site"
    body = await rows_of(await sql(client, team.viewer, statement))
    assert body["columns"] == [
        {"name": "site", "type": "VARCHAR"}, {"name": "mean", "type": "DOUBLE"}, {"name": "n", "type": "BIGINT"},
    ]  # fmt: skip
    speeds = {"a": [i % 17 + 0.5 for i in range(0, ROWS, 2)], "b": [i % 17 + 0.5 for i in range(1, ROWS, 2)]}
    assert body["rows"] == [[s, pytest.approx(statistics.mean(v)), len(v)] for s, v in sorted(speeds.items())]
    assert body["truncated"] is False
    assert body["row_count"] == 2
    assert body["elapsed_ms"] > 0
    # with the project named, its tables answer without the project part; ds_<id> always works
    same = await rows_of(await sql(client, team.member, statement.replace("wind_tunnel.", ""), project_id=team.project_id))
    assert same["rows"] == body["rows"]
    by_id = await rows_of(await sql(client, team.member, f"SELECT count(*) AS n FROM ds_{dataset_id} WHERE speed > 12"))
    assert by_id["rows"] == [[sum(1 for i in range(ROWS) if i % 17 + 0.5 > 12)]]
    # the catalog
    catalog = await rows_of(await sql(client, team.member, "SELECT id, table_name, name, project_id, rows, columns FROM datasets"))
    [[found_id, table_name, name, project_id, count, columns]] = catalog["rows"]
    assert (found_id, table_name, name, project_id, count) == (dataset_id, "wind_tunnel.wind", "Wind.csv", team.project_id, ROWS)
    assert [c["name"] for c in columns] == ["time", "speed", "gust", "site"]
    # CSV, Parquet and Arrow, by format= or by Accept
    as_csv = await sql(client, team.member, statement, format="csv")
    assert as_csv.status == 200
    assert as_csv.headers["Content-Type"].startswith("text/csv")
    assert as_csv.headers["LabHub-Row-Count"] == "2"
    assert "attachment" in as_csv.headers["Content-Disposition"]
    table = list(csv.reader(io.StringIO(await as_csv.text())))
    assert table[0] == ["site", "mean", "n"]
    assert [r[0] for r in table[1:]] == ["a", "b"]
    as_parquet = await sql(client, team.member, statement, headers={"Accept": "application/vnd.apache.parquet"})
    assert as_parquet.headers["Content-Type"] == "application/vnd.apache.parquet"
    parquet = pq.read_table(io.BytesIO(await as_parquet.read()))
    assert parquet.column_names == ["site", "mean", "n"]
    assert parquet.num_rows == 2
    as_arrow = await sql(client, team.member, statement, format="arrow")
    assert as_arrow.headers["Content-Type"] == "application/vnd.apache.arrow.stream"
    arrow = pyarrow.ipc.open_stream(await as_arrow.read()).read_all()
    assert arrow.column("n").to_pylist() == [len(speeds["a"]), len(speeds["b"])]
    # a limit truncates, and says so
    truncated = await rows_of(await sql(client, team.member, "SELECT * FROM wind_tunnel.wind ORDER BY time", limit=5))
    assert truncated["truncated"] is True
    assert [r[0] for r in truncated["rows"]] == [0, 1, 2, 3, 4]
    capped = await sql(client, team.member, "SELECT * FROM wind_tunnel.wind", limit=10, format="csv")
    assert capped.headers["LabHub-Truncated"] == "true"
    assert len((await capped.text()).strip().splitlines()) == 11
    over = await problem(await sql(client, team.member, "SELECT 1", limit=10**9), 422)
    assert over["code"] == "validation_error"


async def test_csv_answers_are_formula_safe(client, team):
    await ingested(client, team, "cells.csv", b"label,v\n=HYPERLINK(1),1\n+2,2\n@x,3\nplain,4\n")
    response = await sql(client, team.member, "SELECT label FROM wind_tunnel.cells ORDER BY v", format="csv")
    cells = [row[0] for row in csv.reader(io.StringIO(await response.text()))]
    assert cells[1:] == ["'=HYPERLINK(1)", "'+2", "'@x", "plain"]


async def test_errors_say_where(client, team):
    await ingested(client, team)
    syntax = await problem(await sql(client, team.member, "SELECT speed,\n  FROM FROM wind_tunnel.wind"), 400)
    assert syntax["code"] == "invalid_sql"
    assert syntax["position"]["line"] == 2
    column = await problem(await sql(client, team.member, "SELECT speed,\n   nope FROM wind_tunnel.wind"), 400)
    assert column["code"] == "invalid_sql"
    assert "nope" in column["detail"]
    assert column["position"] == {"line": 2, "column": 4}
    unknown = await problem(await sql(client, team.member, "SELECT * FROM\n  wind_tunnel.calm"), 400)
    assert unknown["code"] == "invalid_sql"
    assert "wind_tunnel.calm" in unknown["detail"]
    assert unknown["position"] == {"line": 2, "column": 3}
    runtime = await problem(await sql(client, team.member, "SELECT CAST(site AS INTEGER) FROM wind_tunnel.wind"), 400)
    assert runtime["code"] == "query_failed"


async def test_nobody_reads_a_table_they_may_not_read(client, team, make_account):
    dataset_id = await ingested(client, team)
    # the member's second project, with a dataset of its own
    other = await client.post("/api/projects", json={"name": "Wind tunnel", "description": ""},
                              headers=team.member.headers)  # fmt: skip
    other_id = (await other.json())["id"]
    other_dataset = await ingested(client, team, "calm.csv", b"x\n1\n2\n", project_id=other_id)
    # the same project name comes out once per project: the older keeps it
    tables = await rows_of(await sql(client, team.member, "SELECT table_name FROM datasets ORDER BY table_name"))
    assert tables["rows"] == [["wind_tunnel.wind"], ["wind_tunnel_2.calm"]]
    for statement in ("SELECT * FROM wind_tunnel.wind", f"SELECT * FROM ds_{dataset_id}"):
        refused = await problem(await sql(client, team.outsider, statement), 400)
        nonexistent = await problem(await sql(client, team.outsider, statement.replace("wind", "gale")
                                              .replace(dataset_id, "f" * 24)), 400)  # fmt: skip
        assert refused["code"] == nonexistent["code"] == "invalid_sql"
        assert refused["detail"].split(":")[1] == nonexistent["detail"].split(":")[1]  # the same hint, no more
    assert (await rows_of(await sql(client, team.outsider, "SELECT count(*) FROM datasets")))["rows"] == [[0]]
    await problem(await sql(client, team.outsider, "SELECT 1", project_id=team.project_id), 404)
    # the viewer and the head read it; the viewer does not see the member's other project
    assert (await rows_of(await sql(client, team.viewer, "SELECT count(*) FROM datasets")))["rows"] == [[1]]
    await problem(await sql(client, team.viewer, "SELECT * FROM wind_tunnel_2.calm"), 400)
    head = await rows_of(await sql(client, team.head, "SELECT count(*) FROM wind_tunnel_2.calm"))
    assert head["rows"] == [[2]]
    # a token narrowed to the first project sees only that one
    made = await client.post("/api/tokens", json={"name": "narrow", "scopes": ["read"], "project_ids": [team.project_id]},
                             headers=team.member.headers)  # fmt: skip
    narrowed = {"Authorization": f"Bearer {(await made.json())['token']}"}
    listed = await client.post("/api/sql", json={"sql": "SELECT table_name FROM datasets"}, headers=narrowed)
    assert (await listed.json())["rows"] == [["wind_tunnel.wind"]]
    for statement in ("SELECT * FROM wind_tunnel_2.calm", f"SELECT * FROM ds_{other_dataset}"):
        await problem(await client.post("/api/sql", json={"sql": statement}, headers=narrowed), 400)
    await problem(await client.post("/api/sql", json={"sql": "SELECT 1", "project_id": other_id}, headers=narrowed), 404)
    anonymous = await client.post("/api/sql", json={"sql": "SELECT 1"})
    await problem(anonymous, 401)


HOSTILE = [
    # files, the network and the environment
    "SELECT * FROM read_csv('/etc/passwd')",
    "SELECT * FROM read_csv_auto('/etc/passwd')",
    "SELECT * FROM 'x.csv'",
    "SELECT * FROM '/etc/passwd'",
    'SELECT * FROM "/etc/passwd"',
    "SELECT * FROM read_parquet('s3://labhub/datasets/x/data.parquet')",
    "SELECT * FROM read_parquet('http://127.0.0.1:1/x.parquet')",
    "SELECT * FROM read_text('/etc/hostname')",
    "SELECT * FROM read_blob('/etc/hostname')",
    "SELECT * FROM read_json('/etc/passwd')",
    "SELECT * FROM glob('/*')",
    "SELECT * FROM sniff_csv('/etc/passwd')",
    "SELECT * FROM parquet_metadata('/etc/passwd')",
    "SELECT getenv('HOME')",
    "SELECT current_setting('enable_external_access')",
    "SELECT * FROM duckdb_settings()",
    "SELECT * FROM duckdb_views()",
    "SELECT * FROM duckdb_extensions()",
    "SELECT * FROM information_schema.tables",
    "SELECT * FROM pg_catalog.pg_tables",
    "SELECT * FROM query('SELECT 42')",
    "SELECT * FROM query_table('datasets')",
    # statements other than a query
    "COPY (SELECT 1) TO '/tmp/labhub-sql-test.csv'",
    "ATTACH '/tmp/labhub-sql-test.db' AS x",
    "INSTALL httpfs",
    "LOAD httpfs",
    "PRAGMA version",
    "SET enable_external_access = true",
    "RESET lock_configuration",
    "EXPORT DATABASE '/tmp/labhub-export'",
    "CREATE TABLE t AS SELECT 1",
    "CREATE VIEW wind_tunnel.x AS SELECT 1",
    "DROP TABLE datasets",
    "INSERT INTO datasets VALUES (1)",
    "DELETE FROM datasets",
    "UPDATE datasets SET name = 'x'",
    "CALL pragma_version()",
    "EXPLAIN ANALYZE SELECT 1",
    "DESCRIBE datasets",
    "SHOW TABLES",
    "SUMMARIZE datasets",
    "USE wind_tunnel",
    "BEGIN TRANSACTION",
    "CHECKPOINT",
    "DETACH memory",
    # several statements, comments and quoting
    "SELECT 1; SELECT * FROM read_csv('/etc/passwd')",
    "SELECT 1; COPY (SELECT 1) TO '/tmp/x'",
    "SELECT 1 /* ; */ ; ATTACH 'x'",
    "SELECT 1 -- \n; INSTALL httpfs",
    "SELECT * FROM read_csv/**/('/etc/passwd')",
    'SELECT * FROM "read_csv"(\'/etc/passwd\')',
    "SELECT * FROM READ_CSV('/etc/passwd')",
    "WITH x AS (SELECT * FROM read_csv('/etc/passwd')) SELECT * FROM x",
    "SELECT (SELECT content FROM read_text('/etc/hostname'))",
    "SELECT * FROM wind_tunnel.wind UNION ALL SELECT * FROM read_csv('/etc/passwd')",
    "SELECT * FROM ds_000000000000000000000000",
    "SELECT * FROM other_project.wind",
    "SELECT * FROM memory.main.datasets",
    "SELECT * FROM system.main.duckdb_settings",
    "SELECT 'a' INTO x",
    "",
    "   ",
    "-- only a comment",
    "SELECT " + "(" * 3000 + "1" + ")" * 3000,
    "SELECT 1 FROM \x00",
    # work that never ends or never fits
    "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT count(*) FROM r",
    "SELECT count(*) FROM range(100000000) a, range(100000000) b",
    "SELECT sum(a.time * b.time) FROM wind_tunnel.wind a, wind_tunnel.wind b, wind_tunnel.wind c",
    "SELECT list(range) FROM range(1000000000)",
    "SELECT repeat('x', 100000000) FROM range(100)",
]


async def test_hostile_statements_are_refused_and_the_server_stays_well(client, team):
    await ingested(client, team)
    assert len(HOSTILE) >= 40
    for statement in HOSTILE:
        response = await sql(client, team.member, statement, limit=1_000_000)
        assert response.status in (400, 403, 408, 413), (statement, response.status, await response.text())
        body = await problem(response, response.status)
        assert body["code"] in {"invalid_sql", "sql_not_allowed", "query_timeout", "result_too_large",
                                "query_out_of_memory", "query_failed"}, (statement, body)  # fmt: skip
        assert "root:" not in body["detail"], (statement, body)
        assert "/var/" not in body["detail"], (statement, body)
    import os

    assert not os.path.exists("/tmp/labhub-sql-test.csv")
    assert not os.path.exists("/tmp/labhub-sql-test.db")
    # still well: a plain query answers, and the lane is whole
    ok = await rows_of(await sql(client, team.member, "SELECT count(*) FROM wind_tunnel.wind"))
    assert ok["rows"] == [[ROWS]]
    assert client.app[QUERY_POOL].healthy
    assert (await client.get("/health")).status == 200


async def test_limits_stop_a_query_with_their_own_codes(aiohttp_client, services, tmp_path, make_account):
    app = create_app(job_settings(services, tmp_path, {"sql": {"max_answer_bytes": 20_000, "memory_bytes": 128 * 2**20,
                                                                 "timeout_s": 2.0}}))  # fmt: skip
    client = await aiohttp_client(app)
    from tests.conftest import create_account

    someone = await create_account(client)
    big = await problem(await sql(client, someone, "SELECT range, repeat('x', 100) FROM range(10000)", limit=10000), 413)
    assert big["code"] == "result_too_large"
    memory = await problem(await sql(client, someone, "SELECT list(range) FROM range(100000000)"), 413)
    assert memory["code"] == "query_out_of_memory"
    slow = await problem(await sql(client, someone, "SELECT sum(a.range * b.range) FROM range(1000000) a, range(1000000) b"), 408)
    assert slow["code"] == "query_timeout"
    assert (await rows_of(await sql(client, someone, "SELECT 41 + 1 AS answer")))["rows"] == [[42]]


async def test_a_second_query_reads_the_local_copy_not_s3(client, team):
    dataset_id = await ingested(client, team)
    first = await rows_of(await sql(client, team.member, "SELECT max(time) FROM wind_tunnel.wind"))
    detail = await (await client.get(f"/api/datasets/{dataset_id}", headers=team.member.headers)).json()
    assert detail["parquet_bytes"] > 0
    objects = client.app[OBJECTS]
    keys = [k for k in await objects.keys("datasets/") if dataset_id in k]
    await objects.delete(keys)  # S3 no longer has it: only the instance's cache does
    again = await rows_of(await sql(client, team.member, "SELECT max(time) FROM wind_tunnel.wind"))
    assert again["rows"] == first["rows"] == [[ROWS - 1]]


async def test_queries_do_not_wait_behind_jobs(client, team):
    await ingested(client, team)
    member = await client.app[ACCOUNTS].get_active(team.member.id)
    jobs = [await client.app[JOBS].submit(member, team.project_id, "test.sleepy", {"steps": 1, "hang_at": 0})
            for _ in range(4)]  # fmt: skip

    async def busy():
        states = [(await client.app[JOBS].get(member, j.id)).status.value for j in jobs]
        return states.count("running") == 2

    await wait_until(busy, timeout_s=60)  # every worker of the jobs' pool is busy, and more wait
    answered = await sql(client, team.member, "SELECT count(*) FROM wind_tunnel.wind")
    assert (await rows_of(answered))["rows"] == [[ROWS]]
    for job in jobs:
        await client.app[JOBS].cancel(member, job.id)


async def test_a_saved_query_becomes_a_dataset_with_its_provenance(client, team):
    source_id = await ingested(client, team)
    statement = "SELECT site, avg(speed) AS mean_speed, max(gust) AS top_gust FROM wind GROUP BY site ORDER BY site"
    refused = await client.post(f"/api/projects/{team.project_id}/datasets",
                                json={"from_sql": statement, "name": "Per site"}, headers=team.viewer.headers)  # fmt: skip
    await problem(refused, 403)
    bad = await client.post(f"/api/projects/{team.project_id}/datasets",
                            json={"from_sql": "SELECT * FROM read_csv('/etc/passwd')", "name": "x"},
                            headers=team.member.headers)  # fmt: skip
    assert (await problem(bad, 403))["code"] == "sql_not_allowed"
    response = await client.post(f"/api/projects/{team.project_id}/datasets",
                                 json={"from_sql": statement, "name": "Per site", "tag": "summary"},
                                 headers=team.member.headers)  # fmt: skip
    assert response.status == 202, await response.text()
    job = await finished(client, team, (await response.json())["id"])
    assert job["status"] == "succeeded", job["error"]
    dataset_id = job["result"]["dataset_id"]
    dataset = await (await client.get(f"/api/datasets/{dataset_id}", headers=team.viewer.headers)).json()
    assert dataset["name"] == "Per site"
    assert dataset["tag"] == "summary"
    assert dataset["row_count"] == 2
    assert [(c["name"], c["type"]) for c in dataset["schema"]] == [("site", "text"), ("mean_speed", "number"),
                                                                   ("top_gust", "integer")]  # fmt: skip
    assert dataset["stats"]["top_gust"]["max"] == 22
    provenance = dataset["provenance"]
    assert provenance["query"] == statement
    assert provenance["inputs"][0]["dataset_id"] == source_id
    assert provenance["versions"]["duckdb"]
    raw = await client.get(f"/api/datasets/{dataset_id}/raw", headers=team.viewer.headers)
    assert (await raw.read()).decode() == statement
    # and it is a table like any other
    again = await rows_of(await sql(client, team.viewer, "SELECT count(*) FROM wind_tunnel.per_site"))
    assert again["rows"] == [[2]]


async def test_columns_are_downloaded_alone(client, team):
    dataset_id = await ingested(client, team)
    parquet = await client.get(f"/api/datasets/{dataset_id}/download?format=parquet&columns=speed,site",
                               headers=team.viewer.headers)  # fmt: skip
    assert parquet.status == 200
    table = pq.read_table(io.BytesIO(await parquet.read()))
    assert table.column_names == ["speed", "site"]
    assert table.num_rows == ROWS
    arrow = await client.get(f"/api/datasets/{dataset_id}/download?format=arrow&columns=gust",
                             headers=team.viewer.headers)  # fmt: skip
    assert arrow.headers["Content-Type"] == "application/vnd.apache.arrow.stream"
    read = pyarrow.ipc.open_stream(await arrow.read()).read_all()
    assert read.schema == pa.schema([("gust", read.schema.field("gust").type)])
    assert read.num_rows == ROWS
    unknown = await client.get(f"/api/datasets/{dataset_id}/download?format=arrow&columns=nope",
                               headers=team.viewer.headers)  # fmt: skip
    assert (await problem(unknown, 422))["code"] == "validation_error"
    as_csv = await client.get(f"/api/datasets/{dataset_id}/download?format=csv&columns=site",
                              headers=team.viewer.headers)  # fmt: skip
    assert (await as_csv.text()).splitlines()[:2] == ["site", "a"]


async def test_the_readme_examples_answer(client, team):
    """The three worked examples of README.md's "Asking questions with SQL", on datasets of their shape."""
    runs = b"time,run,pressure\n" + b"".join(b"%d,%d,%d\n" % (i, i % 3, 101000 + i) for i in range(300))
    await ingested(client, team, "runs.csv", runs)
    for name in ("Run 042.csv", "Run 043.csv"):
        await ingested(client, team, name, b"time,speed\n" + b"".join(b"%d,%d\n" % (i, i % 20) for i in range(100)))
    first = await rows_of(await sql(client, team.member, "SELECT run, avg(pressure) AS mean_pressure, count(*) AS n "
                                    "FROM wind_tunnel.runs GROUP BY run ORDER BY run"))  # fmt: skip
    assert [r[0] for r in first["rows"]] == [0, 1, 2]
    second = await sql(client, team.member, "SELECT time, speed FROM run_042 WHERE speed > 12 ORDER BY time",
                       project_id=team.project_id, format="csv")  # fmt: skip
    assert (await second.text()).splitlines()[:2] == ['"time","speed"', "13,13"]
    saved = await client.post(f"/api/projects/{team.project_id}/datasets", headers=team.member.headers, json={
        "name": "runs 42 and 43",
        "from_sql": "SELECT a.time, a.speed AS run_42, b.speed AS run_43 FROM run_042 a JOIN run_043 b USING (time)",
    })  # fmt: skip
    assert saved.status == 202
    job = await finished(client, team, (await saved.json())["id"])
    assert job["status"] == "succeeded", job["error"]
    assert job["result"]["rows"] == 100
