"""Mail from the durable outbox to a real SMTP server (aiosmtpd): meeting invitations read back with
the strict `ical` parser, cancellations, job notices, opt-outs, an SMTP outage, a refused recipient,
and a restart between queueing and sending."""

from __future__ import annotations

import ssl
from datetime import UTC, datetime, timedelta

import pytest
import trustme
from ical.calendar_stream import IcsCalendarStream

from handlers.keys import ACCOUNTS, JOBS, MONGO
from server import create_app
from tests.api.test_tokens import bearer, make_token
from tests.conftest import FAST_JOBS, create_account, make_settings, problem, wait_until
from tests.mailbox import Mailbox, Received, mail_settings

PUBLIC = "https://labhub.lab.example"


def settings_for(services, tmp_path, port: int, **mail):
    return make_settings(
        services, tmp_path, http={"public_url": PUBLIC}, mail=mail_settings(port, **mail),
        jobs={**FAST_JOBS, "plugins": ["tests.jobkinds:TEST_KINDS"]}, pool={"max_workers": 2, "min_workers": 2},
    )  # fmt: skip


@pytest.fixture
def settings(services, tmp_path, mailbox):
    return settings_for(services, tmp_path, mailbox.port)


def soon(hours: float) -> str:
    return (datetime.now(UTC) + timedelta(hours=hours)).replace(microsecond=0).isoformat()


def invitation(mail: Received):
    """The calendar part as Outlook or Gmail reads it: text/calendar with a method parameter."""
    part = next(p for p in mail.message.walk() if p.get_content_type() == "text/calendar")
    calendar = IcsCalendarStream.calendar_from_ics(str(part.get_content()))
    assert calendar.method == part.get_param("method")
    [event] = calendar.events
    return calendar, event


async def outbox_counts(client, head) -> dict[str, int]:
    system = await (await client.get("/api/system", headers=head.headers)).json()
    return system["mail"]["counts"]


async def all_sent(client, head, total: int) -> bool:
    counts = await outbox_counts(client, head)
    return counts["sent"] == total and counts["queued"] == counts["sending"] == 0


async def test_invitations_changes_and_cancellations_reach_calendars(client, team, mailbox):
    body = {"title": "Rig <review> & plan", "starts_at": soon(24), "duration_minutes": 45, "location": "Room 2",
            "agenda": "1. <script>alert(1)</script>", "attendee_ids": [team.member.id, team.viewer.id, team.lead.id]}  # fmt: skip
    created = await client.post(
        f"/api/projects/{team.project_id}/meetings", json=body, headers=team.lead.headers
    )
    assert created.status == 201, await created.text()
    meeting = await created.json()
    mails = await mailbox.wait_for(2)
    assert sorted(m.recipients[0] for m in mails) == sorted(
        [team.member.email, team.viewer.email]
    )  # not the organiser
    mail = mailbox.to(team.member.email)[0]
    calendar, event = invitation(mail)
    assert calendar.method == "REQUEST"
    assert event.uid == f"{meeting['id']}@meetings.labhub"
    assert event.sequence == 0
    assert event.summary == "Rig <review> & plan"
    assert event.organizer.uri == f"mailto:{team.lead.email}"
    attendees = {a.uri: a for a in event.attendees}
    assert f"mailto:{team.member.email}" in attendees
    assert attendees[f"mailto:{team.member.email}"].status == "NEEDS-ACTION"
    assert attendees[f"mailto:{team.member.email}"].rsvp is True
    message = mail.message
    assert message["Subject"].startswith("Invitation: Rig <review> & plan (")
    assert message["List-Unsubscribe"] == f"<{PUBLIC}/account#notifications>"
    page = mail.part("text/html")
    assert "&lt;script&gt;" in page
    assert "<script>" not in page
    assert "Rig &lt;review&gt; &amp; plan" in page
    assert f"{PUBLIC}/meetings/{meeting['id']}" in mail.part("text/plain")

    # the member answers in LabHub; a change of time goes to everyone with a higher SEQUENCE and the answer
    assert (
        await client.post(
            f"/api/meetings/{meeting['id']}/rsvp", json={"response": "yes"}, headers=team.member.headers
        )
    ).status == 200
    changed = await client.patch(
        f"/api/meetings/{meeting['id']}", json={"starts_at": soon(30)}, headers=team.lead.headers
    )
    assert changed.status == 200, await changed.text()
    await mailbox.wait_for(4)
    update = mailbox.to(team.member.email)[-1]
    calendar, event = invitation(update)
    assert calendar.method == "REQUEST"
    assert event.uid == f"{meeting['id']}@meetings.labhub"
    assert event.sequence > 0
    assert {a.uri: a.status for a in event.attendees}[f"mailto:{team.member.email}"] == "ACCEPTED"
    assert update.message["Subject"].startswith("Updated: ")

    # the viewer is taken off the list: a CANCEL for them alone
    dropped = await client.patch(f"/api/meetings/{meeting['id']}", json={"attendee_ids": [team.member.id, team.lead.id]},
                                 headers=team.lead.headers)  # fmt: skip
    assert dropped.status == 200
    await mailbox.wait_for(5)
    calendar, event = invitation(mailbox.to(team.viewer.email)[-1])
    assert calendar.method == "CANCEL"
    assert event.status == "CANCELLED"
    assert [a.uri for a in event.attendees] == [f"mailto:{team.viewer.email}"]

    # cancelled: everyone still invited gets a CANCEL with the same UID
    sequence_before = event.sequence
    assert (await client.delete(f"/api/meetings/{meeting['id']}", headers=team.lead.headers)).status in {
        200,
        204,
    }
    await mailbox.wait_for(6)
    cancel = mailbox.to(team.member.email)[-1]
    calendar, event = invitation(cancel)
    assert calendar.method == "CANCEL"
    assert event.uid == f"{meeting['id']}@meetings.labhub"
    assert event.sequence > sequence_before
    assert cancel.message["Subject"].startswith("Cancelled: ")
    assert len(mailbox.to(team.lead.email)) == 0  # the organiser did all this and is mailed nothing
    assert await wait_until(lambda: all_sent(client, team.head, 6))


