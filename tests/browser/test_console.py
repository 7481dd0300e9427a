"""The console in headless Chromium: the journeys of issue 12, each from a fresh browser context,
with every page scanned by axe-core and photographed at desktop and phone size."""

from __future__ import annotations

import csv
import io
import re
import time
from pathlib import Path
from typing import Any

import h5py
import httpx
import numpy as np
import openpyxl
import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Page, expect

from tests.browser.conftest import PASSWORD, SIZES, Api, People, Server, screenshot, serve

AXE = Axe()
BLOCKING = {"serious", "critical"}


def scan(page: Page, name: str) -> None:
    """At desktop and at phone size: axe-core finds nothing serious or critical, and a screenshot
    is kept under var/screenshots/. The page is left at the size it had."""
    page.wait_for_load_state("networkidle")
    before = page.viewport_size
    try:
        for size, viewport in SIZES.items():
            page.set_viewport_size(viewport)
            results = AXE.run(page)
            bad = [
                f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:3]}"
                for v in results.response["violations"]
                if v["impact"] in BLOCKING
            ]
            assert not bad, f"{name} at {size} size: {bad}"
            # nothing wider than the screen: wide tables scroll inside their own box
            width = page.evaluate("document.documentElement.scrollWidth")
            wide = [] if width <= viewport["width"] else page.evaluate(
                """(limit) => [...document.querySelectorAll('body *')]
                .filter((e) => e.getBoundingClientRect().right > limit + 1 && !e.closest('.scroll'))
                .map((e) => e.tagName + '.' + e.className + ' ' + Math.round(e.getBoundingClientRect().right)).slice(0, 8)""",
                viewport["width"],
            )  # what sticks out, to say where to look
            assert width <= viewport["width"], f"{name} at {size} size is {width} px wide: {wide}"
            screenshot(page, f"{name}-{size}")
    finally:
        if before:
            page.set_viewport_size(before)


def sign_in(page: Page, base: str, email: str, password: str = PASSWORD) -> None:
    page.goto(base + "/")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()


def csv_bytes(rows: int = 200) -> bytes:
    lines = ["time,speed,label"] + [f"{i * 0.1:.1f},{(i * 7) % 50 + 0.5},{'ab'[i % 2]}" for i in range(rows)]
    return ("\n".join(lines) + "\n").encode()


def two_sheet_workbook() -> bytes:
    book = openpyxl.Workbook()
    book.active.title = "Runs"
    book.active.append(["run", "thrust"])
    for i in range(20):
        book.active.append([i, i * 1.5])
    book.create_sheet("Calibration").append(["sensor", "offset"])
    book["Calibration"].append(["p1", 0.02])
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


WIND_TUNNEL = (
    b"Tunnel B, 2024-05-01\nOperator Z\n%Dyn, Alpha, Beta\n% CL, CD\n"
    b"1.0, 2.0, 3.0, 4.0, 5.0\n2.0, 3.0, 4.0, 5.0, 6.0\n3.0, 4.0, 5.0, 6.0, 7.0\n"
)


def files(*named: tuple[str, bytes, str]) -> list[dict]:
    return [{"name": n, "mimeType": t, "buffer": b} for n, b, t in named]


def make_project(api: Api, lead: str, name: str, *members: tuple[str, str]) -> str:
    headers = api.sign_in(lead)
    project = api.call("POST", "/api/projects", headers, json={"name": name})
    for user_id, role in members:
        api.call(
            "POST", f"/api/projects/{project['id']}/members", headers, json={"user_id": user_id, "role": role}
        )
    return project["id"]


def ingested(api: Api, headers: dict[str, str], pid: str, name: str, data: bytes, content_type: str) -> dict:
    """The finished ingestion job of one file (it must succeed)."""
    batch = api.call("POST", f"/api/projects/{pid}/ingestions", headers, files=[("files", (name, data, content_type))])
    job_id = batch["jobs"][0]["id"]
    deadline = time.monotonic() + 300
    while (job := api.call("GET", f"/api/jobs/{job_id}", headers))["status"] not in {"succeeded", "failed"}:
        assert time.monotonic() < deadline, job
        time.sleep(0.2)
    assert job["status"] == "succeeded", job
    return job


def job_rows(page: Page):
    return page.locator("ul[aria-label='Ingestions'] .job")


# -- (1) register and sign in ----------------------------------------------------------------------


@pytest.mark.provokes_failed_loads("status of 422")  # a password too short, on purpose
def test_a_student_registers_and_signs_in(console: Server, open_context):
    for size in SIZES:
        page = open_context(size).new_page()
        page.goto(console.url + "/")
        expect(page.get_by_role("heading", name="Sign in to LabHub")).to_be_visible()
        scan(page, "sign-in")
        page.get_by_role("link", name="Create a student account").click()
        expect(page.get_by_role("heading", name="Create an account")).to_be_visible()
        scan(page, "register")
        page.get_by_label("Name").fill(f"Rita Register {size}")
        page.get_by_label("Email").fill(f"rita-{size}@lab.test")
        page.get_by_label("Password").fill("short")
        page.get_by_role("button", name="Create account").click()
        # the server's field error, tied to its field
        expect(page.get_by_label("Password")).to_have_accessible_description(
            re.compile("must be at least 10")
        )
        expect(page.get_by_label("Password")).to_have_attribute("aria-invalid", "true")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Create account").click()
        expect(page.get_by_role("heading", name="Projects")).to_be_visible()
        expect(page.get_by_role("link", name=re.compile("Rita Register"))).to_contain_text("student")
        # students never see the admin pages
        expect(page.get_by_role("link", name="Users")).to_have_count(0)
        page.goto(console.url + "/admin/users")
        expect(page.get_by_role("heading", name="Not found")).to_be_visible()
        page.goto(console.url + "/")
        expect(page.get_by_text("No projects yet")).to_be_visible()
        scan(page, "projects-empty")


