"""Shared fixtures: one set of real embedded services per test session, isolated per test."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import attrs
import pytest
from aiohttp.test_utils import TestClient

from domain.accounts.models import Role
from domain.core.config import structure_settings
from domain.core.settings import Settings
from handlers.keys import ACCOUNTS
from ops.embedded import EmbeddedServices, ServiceEndpoints
from server import create_app
from tests.mailbox import Mailbox
from tests.openid import openid_provider  # noqa: F401 - a session fixture: the real OpenID provider

TEST_SECRET = "test-secret-that-is-long-enough-for-hs256-0123456789"
S3_KEY = "labhub-test"
S3_SECRET = "labhub-test-secret"
PASSWORD = "correct horse battery"


SLOW_FIRST = ("/tests/browser/", "/tests/system/", "/tests/api/")  # then the unit tests


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The slowest files first (browsers, then whole servers, then the API): the suite's workers
    (pytest-xdist, whole files each) take them in this order, and the quick ones fill in at the end."""

    def rank(item: pytest.Item) -> int:
        path = str(item.path).replace("\\", "/")
        return next((i for i, part in enumerate(SLOW_FIRST) if part in path), len(SLOW_FIRST))

    items.sort(key=rank)


@pytest.fixture(scope="session")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceEndpoints]:
    """Real MongoDB-compatible, Redis and S3 servers on random ports, for the whole session."""
    embedded = EmbeddedServices(
        tmp_path_factory.mktemp("services"), s3_access_key=S3_KEY, s3_secret_key=S3_SECRET
    )
    embedded.spawn()
    try:
        yield embedded.wait_ready()
    finally:
        embedded.stop()


def make_settings(endpoints: ServiceEndpoints, data_dir: Path, **sections: dict[str, Any]) -> Settings:
    """External-mode settings on the session's services, with a database, prefix and bucket of its own."""
    tag = uuid.uuid4().hex[:16]
    data: dict[str, dict[str, Any]] = {
        "app": {"env": "test"},
        "services": {"mode": "external", "data_dir": str(data_dir)},
        "mongo": {"uri": endpoints.mongo_uri, "database": f"t_{tag}"},
        "redis": {"url": endpoints.redis_url, "key_prefix": f"t_{tag}:"},
        "s3": {
            "endpoint_url": endpoints.s3_endpoint_url,
            "access_key": S3_KEY,
            "secret_key": S3_SECRET,
            "bucket": f"t-{tag}",
        },
        "auth": {
            "jwt_secret": TEST_SECRET,
            # cheap hashing keeps the suite fast; production cost is in config.toml
            "argon2_time_cost": 1,
            "argon2_memory_kib": 1024,
            "argon2_parallelism": 1,
        },
    }
    for section, values in sections.items():
        data.setdefault(section, {}).update(values)
    return structure_settings(data)


@pytest.fixture
def settings(services: ServiceEndpoints, tmp_path: Path) -> Settings:
    return make_settings(services, tmp_path)


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    """A real SMTP server on a random port that keeps what it receives (tests/mailbox.py)."""
    box = Mailbox()
    box.start()
    yield box
    box.stop()


AppClient = TestClient  # type alias for readability in tests


@pytest.fixture
async def client(aiohttp_client: Any, settings: Settings) -> AppClient:
    return await aiohttp_client(create_app(settings))


@attrs.frozen
class Account:
    id: str
    email: str
    role: str
    token: str
    refresh_token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


MakeAccount = Callable[..., Awaitable[Account]]


async def create_account(
    client: AppClient, role: str = "student", *, name: str | None = None, email: str | None = None
) -> Account:
    """Create a user with any role (as create-user would) and sign it in through the API."""
    email = email or f"{role.lower()}-{uuid.uuid4().hex[:8]}@lab.example"
    user = await client.app[ACCOUNTS].create(
        email=email, password=PASSWORD, name=name or f"{role} user", role=Role(role)
    )
    response = await client.post("/api/auth/login", json={"email": email, "password": PASSWORD})
    assert response.status == 200, await response.text()
    tokens = await response.json()
    return Account(user.id, email, role, tokens["access_token"], tokens["refresh_token"])