async def test_each_person_chooses_which_mail_they_get(client, team, mailbox):
    url = "/api/users/me/notification-settings"
    assert await (await client.get(url, headers=team.member.headers)).json() == {
        "meeting_invitations": True, "job_notices": True}  # fmt: skip
    turned = await client.patch(url, json={"meeting_invitations": False}, headers=team.member.headers)
    assert await turned.json() == {"meeting_invitations": False, "job_notices": True}
    assert await (await client.get(url, headers=team.member.headers)).json() == await turned.json()
    await problem(await client.patch(url, json={}, headers=team.member.headers), 422)
    await problem(await client.patch(url, json={"job_notices": "maybe"}, headers=team.member.headers), 422)
    await problem(await client.get(url), 401)

    body = {"title": "Sync", "starts_at": soon(5), "attendee_ids": [team.member.id, team.viewer.id]}
    created = await client.post(
        f"/api/projects/{team.project_id}/meetings", json=body, headers=team.lead.headers
    )
    assert created.status == 201
    await wait_until(lambda: all_sent(client, team.head, 1))
    assert [m.recipients for m in mailbox.received] == [[team.viewer.email]]
    # the choice is stored with the account and nowhere else
    assert (await client.get(url, headers=team.viewer.headers)).status == 200


async def run_job(client, account, project_id, **params) -> dict:
    user = await client.app[ACCOUNTS].get_active(account.id)
    job = await client.app[JOBS].submit(
        user, project_id, "test.sleepy", {"steps": 1, "delay": 0.01, **params}
    )

    async def done():
        body = await (await client.get(f"/api/jobs/{job.id}", headers=account.headers)).json()
        return body if body["status"] in {"succeeded", "failed", "cancelled"} else None

    return await wait_until(done, timeout_s=60)


async def test_job_notices_go_to_the_owner_for_failures_and_long_jobs(
    aiohttp_client, services, tmp_path, mailbox
):
    client = await aiohttp_client(
        create_app(settings_for(services, tmp_path, mailbox.port, job_notice_after_s=3600.0))
    )
    owner = await create_account(client, "researcher", name="Olga Owner")
    head = await create_account(client, "DH")
    project = await (
        await client.post("/api/projects", json={"name": "Flight <tests>"}, headers=owner.headers)
    ).json()
    quick = await run_job(client, owner, project["id"])
    assert quick["status"] == "succeeded"
    failed = await run_job(client, owner, project["id"], fail=True)
    assert failed["status"] == "failed"
    [mail] = await mailbox.wait_for(1)
    assert mail.recipients == [owner.email]
    assert mail.message["Subject"] == "Test job failed in Flight <tests>"
    text = mail.part("text/plain")
    assert "the input file has no numeric columns" in text
    assert f"{PUBLIC}/jobs" in text
    assert "Flight &lt;tests&gt;" in mail.part("text/html")
    await wait_until(lambda: all_sent(client, head, 1))
    assert len(mailbox.received) == 1  # the quick success mailed nobody

    # opted out: a failure mails nothing (the notification in LabHub still comes)
    url = "/api/users/me/notification-settings"
    assert (await client.patch(url, json={"job_notices": False}, headers=owner.headers)).status == 200
    assert (await run_job(client, owner, project["id"], fail=True))["status"] == "failed"
    assert await client.app[MONGO]["mail_outbox"].count_documents({}) == 1


async def test_a_job_longer_than_the_threshold_mails_its_owner(aiohttp_client, services, tmp_path, mailbox):
    client = await aiohttp_client(
        create_app(settings_for(services, tmp_path, mailbox.port, job_notice_after_s=0.05))
    )
    owner = await create_account(client, "researcher")
    project = await (await client.post("/api/projects", json={"name": "Wind"}, headers=owner.headers)).json()
    assert (await run_job(client, owner, project["id"], steps=3, delay=0.1))["status"] == "succeeded"
    [mail] = await mailbox.wait_for(1)
    assert mail.message["Subject"] == "Test job finished in Wind"
    assert "It ran for" in mail.part("text/plain")