# -- (2) a lead's project: members, ingestion of three kinds of files, statistics, a plot --------------


@pytest.mark.provokes_failed_loads("status of 409")  # the last lead may not step down
def test_a_lead_ingests_files_and_plots_a_dataset(console: Server, api: Api, people: People, open_context):
    page = open_context().new_page()
    sign_in(page, console.url, people.lead)
    page.get_by_role("button", name="New project").click()
    page.get_by_label("Project name").fill("Wing section tests")
    page.get_by_label("Description").fill("NACA 0012 in tunnel B")
    page.get_by_role("button", name="Create project").click()
    expect(page.get_by_role("heading", name="Wing section tests")).to_be_visible()
    # add the student by searching people: a lead who is not a head finds a stranger by exact email
    student_name = api.call("GET", f"/api/users/{people.student_id}", api.sign_in(people.head))["name"]
    page.get_by_label("Find people by name or email").fill(people.student)
    page.get_by_role("button", name="Search").click()
    page.get_by_role("button", name=f"Add {student_name} as member").click()
    expect(page.get_by_role("cell", name=student_name, exact=True)).to_be_visible()
    # the last lead cannot step down: the server's refusal is shown
    page.get_by_label(re.compile("^Role of Lena Lead")).select_option("member")
    expect(page.get_by_role("alert")).to_contain_text("last lead")
    scan(page, "project-overview")

    page.get_by_role("link", name="Ingest").click()
    page.get_by_label(re.compile("Choose files")).set_input_files(
        files(
            ("flow.csv", csv_bytes(), "text/csv"),
            (
                "thrust.xlsx",
                two_sheet_workbook(),
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            ),
            ("tunnel.txt", WIND_TUNNEL, "text/plain"),
        )
    )
    page.get_by_label("Profile for tunnel.txt").select_option("wind_tunnel")
    page.get_by_label(re.compile("^Sheets of thrust.xlsx")).fill("Runs, Calibration")  # a row per sheet
    page.get_by_label("Dataset type").fill("wind")
    page.get_by_label("Tag").fill("campaign-1")
    scan(page, "ingest-form")
    page.get_by_role("button", name="Ingest 3 files").click()
    expect(page.get_by_role("status").filter(has_text="queued")).to_contain_text("4 ingestions queued")
    rows = job_rows(page)
    expect(rows).to_have_count(4)  # the CSV, two sheets, the wind-tunnel file
    for i in range(4):
        expect(rows.nth(i)).to_have_attribute("data-status", "succeeded", timeout=120_000)
    expect(page.locator("ul[aria-label='Ingestions']")).to_contain_text("sheet Calibration")
    scan(page, "ingest-done")

    rows.filter(has_text="flow.csv").get_by_role("link", name="Open dataset").click()
    expect(page.get_by_role("heading", name="flow.csv")).to_be_visible()
    stats = page.get_by_role("table", name="Statistics per column")
    expect(stats.get_by_role("row", name=re.compile("^speed"))).to_contain_text("200")
    expect(page.get_by_role("table", name=re.compile("^Rows 1–50 of 200"))).to_be_visible()
    page.get_by_role("button", name="Next rows").click()
    expect(page.get_by_role("table", name=re.compile("^Rows 51–100 of 200"))).to_be_visible()
    with page.expect_download() as download:
        page.get_by_role("button", name="Download CSV").click()
    assert download.value.suggested_filename.endswith(".csv")
    scan(page, "dataset")

    page.get_by_label("Kind").select_option("histogram")
    page.get_by_label("Column").select_option("speed")
    page.get_by_label("Title").fill("Speed distribution")
    page.get_by_role("button", name="Make plot").click()
    image = page.get_by_role("img", name=re.compile("histogram plot: Speed distribution"))
    expect(image).to_be_visible(timeout=120_000)
    assert image.evaluate("img => img.naturalWidth") > 0
    page.get_by_text("Spec (for reproducing this plot)").click()
    expect(page.locator("pre.code").first).to_contain_text('"bins": 50')
    scan(page, "dataset-plot")

    page.get_by_role("link", name="Project datasets").click()
    for tab in ("Datasets", "Plots"):
        page.get_by_role("navigation", name="Project sections").get_by_role("link", name=tab).click()
        expect(page.get_by_role("heading", name=tab, exact=True)).to_be_visible()
        scan(page, f"project-{tab.lower()}")
    expect(page.get_by_role("img", name=re.compile("Speed distribution"))).to_be_visible()


# -- documents and records --------------------------------------------------------------------------


