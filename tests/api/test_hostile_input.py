"""Bodies no well-behaved client sends: each answers a 4xx problem+json, never a 500, and the server
keeps serving. (The fuzzer in test_fuzz.py looks for more; what it found once is pinned here.)"""

from __future__ import annotations

import pytest
from bson import ObjectId

from handlers.keys import OPENAPI
from tests.conftest import file_form, problem

BOUNDARY = "LabHubBoundary"
MULTIPART = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}


def multipart(disposition: bytes, body: bytes = b"hello", *, close: bool = True) -> bytes:
    part = (
        f"--{BOUNDARY}\r\n".encode()
        + b"Content-Disposition: "
        + disposition
        + b"\r\nContent-Type: text/plain\r\n\r\n"
        + body
        + b"\r\n"
    )
    return part + (f"--{BOUNDARY}--\r\n".encode() if close else b"")


async def upload_routes(client, team):
    """Every route that reads a multipart body, with a real target for each."""
    created = await client.post(
        f"/api/projects/{team.project_id}/documents",
        data=file_form(b"v1", "a.txt"),
        headers=team.lead.headers,
    )
    assert created.status == 201, await created.text()
    document_id = (await created.json())["id"]
    return [
        f"/api/projects/{team.project_id}/documents",
        f"/api/documents/{document_id}/versions",
        f"/api/projects/{team.project_id}/ingestions",
    ]


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(
            multipart(b'form-data; name="\x01T\xc3\x92"; filename="a.txt"'), id="control-bytes-in-header"
        ),
        pytest.param(
            multipart(b'form-data; name="file"; filename="a.txt"', close=False)[:-8], id="cut-short"
        ),
        pytest.param(b"--NotTheBoundary\r\n\r\nhello\r\n--NotTheBoundary--\r\n", id="wrong-boundary"),
        pytest.param(
            multipart(b'form-data; name="file"; filename="a.txt"').replace(b"--\r\n", b"\r\n"),
            id="no-closing",
        ),
    ],
)
async def test_malformed_multipart_is_400_on_every_upload_route(client, team, body):
    for path in await upload_routes(client, team):
        response = await client.post(path, data=body, headers={**team.lead.headers, **MULTIPART})
        assert response.status in (400, 422), (path, response.status, await response.text())
        await problem(response, response.status)
    assert (await client.get("/ready")).status == 200


def nested(depth: int) -> bytes:
    return b'{"a":' * depth + b"1" + b"}" * depth


async def test_a_hundred_thousand_brackets_is_400_too_deep(client, team):
    response = await client.post(
        f"/api/projects/{team.project_id}/records",
        data=b"[" * 100_000,
        headers={**team.lead.headers, "Content-Type": "application/json"},
    )
    body = await problem(response, 400)
    assert body["code"] == "too_deep"
    assert "64" in body["detail"]


async def test_depth_limit_holds_on_every_json_route(client, team):
    """Every route whose OpenAPI entry takes a JSON body: 64 levels parse, 65 are refused."""
    spec = client.app[OPENAPI]
    checked = []
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            content = operation.get("requestBody", {}).get("content", {})
            if "application/json" not in content:
                continue
            url = path.replace("{pid}", team.project_id)
            url = "".join(part if not part.startswith("{") else str(ObjectId()) for part in _split(url))
            headers = {**team.head.headers, "Content-Type": "application/json"}
            deep = await client.request(method.upper(), url, data=nested(65), headers=headers)
            body = await problem(deep, 400)
            assert body["code"] == "too_deep", (method, path)
            fine = await client.request(method.upper(), url, data=nested(64), headers=headers)
            assert fine.status != 500
            if fine.status == 400:
                assert (await fine.json())["code"] != "too_deep", (method, path)
            checked.append(f"{method} {path}")
    assert len(checked) >= 15, checked


def _split(url: str) -> list[str]:
    parts, current = [], ""
    for ch in url:
        if ch == "{":
            parts.append(current)
            current = ch
        elif ch == "}":
            parts.append(current + ch)
            current = ""
        else:
            current += ch
    return [*parts, current]


@pytest.mark.parametrize(
    ("raw", "status", "code"),
    [
        (b'{"x":NaN}', 400, "malformed_json"),
        (b'{"x":Infinity}', 400, "malformed_json"),
        (b'{"x":-Infinity}', 400, "malformed_json"),
        (b'{"x":1e999}', 400, "malformed_json"),
        (
            b'{"x":' + str(2**70).encode() + b"}",
            400,
            "malformed_json",
        ),  # past 64 bits: MongoDB cannot hold it
        (b'{"x":' + b"9" * 5000 + b"}", 400, "malformed_json"),  # past Python's 4300-digit conversion limit
        (b'{"x":"\\ud800"}', 400, "malformed_json"),  # half a surrogate pair: not text
        (b'{"\\udc00":1}', 400, "malformed_json"),
        (b'{"a\\u0000b":1}', 422, "validation_error"),  # NUL in a key: valid JSON, refused by the rules
        (b'{"x":"\\ud83d\\ude00"}', 201, None),  # a whole pair is an emoji, and fine
        (b'{"x":' + str(2**63 - 1).encode() + b"}", 201, None),
    ],
)
async def test_numbers_constants_and_escapes_in_record_data(client, team, raw, status, code):
    body = b'{"kind":"m","title":"t","data":' + raw + b"}"
    response = await client.post(
        f"/api/projects/{team.project_id}/records",
        data=body,
        headers={**team.lead.headers, "Content-Type": "application/json"},
    )
    if code is None:
        assert response.status == status, await response.text()
        return
    assert (await problem(response, status))["code"] == code