async def test_an_smtp_outage_is_retried_and_heads_see_it(client, team, mailbox):
    mailbox.stop()
    link = await client.post(f"/api/users/{team.member.id}/password-reset", headers=team.head.headers)
    assert link.status == 201  # a head's link is handed over, not mailed
    body = {"title": "Outage", "starts_at": soon(3), "attendee_ids": [team.member.id]}
    assert (
        await client.post(f"/api/projects/{team.project_id}/meetings", json=body, headers=team.lead.headers)
    ).status == 201

    async def troubled():
        system = await (await client.get("/api/system", headers=team.head.headers)).json()
        return system["mail"]["troubles"]

    [trouble] = await wait_until(troubled)
    assert trouble["status"] == "queued"
    assert trouble["attempts"] >= 1
    assert "cannot reach" in trouble["error"]
    assert trouble["recipient"] == team.member.email
    mailbox.start()
    [mail] = await mailbox.wait_for(1)
    assert mail.recipients == [team.member.email]
    assert await wait_until(lambda: all_sent(client, team.head, 1))
    assert len(mailbox.received) == 1


async def test_a_refused_recipient_is_given_up_and_shown(client, team, mailbox):
    mailbox.refuse.add(team.member.email)
    body = {"title": "Refused", "starts_at": soon(3), "attendee_ids": [team.member.id, team.viewer.id]}
    assert (
        await client.post(f"/api/projects/{team.project_id}/meetings", json=body, headers=team.lead.headers)
    ).status == 201

    async def failed():
        counts = await outbox_counts(client, team.head)
        return counts["failed"] == 1 and counts["sent"] == 1

    await wait_until(failed)
    system = await (await client.get("/api/system", headers=team.head.headers)).json()
    [trouble] = system["mail"]["troubles"]
    assert trouble["status"] == "failed"
    assert trouble["attempts"] == 1  # a 5xx is the relay's final word: not tried again
    assert "550" in trouble["error"]
    assert [m.recipients for m in mailbox.received] == [[team.viewer.email]]
    # heads only
    await problem(await client.get("/api/system", headers=team.member.headers), 403)


async def test_mail_queued_before_a_restart_is_sent_once_after_it(
    aiohttp_client, services, tmp_path, mailbox
):
    settings = settings_for(services, tmp_path, mailbox.port)
    mailbox.stop()  # the relay is down while the first instance runs
    first = await aiohttp_client(create_app(settings))
    lead = await create_account(first, "researcher")
    member = await create_account(first, "student")
    head = await create_account(first, "DH")
    project = await (await first.post("/api/projects", json={"name": "Restart"}, headers=lead.headers)).json()
    added = await first.post(f"/api/projects/{project['id']}/members", json={"user_id": member.id, "role": "member"},
                             headers=lead.headers)  # fmt: skip
    assert added.status == 201
    body = {"title": "After the restart", "starts_at": soon(3), "attendee_ids": [member.id]}
    assert (
        await first.post(f"/api/projects/{project['id']}/meetings", json=body, headers=lead.headers)
    ).status == 201
    counts = await outbox_counts(first, head)
    assert counts["queued"] + counts["sending"] == 1, counts
    await first.close()  # the server stops with the mail still queued

    mailbox.start()
    second = await aiohttp_client(create_app(settings))  # a new process on the same data
    [mail] = await mailbox.wait_for(1)
    assert mail.recipients == [member.email]
    assert await wait_until(lambda: all_sent(second, head, 1))
    assert len(mailbox.received) == 1


async def test_a_token_reads_settings_only_with_the_admin_scope(client, team):
    read = await make_token(client, team.member, scopes=["read"])
    await problem(await client.get("/api/users/me/notification-settings", headers=bearer(read)), 403)


# the test relay warns that implicit TLS is not STARTTLS; the connection is TLS all the same
@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
@pytest.mark.parametrize("security", ["starttls", "tls"])
async def test_mail_goes_over_tls_with_a_login_to_a_relay_with_the_labs_own_ca(
    aiohttp_client, services, tmp_path, security
):
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    ca_file = tmp_path / "lab-ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    relay = Mailbox(security, context, login=("labhub", "relay secret"))
    relay.start()
    try:
        settings = settings_for(services, tmp_path, relay.port, security=security, username="labhub",
                                password="relay secret", ca_file=str(ca_file))  # fmt: skip
        client = await aiohttp_client(create_app(settings))
        lead = await create_account(client, "researcher")
        member = await create_account(client, "student")
        project = await (
            await client.post("/api/projects", json={"name": "TLS"}, headers=lead.headers)
        ).json()
        await client.post(f"/api/projects/{project['id']}/members", json={"user_id": member.id, "role": "member"},
                          headers=lead.headers)  # fmt: skip
        body = {"title": "Over TLS", "starts_at": soon(3), "attendee_ids": [member.id]}
        assert (
            await client.post(f"/api/projects/{project['id']}/meetings", json=body, headers=lead.headers)
        ).status == 201
        [mail] = await relay.wait_for(1)
        assert mail.recipients == [member.email]
        assert relay.logins == ["labhub"]
    finally:
        relay.stop()