# too big a document, a bad data key, and a connection cut during an upload
@pytest.mark.provokes_failed_loads("status of 413", "status of 422", "ERR_CONNECTION_RESET")
def test_documents_and_records(console: Server, api: Api, people: People, open_context):
    pid = make_project(api, people.lead, "Paperwork")
    page = open_context().new_page()
    sign_in(page, console.url, people.lead)
    page.goto(f"{console.url}/projects/{pid}/documents")
    # uploads are resumable (tus): the first PATCH of protocol.txt is cut off, and tus-js-client
    # asks the server for the offset and sends the bytes again
    cut: list[str] = []

    def cut_the_first_patch(route: Any) -> None:
        if route.request.method == "PATCH" and not cut:
            cut.append(route.request.url)
            route.abort("connectionreset")
        else:
            route.continue_()

    page.route(re.compile(r".*/api/uploads/[0-9a-f]+$"), cut_the_first_patch)
    page.get_by_label("Upload documents (one or many)").set_input_files(
        files(
            ("protocol.txt", b"step 1\nstep 2\n", "text/plain"),
            ("too-big.bin", b"\0" * (3 * 1024 * 1024), "application/octet-stream"),
        )
    )
    uploads = page.get_by_role("list", name="Uploads")
    expect(uploads.locator("li", has_text="protocol.txt")).to_contain_text("uploaded")
    expect(uploads.locator("li", has_text="too-big.bin")).to_contain_text("failed")
    expect(uploads.locator("li", has_text="too-big.bin")).to_contain_text("limit")
    assert cut, "no upload went through tus"
    page.unroute(re.compile(r".*/api/uploads/[0-9a-f]+$"))
    expect(page.get_by_text("protocol.txt").last).to_be_visible()
    page.get_by_role("button", name="Versions of protocol.txt").click()
    expect(page.get_by_role("table", name="Versions of protocol.txt")).to_contain_text("1")
    with page.expect_download() as download:
        page.get_by_role("button", name="Download protocol.txt").click()
    assert download.value.suggested_filename == "protocol.txt"
    scan(page, "documents")

    page.get_by_role("navigation", name="Project sections").get_by_role("link", name="Records").click()
    page.get_by_role("button", name="New record").click()
    page.get_by_label("Kind").first.fill("run")
    page.get_by_label("Title").first.fill("Run 7")
    page.get_by_label("Data (JSON object)").fill('{"$speed": 3}')
    page.get_by_role("button", name="Create record").click()
    expect(page.get_by_label("Data (JSON object)")).to_have_accessible_description(re.compile("keys must be"))
    page.get_by_label("Data (JSON object)").fill('{"speed": 3, "angle": 4}')
    page.get_by_role("button", name="Create record").click()
    expect(page.get_by_role("cell", name="Run 7", exact=True)).to_be_visible()
    with page.expect_download() as download:
        page.get_by_role("button", name="Export CSV").click()
    assert "Run 7" in download.value.path().read_text()
    scan(page, "records")


def test_a_failed_ingestion_shows_its_code_and_can_be_retried(
    console: Server, api: Api, people: People, open_context
):
    pid = make_project(api, people.lead, "Broken files")
    page = open_context().new_page()
    sign_in(page, console.url, people.lead)
    page.goto(f"{console.url}/projects/{pid}/ingest")
    page.get_by_label(re.compile("Choose files")).set_input_files(
        files(("broken.xlsx", b"PK\x03\x04 this is not a workbook", "application/octet-stream"))
    )
    page.get_by_role("button", name="Ingest 1 file").click()
    row = job_rows(page).first
    expect(row).to_have_attribute("data-status", "failed", timeout=120_000)
    error = row.get_by_role("alert")
    expect(error).to_contain_text(
        re.compile(r"^[a-z_]+: .{10,}")
    )  # the code, then a message a person can act on
    code = error.locator("strong").inner_text()
    page.get_by_role("button", name="Retry broken.xlsx").click()
    expect(row).to_contain_text("attempt 2", timeout=120_000)
    expect(row).to_have_attribute("data-status", "failed", timeout=120_000)
    expect(row.get_by_role("alert")).to_contain_text(code)
    scan(page, "ingest-failed")


# -- (3) the server dies in the middle of an ingestion ------------------------------------------------


@pytest.mark.provokes_failed_loads("net::ERR_", "status of 503")  # the server is down for a while
def test_an_ingestion_row_survives_a_server_restart(tmp_path, open_context):
    server = serve(tmp_path / "restart")
    try:
        server.create_user("head@lab.test", "DH", "Hanna Head")
        api = Api(server.url)
        headers = api.sign_in("head@lab.test")
        project = api.call("POST", "/api/projects", headers, json={"name": "Long runs"})
        page = open_context().new_page()
        sign_in(page, server.url, "head@lab.test")
        page.goto(f"{server.url}/projects/{project['id']}/ingest")
        rows = "\n".join(f"{i},{i * 0.5},{i % 7}" for i in range(1_500_000))
        page.get_by_label(re.compile("Choose files")).set_input_files(
            files(("long.csv", ("a,b,c\n" + rows + "\n").encode(), "text/csv"))
        )
        page.get_by_role("button", name="Ingest 1 file").click()
        row = job_rows(page).first
        expect(row).to_have_attribute("data-status", "running", timeout=60_000)
        server.restart()  # SIGKILL mid-ingestion, then start again
        expect(row).to_have_attribute("data-status", "succeeded", timeout=180_000)
        expect(row.get_by_role("link", name="Open dataset")).to_be_visible()
        assert page.evaluate("performance.getEntriesByType('navigation').length") == 1  # never reloaded
    finally:
        server.stop()


# -- (4) meetings -----------------------------------------------------------------------------------


def test_a_meeting_rsvp_attendance_and_ics(console: Server, api: Api, people: People, open_context):
    pid = make_project(api, people.lead, "Weekly", (people.student_id, "member"))
    lead = open_context().new_page()
    sign_in(lead, console.url, people.lead)
    lead.goto(f"{console.url}/projects/{pid}/meetings")
    lead.get_by_role("button", name="New meeting").click()
    lead.get_by_label("Title").fill("Progress review")
    # started ten minutes ago, so attendance can be taken
    lead.get_by_label("Starts").fill(
        lead.evaluate(
            "(() => { const d = new Date(Date.now() - 600000); const p = (n) => String(n).padStart(2, '0');"
            " return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`; })()"
        )
    )
    lead.get_by_label("Location").fill("Room 2.14")
    lead.get_by_label(re.compile("^Sam Student")).check()
    lead.get_by_role("button", name="Create meeting").click()
    expect(lead.get_by_role("heading", name="Upcoming")).to_be_visible()
    scan(lead, "project-meetings")
    lead.get_by_role("link", name="Progress review").click()
    expect(lead.get_by_role("heading", name="Progress review")).to_be_visible()
    scan(lead, "meeting")

    student = open_context().new_page()
    sign_in(student, console.url, people.student)
    student.goto(lead.url)
    student.get_by_role("button", name="Yes").click()
    expect(student.get_by_text("Your answer: yes")).to_be_visible()
    expect(student.get_by_role("checkbox")).to_have_count(0)  # no attendance for members

    lead.reload()
    expect(lead.get_by_role("row", name=re.compile("Sam Student"))).to_contain_text("yes")
    lead.get_by_role("group", name="Who was there").get_by_label(re.compile("Sam Student")).check()
    lead.get_by_role("button", name="Save attendance").click()
    expect(lead.get_by_text("Attendance saved.")).to_be_visible()
    expect(lead.get_by_role("row", name=re.compile("Sam Student"))).to_contain_text("present")
    with lead.expect_download() as download:
        lead.get_by_role("button", name="Download .ics").click()
    ics = download.value.path().read_text()
    assert ics.startswith("BEGIN:VCALENDAR")
    assert "Progress review" in ics


