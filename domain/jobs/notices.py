"""Job notices by mail: a job that failed, or ran longer than mail.job_notice_after_s, mails its
owner (unless they turned job notices off)."""

from __future__ import annotations

import attrs

from domain.accounts.models import User
from domain.accounts.people import People
from domain.jobs.models import Job, JobStatus
from domain.mail.letters import Letter, Sender, footer
from domain.mail.service import MailService
from domain.notifications.service import NotificationsService
from domain.projects.service import ProjectGate


class JobNotices:
    """Finish listeners of the scheduler (domain/assembly.py): the owner hears of each job that
    succeeded or failed in the app, and by mail when it failed or ran long."""

    def __init__(
        self, notifications: NotificationsService, mail: MailService, people: People, gate: ProjectGate, *,
        after_s: float,
    ) -> None:  # fmt: skip
        self._notifications = notifications
        self._mail = mail
        self._people = people
        self._gate = gate
        self._after_s = after_s

    async def in_app(self, job: Job, title: str) -> None:
        verb = "finished" if job.status is JobStatus.SUCCEEDED else "failed"
        await self._notifications.notify(
            job.owner_id, project_id=job.project_id, category="job", title=f"{title} {verb}",
            body=job.error.message if job.error else "", link=f"/api/jobs/{job.id}",
        )  # fmt: skip

    async def by_mail(self, job: Job, title: str) -> None:
        if not self._mail.enabled or job.status not in {JobStatus.SUCCEEDED, JobStatus.FAILED}:
            return
        ran_s = (
            (job.finished_at - job.started_at).total_seconds() if job.finished_at and job.started_at else None
        )
        failed = job.status is JobStatus.FAILED
        if not failed and (ran_s is None or ran_s <= self._after_s):
            return
        user = await self._people.get(job.owner_id)
        if user is None or not user.active:
            return
        if not (await self._people.notification_settings([user.id]))[user.id].job_notices:
            return
        name = await self._gate.name_of(job.project_id)
        facts = JobFacts(
            title=title, succeeded=not failed, project=name or "(deleted)",
            error=job.error.message if job.error else None, ran_s=ran_s, job_id=job.id,
        )  # fmt: skip
        await self._mail.send([(user, "job", job_letter(self._mail.sender, user, facts))])


@attrs.frozen
class JobFacts:
    title: str  # the kind's title, e.g. "Ingestion"
    succeeded: bool
    project: str
    error: str | None
    ran_s: float | None
    job_id: str


def _duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {secs:02d} s"


def job_letter(sender: Sender, user: User, facts: JobFacts) -> Letter:
    verb = "finished" if facts.succeeded else "failed"
    lines = [f"Hello {user.name},", f"your {facts.title.lower()} in the project “{facts.project}” {verb}."]
    if facts.ran_s is not None:
        lines.append(f"It ran for {_duration(facts.ran_s)}.")
    if facts.error:
        lines.append(f"What went wrong: {facts.error}")
    lines += ["Your jobs in LabHub:", sender.link("/jobs"), footer(sender, "job notices")]
    return Letter(subject=f"{facts.title} {verb} in {facts.project}", paragraphs=lines)
