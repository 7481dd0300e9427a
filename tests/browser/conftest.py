"""Browser tests: headless Chromium from the system's packages, driven by Playwright (pytest-playwright),
against the real server (./labhub serve with its embedded services).

Chromium: $LABHUB_CHROMIUM, else chromium / chromium-browser / google-chrome on PATH. ./labhub test
installs Debian's chromium when it can; without one these tests fail with one line saying what to
install. They never skip.

Every page a test opens is watched: uncaught errors, CSP violations and console errors are collected
and checked when the test ends (a test names the "failed to load resource" lines it provokes on
purpose). Screenshots go to var/screenshots/.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, BrowserType, Page, Playwright, sync_playwright

from ops.children import free_port
from tests.system.conftest import ROOT, output, start, wait_ready

SCREENSHOTS = ROOT / "var" / "screenshots"
PASSWORD = "correct horse battery"
SIZES = {"desktop": {"width": 1280, "height": 800}, "phone": {"width": 390, "height": 844}}
# what a lab PC's headless Chromium needs here: no sandbox as root, nothing that phones home
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-default-apps",
]  # fmt: skip
# fast password hashing, frequent pings (many pass during a journey) and room for every account the
# journeys register from this one address; the rest is as shipped
SERVER_ENV = {
    "LABHUB_AUTH_REGISTRATIONS_PER_CLIENT": "1000",
    "LABHUB_AUTH_ARGON2_TIME_COST": "1",
    "LABHUB_AUTH_ARGON2_MEMORY_KIB": "1024",
    "LABHUB_AUTH_ARGON2_PARALLELISM": "1",
    "LABHUB_AUTH_IDENTITY_CACHE_S": "0",
    "LABHUB_SSE_PING_S": "1",
    "LABHUB_UPLOADS_MAX_BYTES": str(2 * 1024 * 1024),
    "LABHUB_JOBS_LEASE_S": "6",
    "LABHUB_JOBS_HEARTBEAT_S": "2",
}


def chromium_path() -> str:
    wanted = os.environ.get("LABHUB_CHROMIUM")
    if wanted:
        return wanted
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    raise pytest.UsageError(
        "browser tests need Chromium: install Debian's 'chromium' package (apt-get install chromium) "
        "or set LABHUB_CHROMIUM to a Chrome/Chromium binary"
    )


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    """pytest-playwright's launch options: the system's Chromium (Playwright's download cannot work here)."""
    return {**browser_type_launch_args, "executable_path": chromium_path(), "args": CHROMIUM_ARGS}


# Playwright's sync API keeps an event loop running in this thread while it is started, and
# pytest-asyncio cannot run the async tests' loop beside it. pytest-playwright starts it once per
# session; here it lives for one test module, so that async tests may run after a browser module in
# the same process (the suite's workers, pytest-xdist, take whole files in any order).
@pytest.fixture(scope="module")
def playwright(_pw_api_request_contexts: Any) -> Iterator[Playwright]:
    pw = sync_playwright().start()
    if _pw_api_request_contexts:
        _pw_api_request_contexts.instrument(pw)
    yield pw
    pw.stop()


@pytest.fixture(scope="module")
def browser_type(playwright: Playwright, browser_name: str) -> BrowserType:
    return getattr(playwright, browser_name)  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def launch_browser(browser_type_launch_args: dict[str, Any], browser_type: BrowserType) -> Any:
    def launch(**kwargs: Any) -> Browser:
        return browser_type.launch(**{**browser_type_launch_args, **kwargs})

    return launch


@pytest.fixture(scope="module")
def browser(launch_browser: Any) -> Iterator[Browser]:
    browser = launch_browser()
    yield browser
    browser.close()


@attrs.define
class Server:
    data_dir: Path
    port: int
    process: subprocess.Popen[bytes]
    env: dict[str, str]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()

    def restart(self) -> None:
        """SIGKILL, as a power cut would, then start again on the same port and data."""
        self.stop()
        self.process = start(self.data_dir, self.port, **self.env)
        wait_ready(self.port, self.process)

    def log(self) -> str:
        return output(self.data_dir, self.port)

    def create_user(self, email: str, role: str, name: str) -> None:
        password_file = self.data_dir.parent / f"{self.port}-password"
        password_file.write_text(PASSWORD + "\n")
        subprocess.run(
            [str(ROOT / "labhub"), "create-user", "--email", email, "--role", role, "--name", name,
             "--password-file", str(password_file)],
            cwd=ROOT, env={**os.environ, "LABHUB_SERVICES_DATA_DIR": str(self.data_dir)}, check=True,
            capture_output=True,
        )  # fmt: skip


def serve(data_dir: Path, **env: str) -> Server:
    port = free_port()
    settings = {**SERVER_ENV, **env}
    process = start(data_dir, port, **settings)
    server = Server(data_dir, port, process, settings)
    try:
        wait_ready(port, process)
    except BaseException:
        server.stop()
        raise
    return server


@pytest.fixture(scope="session")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server for the journeys that do not restart it; a head account is created on it."""
    server = serve(tmp_path_factory.mktemp("console"))
    try:
        server.create_user("head@lab.test", "DH", "Hanna Head")
        yield server
    finally:
        server.stop()


class Api:
    """A plain API client (httpx) for setting up what a journey starts from."""

    def __init__(self, base: str) -> None:
        self.http = httpx.Client(base_url=base, timeout=60)

    def sign_in(self, email: str, password: str = PASSWORD) -> dict[str, str]:
        response = self.http.post("/api/auth/login", json={"email": email, "password": password})
        response.raise_for_status()
        return {"Authorization": f"Bearer {response.json()['access_token']}"}

    def register(self, email: str, name: str) -> dict[str, Any]:
        response = self.http.post(
            "/api/auth/register", json={"email": email, "password": PASSWORD, "name": name}
        )
        response.raise_for_status()
        return response.json()

    def call(self, method: str, path: str, headers: dict[str, str], **kwargs: Any) -> Any:
        response = self.http.request(method, path, headers=headers, **kwargs)
        response.raise_for_status()
        return response.json() if response.content else None


@pytest.fixture(scope="session")
def api(console: Server) -> Iterator[Api]:
    client = Api(console.url)
    yield client
    client.http.close()


_ids = iter(range(1, 1_000_000))


@attrs.define
class People:
    """A head, a researcher (lead of the project) and a student, each with a fresh email."""

    head: str
    lead: str
    student: str
    lead_id: str
    student_id: str


@pytest.fixture
def people(api: Api) -> People:
    n = next(_ids)
    head = api.sign_in("head@lab.test")
    lead = api.register(f"lead{n}@lab.test", f"Lena Lead {n}")
    api.call("PATCH", f"/api/users/{lead['id']}", head, json={"role": "researcher"})
    student = api.register(f"student{n}@lab.test", f"Sam Student {n}")
    return People("head@lab.test", lead["email"], student["email"], lead["id"], student["id"])


# -- watching pages -------------------------------------------------------------------------------

CSP_WATCH = """
window.__cspViolations = [];
document.addEventListener('securitypolicyviolation', (e) => {
  window.__cspViolations.push(`${e.violatedDirective} ${e.blockedURI}`);
});
"""
LOAD_FAILED = re.compile(r"^Failed to load resource")


@attrs.define(slots=False)  # Playwright keeps a wrapper on the object whose method handles an event
class Watch:
    """What went wrong in a page: uncaught errors, console errors, CSP violations."""

    page_errors: list[str] = attrs.field(factory=list)
    console_errors: list[str] = attrs.field(factory=list)
    pages: list[Page] = attrs.field(factory=list)

    def attach(self, page: Page) -> None:
        self.pages.append(page)
        page.on("pageerror", lambda error: self.page_errors.append(str(error)))
        page.on(
            "console", lambda message: message.type == "error" and self.console_errors.append(message.text)
        )

    def check(self, *, failed_loads_allowed: tuple[str, ...]) -> None:
        """failed_loads_allowed: what a test provokes on purpose, e.g. ("413",) or ("net::ERR",)."""
        violations = []
        for page in self.pages:
            if not page.is_closed():
                violations += page.evaluate("window.__cspViolations || []")
        assert not self.page_errors, f"uncaught errors in the page: {self.page_errors}"
        assert not violations, f"CSP violations: {violations}"
        assert not [m for m in self.console_errors if "Content Security Policy" in m], self.console_errors
        unexpected = [
            m for m in self.console_errors
            if not (LOAD_FAILED.match(m) and any(token in m for token in failed_loads_allowed))
        ]  # fmt: skip
        assert not unexpected, f"console errors: {unexpected}"


@pytest.fixture
def watch() -> Watch:
    return Watch()


@pytest.fixture
def open_context(browser: Browser, watch: Watch, request: pytest.FixtureRequest) -> Iterator[Any]:
    """open_context(size="desktop", **options) → a fresh browser context whose pages are watched; checked at
    the end of the test. A test marked provokes_failed_loads("413", ...) may show the browser's
    "failed to load resource" lines that contain one of those tokens, and no others."""
    contexts: list[BrowserContext] = []

    def make(size: str = "desktop", **options: Any) -> BrowserContext:
        context = browser.new_context(viewport=SIZES[size], accept_downloads=True, **options)
        context.add_init_script(CSP_WATCH)
        context.on("page", watch.attach)
        contexts.append(context)
        return context

    yield make
    try:
        marker = request.node.get_closest_marker("provokes_failed_loads")
        watch.check(failed_loads_allowed=tuple(marker.args) if marker else ())
    finally:
        for context in contexts:
            context.close()


def screenshot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "provokes_failed_loads(*tokens): the test causes these failed requests on purpose"
    )