# -- (5) engagement ---------------------------------------------------------------------------------


def test_a_student_logs_time_and_the_lead_sees_it(console: Server, api: Api, people: People, open_context):
    pid = make_project(api, people.lead, "Thesis", (people.student_id, "member"))
    student = open_context("phone").new_page()
    sign_in(student, console.url, people.student)
    student.goto(f"{console.url}/projects/{pid}/engagement")
    student.get_by_label("Minutes").fill("90")
    student.get_by_label("Activity").select_option("analysis")
    student.get_by_label("Notes").fill("fitted the drag polar")
    student.get_by_role("button", name="Log time").click()
    expect(student.get_by_role("status").filter(has_text="Logged")).to_contain_text("1 h 30 min")
    expect(student.get_by_role("cell", name="fitted the drag polar", exact=True)).to_be_visible()
    expect(student.get_by_text("Summary per student")).to_have_count(0)
    scan(student, "engagement-student")

    lead = open_context().new_page()
    sign_in(lead, console.url, people.lead)
    lead.goto(f"{console.url}/projects/{pid}/engagement")
    expect(lead.get_by_role("row", name=re.compile("Sam Student"))).to_contain_text("1 h 30 min")
    with lead.expect_download() as download:
        lead.get_by_role("button", name="Export CSV").first.click()
    assert "Sam Student" in download.value.path().read_text()
    lead.get_by_role("button", name="Plot").click()
    expect(lead.get_by_role("img", name=re.compile("plot"))).to_be_visible(timeout=120_000)
    scan(lead, "engagement-lead")


# -- (6) notifications --------------------------------------------------------------------------------


def test_the_bell_counts_up_when_a_job_finishes(console: Server, api: Api, people: People, open_context):
    pid = make_project(api, people.lead, "Bells")
    page = open_context().new_page()
    sign_in(page, console.url, people.lead)
    page.get_by_role("link", name="Jobs").click()
    bell = page.get_by_role("link", name=re.compile("^Notifications"))
    expect(bell).to_have_attribute("aria-label", "Notifications, 0 unread")
    headers = api.sign_in(people.lead)
    api.call(
        "POST",
        f"/api/projects/{pid}/ingestions",
        headers,
        files=[("files", ("x.csv", csv_bytes(5), "text/csv"))],
    )
    expect(bell).to_have_attribute("aria-label", "Notifications, 1 unread", timeout=120_000)
    bell.click()
    expect(page.get_by_text("finished").first).to_be_visible()
    scan(page, "notifications")
    page.get_by_role("button", name="Mark all read").click()
    expect(bell).to_have_attribute("aria-label", "Notifications, 0 unread")
    page.get_by_role("link", name="Jobs").click()
    expect(page.locator(".job").first).to_have_attribute("data-status", "succeeded")
    scan(page, "jobs")


# -- (7) the session: reload, sign out, deactivation ---------------------------------------------------


@pytest.mark.provokes_failed_loads("status of 401")  # the deactivated user's requests
def test_the_session_survives_reload_and_ends_on_sign_out_or_deactivation(
    console: Server, api: Api, people: People, open_context
):
    context = open_context()
    page = context.new_page()
    sign_in(page, console.url, people.student)
    page.reload()
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()
    # the refresh token is an HttpOnly, SameSite=Strict cookie on /api/auth; nothing in storage
    cookie = next(c for c in context.cookies() if c["name"] == "labhub_refresh")
    assert cookie["httpOnly"]
    assert cookie["sameSite"] == "Strict"
    assert cookie["path"] == "/api/auth"
    assert "access" not in page.evaluate("JSON.stringify(localStorage) + JSON.stringify(sessionStorage)")
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in to LabHub")).to_be_visible()
    page.reload()
    expect(page.get_by_role("heading", name="Sign in to LabHub")).to_be_visible()

    # "sign out everywhere" from another browser ends this one's session too
    sign_in(page, console.url, people.student)
    elsewhere = open_context().new_page()
    sign_in(elsewhere, console.url, people.student)
    elsewhere.goto(console.url + "/account")
    elsewhere.get_by_role("button", name="Sign out everywhere").click()
    expect(elsewhere.get_by_role("heading", name="Sign in to LabHub")).to_be_visible()
    signed_out = page.get_by_role("heading", name="Sign in to LabHub")
    page.get_by_role("link", name="Jobs").or_(signed_out).first.click()
    expect(signed_out).to_be_visible()

    sign_in(page, console.url, people.student)
    head = api.sign_in(people.head)
    api.call("PATCH", f"/api/users/{people.student_id}", head, json={"active": False})
    # the console's own background requests may end the session before the click; either way it ends
    signed_out = page.get_by_role("heading", name="Sign in to LabHub")
    page.get_by_role("link", name="Jobs").or_(signed_out).first.click()
    expect(page.get_by_role("heading", name="Sign in to LabHub")).to_be_visible()
    expect(page.get_by_role("status")).to_contain_text("session has ended")