async def test_a_20_mb_body_is_413(client, team):
    response = await client.post(
        f"/api/projects/{team.project_id}/records",
        data=b'{"kind":"m","title":"' + b"x" * (20 * 1024 * 1024) + b'"}',
        headers={**team.lead.headers, "Content-Type": "application/json"},
    )
    await problem(response, 413)


@pytest.mark.parametrize(
    "name",
    [
        b"../../etc/passwd",
        b"a%0D%0AX-Injected: yes.txt",  # how browsers send a line break in a file name (HTML spec)
        b"..\\..\\boot.ini",
        b"/abs/path.csv",
        b"%2e%2e%2fup.txt",
        b"tab\there.txt",
    ],
)
async def test_file_names_with_paths_and_line_breaks_are_harmless(client, team, name):
    # written by hand: aiohttp's own client refuses to send such headers at all
    body = multipart(b'form-data; name="file"; filename="' + name + b'"', b"data")
    created = await client.post(
        f"/api/projects/{team.project_id}/documents", data=body, headers={**team.lead.headers, **MULTIPART}
    )
    assert created.status == 201, await created.text()
    document = await created.json()
    assert "/" not in document["name"]
    assert "\\" not in document["name"]
    assert "\r" not in document["name"]
    assert "\n" not in document["name"]
    assert not document["name"].startswith("..")
    download = await client.get(f"/api/documents/{document['id']}/content", headers=team.lead.headers)
    assert download.status == 200
    assert "X-Injected" not in download.headers
    assert "\r" not in download.headers["Content-Disposition"]
    assert "\n" not in download.headers["Content-Disposition"]
    assert await download.read() == b"data"


@pytest.mark.parametrize(
    "query",
    [
        "/api/engagement/summary?project_id={pid}&to=0001-01-01",
        "/api/engagement/summary?project_id={pid}&from=9999-12-31&to=9999-12-31",
        "/api/projects/{pid}/records?created_at__lte=9999-12-31",
        "/api/projects/{pid}/records?created_at__gte=0001-01-01T00:00:00%2B14:00",
        "/api/projects/{pid}/meetings?from=0001-01-01T00:00:00%2B05:00",
        "/api/projects/{pid}/meetings?to=9999-12-31",
        "/api/documents/{doc}/content?version=9223372036854775808",
        "/api/projects/{pid}/records?limit=99999999999999999999999",
    ],
)
async def test_dates_and_numbers_at_the_edges_of_python_are_4xx(client, team, query):
    """Found by the fuzzer: a day added to 9999-12-31, a time zone applied to year 1, an integer
    MongoDB cannot hold were 500s. Dates are accepted within clock.YEARS, integers within 64 bits."""
    created = await client.post(
        f"/api/projects/{team.project_id}/documents",
        data=file_form(b"v1", "a.txt"),
        headers=team.lead.headers,
    )
    url = query.format(pid=team.project_id, doc=(await created.json())["id"])
    response = await client.get(url, headers=team.lead.headers)
    assert 400 <= response.status < 500, (url, response.status, await response.text())
    await problem(response, response.status)


def forged_cursor(sort: list[list], values: list) -> str:
    """A cursor as the server writes one (base64 of canonical extended JSON), holding what we like."""
    import base64

    from bson import json_util

    raw = json_util.dumps({"s": sort, "v": values}, json_options=json_util.CANONICAL_JSON_OPTIONS)
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


NEWEST = [["created_at", -1], ["_id", -1]]


@pytest.mark.parametrize(
    "values",
    [
        pytest.param([{"$exists": True}, {"$oid": "0" * 24}], id="operator-document"),
        pytest.param(
            [{"$regularExpression": {"pattern": ".", "options": ""}}, {"$oid": "0" * 24}], id="regex"
        ),
        pytest.param([{"$gt": ""}, {"$ne": None}], id="operators-everywhere"),
        pytest.param([[1, 2], {"$oid": "0" * 24}], id="list"),
        pytest.param([{"$binary": {"base64": "", "subType": "00"}}, {"$oid": "0" * 24}], id="binary"),
        pytest.param([{"$code": "sleep(1000)"}, {"$oid": "0" * 24}], id="code"),
    ],
)
async def test_a_cursor_carries_plain_values_only(client, team, values):
    raw_cursor = forged_cursor(NEWEST, values)
    for path in (f"/api/projects/{team.project_id}/documents", f"/api/projects/{team.project_id}/records"):
        refused = await problem(
            await client.get(path, params={"cursor": raw_cursor}, headers=team.member.headers), 400
        )
        assert refused["code"] == "invalid_cursor"
    # a cursor the server wrote still works
    for i in range(3):
        await client.post(
            f"/api/projects/{team.project_id}/records", json={"kind": "k", "title": f"r{i}"},
            headers=team.member.headers,
        )  # fmt: skip
    first = await (
        await client.get(
            f"/api/projects/{team.project_id}/records", params={"limit": 2}, headers=team.member.headers
        )
    ).json()
    following = await client.get(
        f"/api/projects/{team.project_id}/records", params={"limit": 2, "cursor": first["next_cursor"]},
        headers=team.member.headers,
    )  # fmt: skip
    assert following.status == 200
    assert len((await following.json())["items"]) == 1