@pytest.fixture
def make_account(client: AppClient) -> MakeAccount:
    """create_account on the test's client."""

    async def make(role: str = "student", *, name: str | None = None, email: str | None = None) -> Account:
        return await create_account(client, role, name=name, email=email)

    return make


def file_form(
    data: Any, filename: str, content_type: str | None = None, field: str = "file"
) -> aiohttp.FormData:
    """A multipart body holding one file; data may be bytes or an async iterator of chunks."""
    form = aiohttp.FormData()
    form.add_field(field, data, filename=filename, content_type=content_type or "application/octet-stream")
    return form


async def problem(response: Any, status: int) -> dict[str, Any]:
    """Assert an RFC 9457 problem with this status and return its body."""
    assert response.status == status, await response.text()
    assert response.content_type == "application/problem+json"
    body: dict[str, Any] = await response.json()
    assert body["status"] == status
    for member in ("type", "title", "detail"):
        assert isinstance(body[member], str), member
        assert body[member], member
    return body


@attrs.frozen
class Team:
    """A project with one account in each place: lead, member, viewer, outsider, head."""

    project_id: str
    lead: Account
    member: Account
    viewer: Account
    outsider: Account
    head: Account

    def by_role(self, role: str) -> Account | None:
        return None if role == "anonymous" else getattr(self, role)


@pytest.fixture
async def team(client: AppClient, make_account: MakeAccount) -> Team:
    lead = await make_account("researcher", name="Lena Lead")
    member = await make_account("student", name="Mia Member")
    viewer = await make_account("student", name="Vic Viewer")
    outsider = await make_account("student", name="Otto Outsider")
    head = await make_account("DH", name="Hedy Head")
    response = await client.post(
        "/api/projects", json={"name": "Wind tunnel", "description": "Tests"}, headers=lead.headers
    )
    assert response.status == 201, await response.text()
    project_id = (await response.json())["id"]
    for account, role in ((member, "member"), (viewer, "viewer")):
        added = await client.post(
            f"/api/projects/{project_id}/members",
            json={"user_id": account.id, "role": role},
            headers=lead.headers,
        )
        assert added.status == 201, await added.text()
    return Team(project_id, lead, member, viewer, outsider, head)


FAST_JOBS = {
    "heartbeat_s": 0.3,
    "lease_s": 1.5,
    "poll_s": 30.0,
    "cancel_grace_s": 1.0,
    "shutdown_grace_s": 1.0,
}


def job_settings(
    endpoints: ServiceEndpoints, data_dir: Path, sections: dict[str, Any] | None = None, **jobs: Any
) -> Settings:
    """Settings for job tests: the test kinds, quick leases, and no polling (so only wake-ups start jobs)."""
    return make_settings(
        endpoints,
        data_dir,
        jobs={**FAST_JOBS, "plugins": ["tests.jobkinds:TEST_KINDS"], **jobs},
        pool={"max_workers": 2, "min_workers": 2},
        **(sections or {}),
    )


def count_calls(monkeypatch: pytest.MonkeyPatch, owner: Any, name: str) -> list[tuple[Any, ...]]:
    """Each call's arguments of owner's async method `name`, which still does its work (a spy on
    LabHub's own code: how often a store is asked, never a stand-in for a service)."""
    calls: list[tuple[Any, ...]] = []
    real = getattr(owner, name)

    async def counted(*args: Any) -> Any:
        calls.append(args)
        return await real(*args)

    monkeypatch.setattr(owner, name, counted)
    return calls


async def wait_until(
    check: Callable[[], Awaitable[Any]], timeout_s: float = 90.0, every_s: float = 0.05
) -> Any:
    """Poll check() until it returns something truthy; fail after timeout_s (long: it returns as soon
    as the check holds, and a job on a machine shared with CI's other work may wait a while for a CPU)."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        value = await check()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout_s} s (last value {value!r})")
        await asyncio.sleep(every_s)