def test_heads_manage_users_and_see_the_system(console: Server, people: People, open_context):
    page = open_context("phone", color_scheme="dark").new_page()  # and the dark theme passes axe too
    sign_in(page, console.url, people.head)
    page.get_by_role("link", name="Users").click()
    page.get_by_label("Search by name or email").fill(people.student)
    row = page.get_by_role("row", name=re.compile(re.escape(people.student)))
    expect(row).to_have_count(1)
    row.get_by_role("combobox").select_option("researcher")
    expect(page.get_by_role("status")).to_contain_text("is now researcher")
    scan(page, "admin-users")
    page.get_by_role("link", name="System").click()
    sizing = page.get_by_role("table", name="Worker pool size and its inputs")
    expect(sizing).to_contain_text("cpu count")
    expect(sizing.get_by_role("row", name=re.compile("^available"))).to_contain_text(re.compile(r"\d GiB"))  # not bytes
    expect(page.get_by_role("table", name=re.compile("Quotas per person"))).to_contain_text(re.compile(r"storage per user\s*\S+ GiB"))
    scan(page, "admin-system")
    page.get_by_role("link", name=re.compile("Hanna Head")).click()
    expect(page.get_by_role("heading", name="My account")).to_be_visible()
    usage = page.get_by_role("table", name="What you use and your limits")
    expect(usage.get_by_role("row", name=re.compile("^Storage"))).to_contain_text("50")  # of 50 GiB
    scan(page, "account")


def test_the_keyboard_alone_signs_in_and_moves_around(console: Server, people: People, open_context):
    page = open_context().new_page()
    page.goto(console.url + "/")
    expect(page.get_by_role("heading", name="Sign in to LabHub")).to_be_visible()
    page.keyboard.press("Tab")
    expect(page.get_by_label("Email")).to_be_focused()
    assert page.evaluate("getComputedStyle(document.activeElement).outlineStyle") != "none"  # visible focus
    page.keyboard.type(people.lead)
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()
    page.keyboard.press("Tab")
    skip = page.get_by_role("link", name="Skip to content")
    expect(skip).to_be_focused()
    expect(skip).to_be_in_viewport()  # shown when focused
    for _ in range(3):  # past the brand and Projects to Jobs
        page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Jobs")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Jobs")).to_be_visible()


def test_tokens_and_a_calendar_link_from_the_account_page(
    console: Server, api: Api, people: People, open_context
):
    pid = make_project(api, people.lead, "Instruments", (people.student_id, "member"))
    api.call("POST", f"/api/projects/{pid}/meetings", api.sign_in(people.lead),
             json={"title": "Tunnel slot", "starts_at": "2099-01-01T10:00:00Z", "attendee_ids": [people.student_id]})  # fmt: skip
    page = open_context().new_page()
    sign_in(page, console.url, people.student)
    page.get_by_role("link", name=re.compile("Sam Student")).click()
    page.get_by_label("Token name").fill("tunnel PC")
    page.get_by_label("Only these projects (ids, comma separated; empty = all yours)").fill(pid)
    page.get_by_role("button", name="Make token").click()
    expect(page.get_by_label("Your new token")).to_be_visible()
    secret = page.get_by_label("Your new token").inner_text()
    assert secret.startswith("lhp_")
    listed = api.http.get("/api/projects", headers={"Authorization": f"Bearer {secret}"})
    assert [p["id"] for p in listed.json()["items"]] == [pid]
    assert (
        api.http.post(
            "/api/projects", json={"name": "x"}, headers={"Authorization": f"Bearer {secret}"}
        ).status_code
        == 403
    )
    expect(page.get_by_role("row", name=re.compile("tunnel PC"))).to_contain_text("read")
    scan(page, "account-tokens")
    page.get_by_role("button", name="Revoke tunnel PC").click()
    expect(page.get_by_role("row", name=re.compile("tunnel PC"))).to_contain_text("revoked")
    assert api.http.get("/api/projects", headers={"Authorization": f"Bearer {secret}"}).status_code == 401

    page.get_by_role("button", name="Make a calendar link").click()
    expect(page.get_by_label("Calendar link")).to_be_visible()
    link = page.get_by_label("Calendar link").inner_text()
    feed = httpx.get(link)  # as a calendar app: no headers
    assert feed.status_code == 200
    assert "Tunnel slot" in feed.text


@pytest.mark.provokes_failed_loads(
    "status of 400", "status of 403"
)  # a spent link; this LabHub sends no mail
def test_a_head_hands_over_a_reset_link_and_the_person_chooses_a_new_password(
    console: Server, api: Api, people: People, open_context
):
    api.register("forgetful@lab.test", "Fran Forgetful")
    head = open_context().new_page()
    sign_in(head, console.url, people.head)
    head.get_by_role("link", name="Users").click()
    head.get_by_label("Search by name or email").fill("forgetful@")
    head.get_by_role("button", name="Make a reset link for Fran Forgetful").click()
    link = head.get_by_label("Reset link for Fran Forgetful", exact=True).inner_text()
    assert link.startswith(console.url + "/reset#token=lhr_")

    page = open_context("phone").new_page()
    page.goto(link)
    expect(page.get_by_role("heading", name="Choose a new password")).to_be_visible()
    assert "token" not in page.url  # read once, then out of the address bar and the history
    page.get_by_label("New password", exact=True).fill("fresh passphrase 1")
    page.get_by_label("New password again").fill("fresh passphrase 1")
    scan(page, "reset-password")
    page.get_by_role("button", name="Set new password").click()
    expect(page.get_by_role("heading", name="Password changed")).to_be_visible()
    page.get_by_role("link", name="Sign in with your new password").click()
    sign_in(page, console.url, "forgetful@lab.test", "fresh passphrase 1")

    # the person's mail choices, on their account page
    page.get_by_role("link", name=re.compile("Fran Forgetful")).click()
    page.get_by_label(re.compile("^Meeting invitations")).uncheck()
    expect(page.get_by_role("status").filter(has_text="Meeting invitations: off")).to_be_visible()
    settings = api.call(
        "GET", "/api/users/me/notification-settings", api.sign_in("forgetful@lab.test", "fresh passphrase 1")
    )
    assert settings == {"meeting_invitations": False, "job_notices": True}

    # the same link again: refused, with a way on
    again = open_context().new_page()
    again.goto(link)
    again.get_by_label("New password", exact=True).fill("another passphrase")
    again.get_by_label("New password again").fill("another passphrase")
    again.get_by_role("button", name="Set new password").click()
    expect(again.get_by_role("alert")).to_contain_text("invalid_reset")
    again.get_by_role("link", name="Ask for a new reset link").click()
    expect(again.get_by_role("heading", name="Forgot your password?")).to_be_visible()
    again.get_by_label("Email").fill("forgetful@lab.test")
    again.get_by_role("button", name="Mail me a reset link").click()
    expect(again.get_by_role("alert")).to_contain_text("Ask a head of the lab")
    scan(again, "forgot-password")


# -- (8) hostile text ---------------------------------------------------------------------------------


def test_hostile_text_shows_as_text_and_runs_nothing(console: Server, api: Api, people: People, open_context):
    name = "<img src=x onerror=alert(1)>"
    title = "</script><script>alert(2)</script>"
    pid = make_project(api, people.lead, name)
    headers = api.sign_in(people.lead)
    api.call("POST", f"/api/projects/{pid}/records", headers,
             json={"kind": "<b>bold</b>", "title": title, "data": {"note": "<svg onload=alert(3)>"}})  # fmt: skip
    page = open_context().new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    sign_in(page, console.url, people.lead)
    expect(page.get_by_role("link", name=name)).to_be_visible()
    page.get_by_role("link", name=name).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(name)
    page.get_by_role("navigation", name="Project sections").get_by_role("link", name="Records").click()
    expect(page.get_by_role("cell", name=title, exact=True)).to_be_visible()
    expect(page.get_by_text("<svg onload=alert(3)>", exact=False)).to_be_visible()
    assert page.locator("img[src='x'], main script, main svg[onload], main b").count() == 0
    assert dialogs == []


# -- (10) asking a dataset a question with SQL -----------------------------------------------------------


@pytest.mark.provokes_failed_loads("status of 400")  # a mistyped column, on purpose
def test_a_member_asks_a_dataset_a_question(console: Server, api: Api, people: People, open_context):
    pid = make_project(api, people.lead, "Gust study", (people.student_id, "member"))
    headers = api.sign_in(people.lead)
    dataset_id = ingested(api, headers, pid, "runs.csv", csv_bytes(200), "text/csv")["result"]["dataset_id"]
    page = open_context().new_page()
    sign_in(page, console.url, people.student)
    page.goto(f"{console.url}/datasets/{dataset_id}")
    page.get_by_role("link", name="Query this dataset").click()
    editor = page.get_by_label("SQL", exact=True)
    expect(editor).to_have_value("SELECT *\nFROM runs\nLIMIT 100")
    editor.press("Control+Enter")
    summary = page.get_by_test_id("query-summary")
    expect(summary).to_contain_text("100 rows")
    # the tables beside the editor: a click inserts a column's name where the cursor is
    editor.fill("SELECT count(*) AS n, max() FROM runs")
    editor.evaluate("area => area.setSelectionRange(26, 26)")  # inside max( )
    page.get_by_text("Columns of runs").click()
    page.get_by_role("button", name="Insert column speed").click()
    expect(editor).to_have_value(re.compile(r"max\(speed\)"))
    page.get_by_role("button", name="Run", exact=True).click()
    result = page.get_by_role("table", name="Query result")
    expect(result).to_contain_text("BIGINT")
    expect(result.get_by_role("cell", name="200", exact=True)).to_be_visible()
    expect(summary).to_contain_text("1 row")
    scan(page, "query")
    # an error is shown where the server says it is
    editor.fill("SELECT speed,\n  nope\nFROM runs")
    editor.press("Control+Enter")
    expect(page.get_by_role("alert").first).to_contain_text("nope")
    expect(page.get_by_test_id("sql-position")).to_contain_text("Line 2, column 3")
    assert editor.evaluate("area => area.selectionStart") == len("SELECT speed,\n  ")
    # download, and save the answer as a dataset
    editor.fill("SELECT speed, count(*) AS n FROM runs GROUP BY speed ORDER BY speed")
    editor.press("Control+Enter")
    expect(summary).to_contain_text("rows")
    with page.expect_download() as download:
        page.get_by_role("button", name="Download CSV").click()
    assert download.value.suggested_filename == "query.csv"
    assert next(csv.reader(io.StringIO(Path(download.value.path()).read_text()))) == ["speed", "n"]
    page.get_by_label("New dataset's name").fill("Speeds counted")
    page.get_by_role("button", name="Save as dataset").click()
    saving = page.locator(".job").filter(has_text="Speeds counted")
    expect(saving).to_have_attribute("data-status", "succeeded", timeout=120_000)
    saving.get_by_role("link", name="Open the new dataset").click()
    expect(page.get_by_role("heading", name="Speeds counted")).to_be_visible()
    expect(page.get_by_role("table", name="Statistics per column")).to_contain_text("speed")


def test_a_dataset_of_forty_thousand_columns_is_usable(console: Server, api: Api, people: People, open_context):
    pid = make_project(api, people.lead, "Spectra")
    headers = api.sign_in(people.lead)
    columns = 40_000
    lines = [",".join(f"mz_{c}" for c in range(columns))] + [",".join(str((r + c) % 10) for c in range(columns)) for r in range(5)]
    job = ingested(api, headers, pid, "spectrum.csv", ("\n".join(lines) + "\n").encode(), "text/csv")
    page = open_context().new_page()
    sign_in(page, console.url, people.lead)
    page.goto(f"{console.url}/datasets/{job['result']['dataset_id']}")
    stats = page.get_by_role("table", name="Statistics per column")
    expect(stats.get_by_role("row")).to_have_count(101, timeout=60_000)  # a page of 100 columns and the header
    page.get_by_label("Filter columns").fill("mz_39999")
    expect(stats.get_by_role("row", name=re.compile("^mz_39999"))).to_contain_text("number")
    rows = page.get_by_role("table", name=re.compile("^Rows 1–5 of 5"))
    expect(rows.get_by_role("columnheader")).to_have_count(40)
    page.get_by_role("button", name="Next columns").last.click()  # the rows table's
    expect(rows.get_by_role("columnheader").first).to_have_text("mz_40")
    expect(rows.get_by_role("cell").first).to_have_text("0")  # (0 + 40) % 10


def test_a_five_million_row_dataset_is_charted_and_zoomed_to_its_raw_rows(
    console: Server, api: Api, people: People, open_context
):
    """The chart draws a 5,000,000-row dataset from its summary, keeps a planted spike's extremes on
    screen at every zoom, shows the raw rows at 0.1 % of the range, and double-click shows it all."""
    rows, spike = 5_000_000, 3_141_592
    t = np.arange(rows) * 0.001
    signal = np.sin(t / 40.0)
    signal[spike], signal[spike + 3] = 1000.0, -1000.0
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as handle:
        handle["time"] = t
        handle["time"].attrs["units"] = "s"
        handle["signal"] = signal
        handle["signal"].attrs["units"] = "V"
    pid = make_project(api, people.lead, "Long run")
    headers = api.sign_in(people.lead)
    job = ingested(api, headers, pid, "long.h5", buffer.getvalue(), "application/x-hdf5")
    page = open_context().new_page()
    sign_in(page, console.url, people.lead)
    page.goto(f"{console.url}/datasets/{job['result']['dataset_id']}")
    chart = page.locator(".chart")
    expect(chart).to_have_attribute("data-rows", f"0-{rows}", timeout=120_000)
    drawn = page.wait_for_function("() => document.querySelector('.chart')?.chart?.data?.[0]?.length > 0")
    drawn.dispose()
    took = page.evaluate("Number(document.querySelector('.chart').dataset.drawnAt) - performance.getEntriesByType('navigation')[0].loadEventEnd")
    print(f"\n5,000,000 rows drawn {took:.0f} ms after the page's load event")  # reported in the note
    expect(page.get_by_role("img", name=re.compile("Line chart of signal against time"))).to_be_visible()
    expect(page.get_by_label("X axis")).to_have_value("time")
    # the page for people: sizes in binary units, what the file said about itself, each column's shape
    expect(page.get_by_text(re.compile(r"5,000,000 rows · 2 columns .* \(76\.3 MiB; [\d.]+ MiB stored\) · made .*ago"))).to_be_visible()
    expect(page.get_by_role("region", name="Metadata")).to_be_visible()
    signal_row = page.get_by_role("table", name="Statistics per column").get_by_role("row", name=re.compile("^signal"))
    expect(signal_row.locator("svg.spark path")).to_have_attribute("d", re.compile(r"^M0\.0 "))

    def on_screen() -> tuple[float, float, str]:
        return page.evaluate("""() => { const u = document.querySelector('.chart').chart;
            const ys = u.data[1].filter((v) => v !== null && v !== undefined);
            return [Math.max(...ys), Math.min(...ys), u.scales.y.max, u.scales.y.min]; }""")

    high, low, top, bottom = on_screen()
    assert (high, low) == (1000.0, -1000.0)
    assert top >= 1000.0
    assert bottom <= -1000.0
    # hover reads values in the legend; dark mode draws the axes in the dark theme's text colour
    over = page.locator(".chart .u-over").bounding_box()
    page.mouse.move(over["x"] + over["width"] / 3, over["y"] + over["height"] / 2)
    expect(page.locator(".chart .u-legend .u-series").nth(1).locator(".u-value")).to_have_text(re.compile(r"^-?\d"))
    light = page.evaluate("document.querySelector('.chart').chart.axes[0].stroke(document.querySelector('.chart').chart, 0)")
    page.emulate_media(color_scheme="dark")
    page.wait_for_function(f"() => document.querySelector('.chart')?.chart?.axes[0].stroke(document.querySelector('.chart').chart, 0) !== {light!r}")
    screenshot(page, "chart-dark")
    page.emulate_media(color_scheme="light")
    page.wait_for_function(f"() => document.querySelector('.chart')?.chart?.axes[0].stroke(document.querySelector('.chart').chart, 0) === {light!r}")
    previous = f"0-{rows}"
    for _ in range(2):  # two drags of 30 px around the spike: about 2.5 %, then under 0.1 % of the range
        box = page.locator(".chart .u-over").bounding_box()
        at = page.evaluate(f"document.querySelector('.chart').chart.valToPos({t[spike]}, 'x')")
        middle = box["y"] + box["height"] / 2
        page.mouse.move(box["x"] + at - 15, middle)
        page.mouse.down()
        page.mouse.move(box["x"] + at + 15, middle, steps=5)
        page.mouse.up()
        expect(chart).not_to_have_attribute("data-rows", previous, timeout=60_000)
        expect(chart).to_have_attribute("data-state", "ready", timeout=60_000)
        previous = chart.get_attribute("data-rows")
        high, low, top, bottom = on_screen()
        assert (high, low) == (1000.0, -1000.0), previous
        assert top >= 1000.0
        assert bottom <= -1000.0
    first, last = (int(v) for v in previous.split("-"))
    assert last - first < rows * 0.001, previous
    expect(chart).to_have_attribute("data-source", "raw")
    scan(page, "chart")
    page.get_by_role("button", name="Show the chart's data as a table").click()
    expect(page.get_by_role("table", name=re.compile("^Chart data"))).to_contain_text("every row in the range")
    page.locator(".chart .u-over").dblclick()
    expect(chart).to_have_attribute("data-rows", f"0-{rows}", timeout=60_000)


def test_a_member_adds_a_new_version_and_looks_back_at_the_first(
    console: Server, api: Api, people: People, open_context
):
    pid = make_project(api, people.lead, "Versioned runs", (people.student_id, "member"))
    headers = api.sign_in(people.lead)
    dataset_id = ingested(api, headers, pid, "runs.csv", csv_bytes(200), "text/csv")["result"]["dataset_id"]
    page = open_context().new_page()
    sign_in(page, console.url, people.student)
    page.goto(f"{console.url}/datasets/{dataset_id}")
    expect(page.get_by_role("heading", name="runs.csv", exact=True)).to_be_visible()
    page.get_by_role("button", name="Add a new version…").click()
    page.get_by_label("File for the new version").set_input_files(files(("runs-day2.csv", csv_bytes(350), "text/csv")))
    page.get_by_role("button", name="Upload as a new version").click()
    expect(page.get_by_role("heading", name="runs.csv version 2")).to_be_visible(timeout=120_000)
    listed = page.get_by_role("list", name="Versions of this dataset")
    expect(listed.get_by_role("listitem")).to_have_count(2)
    expect(listed).to_contain_text("runs-day2.csv")
    expect(page.get_by_text("350 rows ·").first).to_be_visible()
    # what changed: 150 rows more, found by their time
    compare = page.get_by_role("form", name="Compare versions")
    expect(compare.get_by_label("From")).to_have_value("1")
    compare.get_by_label("Key columns (comma separated)").fill("time")
    compare.get_by_role("button", name="Compare").click()
    expect(compare.get_by_test_id("row-delta")).to_contain_text("200 → 350 (+150)")
    expect(compare.get_by_test_id("row-counts")).to_contain_text("150 rows added, 0 removed, 0 changed")
    expect(compare.get_by_role("table", name="Rows added (the first 100)")).to_contain_text("20.5")
    expect(compare.get_by_role("table", name=re.compile("^Statistics: before"))).to_contain_text("200 → 350 (+150)")
    scan(page, "dataset-versions")
    listed.get_by_role("link", name="Version 1").click()
    expect(page).to_have_url(re.compile(r"\?version=1$"))
    expect(page.get_by_role("status").filter(has_text="You are looking at version 1 of 2")).to_be_visible()
    expect(page.get_by_role("table", name=re.compile(r"^Rows 1–50 of 200$"))).to_be_visible()
    page.get_by_role("link", name="Go to the latest").click()
    expect(page.get_by_role("table", name=re.compile(r"^Rows 1–50 of 350$"))).to_be_visible()


@pytest.mark.provokes_failed_loads("status of 404")  # the unpublished page, on purpose
def test_a_lead_sees_where_a_dataset_came_from_and_publishes_it(
    console: Server, api: Api, people: People, open_context
):
    pid = make_project(api, people.lead, "Published runs")
    headers = api.sign_in(people.lead)
    dataset_id = ingested(api, headers, pid, "gusts.csv", csv_bytes(120), "text/csv")["result"]["dataset_id"]
    api.call("POST", f"/api/projects/{pid}/records", headers,
             json={"kind": "note", "title": "Gusts look high", "dataset_ids": [dataset_id]})  # fmt: skip
    page = open_context().new_page()
    sign_in(page, console.url, people.lead)
    page.goto(f"{console.url}/datasets/{dataset_id}")
    graph = page.get_by_role("region", name="Lineage graph")
    expect(graph.locator("[data-key^='file:']")).to_contain_text("gusts.csv")
    expect(graph.locator("[data-key^='ingestion:']")).to_be_visible()
    expect(graph.locator("[data-key^='record:']")).to_contain_text("Gusts look high")
    page.get_by_text("The lineage in words").click()
    expect(page.get_by_role("listitem").filter(has_text="cites dataset")).to_have_count(1)
    page.get_by_role("button", name="Publish this version…").click()
    form = page.get_by_role("form", name="Publish this version")
    form.get_by_label("Licence", exact=True).select_option("CC0-1.0")
    form.get_by_label("Description").fill("Gust speeds on the roof, spring 2026.")
    form.get_by_role("button", name="Publish").click()
    published = page.get_by_test_id("published")
    expect(published).to_contain_text("/d/gusts-v1")
    scan(page, "dataset-lineage-publishing")
    # the public page, without a session
    public = open_context().new_page()
    public.goto(f"{console.url}/d/gusts-v1")
    expect(public.get_by_role("heading", name="gusts.csv", level=1)).to_be_visible()
    expect(public.get_by_text("Gust speeds on the roof, spring 2026.")).to_be_visible()
    assert "CC0-1.0" in public.locator("a[rel=license]").inner_text()
    ld = public.locator("script[type='application/ld+json']").text_content()
    assert '"@type": "Dataset"' in ld
    scan(public, "public-dataset-page")
    with public.expect_download() as download:
        public.get_by_role("link", name="CSV", exact=True).click()
    assert Path(download.value.path()).read_text().splitlines()[0] == "time,speed,label"
    page.get_by_role("button", name="Unpublish").click()
    expect(page.get_by_role("button", name="Publish this version…")).to_be_visible()
    assert public.goto(f"{console.url}/d/gusts-v1").status == 404
