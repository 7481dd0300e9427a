"""Meetings service: schedule, revise and cancel meetings, collect answers and attendance, and tell
the attendees (docs/architecture.md, "Access rules": a non-member gets 404)."""

from __future__ import annotations

import logging
from datetime import datetime
from zoneinfo import ZoneInfo

import attrs

from domain.accounts.models import User
from domain.accounts.people import People
from domain.core.clock import utcnow
from domain.core.errors import Conflict, Forbidden, NotFound, field_error
from domain.core.pagination import Page, clamp_limit
from domain.meetings.invitations import Invitations
from domain.meetings.models import (
    ATTENDEE_FIELDS,
    NOTIFIED_FIELDS,
    AttendanceInput,
    Meeting,
    MeetingChanges,
    MeetingInput,
    MeetingStatus,
    RsvpResponse,
    attendance_changes,
    checked_fields,
    ends_at,
    people_outside,
)
from domain.meetings.store import MeetingStore
from domain.notifications.service import NotificationsService
from domain.projects.audit import AuditLog
from domain.projects.models import Need, Project, TargetType, check_active, diff, manages
from domain.projects.service import ProjectGate

log = logging.getLogger("labhub.meetings")

MAX_RETRIES = 8


@attrs.frozen
class Calendar:
    """What a calendar file is made of: the meetings, the project and the people on them."""

    project: Project
    meetings: list[Meeting]
    people: dict[str, User]


def _members(project: Project) -> set[str]:
    return {m.user_id for m in project.members}


def _organises(actor: User, project: Project, meeting: Meeting) -> bool:
    return actor.id == meeting.created_by or manages(actor, project)


class MeetingsService:
    def __init__(
        self,
        gate: ProjectGate,
        store: MeetingStore,
        users: People,
        notifications: NotificationsService,
        audit: AuditLog,
        invitations: Invitations,
        *,
        zone: ZoneInfo,
    ) -> None:
        self._invitations = invitations
        self._gate = gate
        self._store = store
        self._users = users
        self._notifications = notifications
        self._audit = audit
        self._zone = zone

    # -- scheduling --------------------------------------------------------------------------------

    async def create(self, actor: User, project_id: str, body: MeetingInput) -> Meeting:
        project = await self._gate.require(actor, project_id, Need.WRITE)
        fields = checked_fields(attrs.asdict(body, recurse=False))
        people_outside(fields, _members(project))
        fields["ends_at"] = ends_at(fields["starts_at"], fields["duration_minutes"])
        meeting = await self._store.insert(project.id, actor.id, fields, utcnow())
        await self._audit.record(
            project_id=project.id, actor_id=actor.id, action="meeting.created", target_type=TargetType.MEETING,
            target_id=meeting.id, changes=diff({}, {"title": meeting.title, "starts_at": meeting.starts_at}),
            at=meeting.created_at,
        )  # fmt: skip
        await self._tell(actor, meeting.attendee_ids, "meeting.invited", "Invitation", meeting)
        await self._mail_about(actor, None, meeting)
        return meeting

    async def list_meetings(
        self, actor: User, project_id: str, *, start_from: datetime | None, start_to: datetime | None,
        limit: int | None, cursor: str | None,
    ) -> Page[Meeting]:  # fmt: skip
        project = await self._gate.require(actor, project_id, Need.READ)
        if start_from and start_to and start_to <= start_from:
            raise field_error("$.to", "must be after from")
        meetings, next_cursor = await self._store.page(
            project.id, start_from=start_from, start_to=start_to, now=utcnow(), limit=clamp_limit(limit),
            cursor=cursor,
        )  # fmt: skip
        return Page(meetings, next_cursor)

    async def get(self, actor: User, meeting_id: str, need: Need = Need.READ) -> tuple[Meeting, Project]:
        meeting = await self._store.get(meeting_id)
        if meeting is None:
            raise NotFound("meeting not found")
        project = await self._gate.require(actor, meeting.project_id, need, what="meeting")
        return meeting, project

    async def update(self, actor: User, meeting_id: str, changes: MeetingChanges) -> Meeting:
        requested = checked_fields(attrs.asdict(changes, recurse=False))
        if not requested:
            raise field_error("$", "nothing to change")
        for _ in range(MAX_RETRIES):
            meeting, project = await self.get(actor, meeting_id, Need.WRITE)
            if meeting.status is MeetingStatus.CANCELLED:
                raise Conflict("the meeting is cancelled and can no longer change", code="meeting_cancelled")
            if not _organises(actor, project, meeting):
                if actor.id not in meeting.attendee_ids:
                    raise Forbidden(
                        "only the organiser, the project's leads and heads can change this meeting",
                        code="not_owner",
                    )
                if set(requested) - ATTENDEE_FIELDS:
                    raise Forbidden(
                        "attendees can change the notes and action items; the organiser, leads and heads the rest",
                        code="not_owner",
                    )
            people_outside(requested, _members(project), kept=set(meeting.attendee_ids))
            fields = {k: v for k, v in requested.items() if getattr(meeting, k) != v}
            if "starts_at" in fields or "duration_minutes" in fields:
                fields["ends_at"] = ends_at(
                    fields.get("starts_at", meeting.starts_at),
                    fields.get("duration_minutes", meeting.duration_minutes),
                )
            if not fields:
                return meeting  # nothing differs: no new revision, no notifications
            updated = await self._store.revise(meeting, fields, utcnow())
            if updated is None:
                continue  # revised by someone else meanwhile: read it again
            await self._audit.record(
                project_id=project.id, actor_id=actor.id, action="meeting.updated",
                target_type=TargetType.MEETING, target_id=meeting.id,
                changes=diff({k: getattr(meeting, k) for k in fields}, fields), at=updated.updated_at,
            )  # fmt: skip
            await self._tell_revision(actor, meeting, updated, set(fields))
            await self._mail_about(actor, meeting, updated, set(fields))
            return updated
        raise Conflict("the meeting changed too often while saving; try again", code="busy")

    async def cancel(self, actor: User, meeting_id: str) -> Meeting:
        for _ in range(MAX_RETRIES):
            meeting, project = await self.get(actor, meeting_id, Need.WRITE)
            if not _organises(actor, project, meeting):
                raise Forbidden(
                    "only the organiser, the project's leads and heads can cancel this meeting",
                    code="not_owner",
                )
            if meeting.status is MeetingStatus.CANCELLED:
                return meeting
            now = utcnow()
            updated = await self._store.revise(
                meeting, {"status": MeetingStatus.CANCELLED.value, "cancelled_at": now}, now
            )
            if updated is None:
                continue
            await self._audit.record(
                project_id=project.id, actor_id=actor.id, action="meeting.cancelled",
                target_type=TargetType.MEETING, target_id=meeting.id,
                changes=diff({"status": meeting.status}, {"status": updated.status}), at=now,
            )  # fmt: skip
            await self._tell(actor, updated.attendee_ids, "meeting.cancelled", "Cancelled", updated)
            await self._mail_about(actor, meeting, updated)
            return updated
        raise Conflict("the meeting changed too often while saving; try again", code="busy")

    # -- answers and attendance ------------------------------------------------------------------

    async def rsvp(self, actor: User, meeting_id: str, response: RsvpResponse) -> Meeting:
        meeting, project = await self.get(actor, meeting_id)
        check_active(project)
        if actor.id not in meeting.attendee_ids:
            raise Forbidden("only the people invited to this meeting can answer", code="not_attendee")
        self._check_scheduled(meeting)
        if utcnow() >= meeting.ends_at:
            raise Conflict("the meeting is over; answers are closed", code="meeting_over")
        updated = await self._store.set_rsvp(meeting.id, actor.id, response, utcnow())
        if updated is None:
            raise Conflict("the meeting was cancelled", code="meeting_cancelled")
        return updated

    async def record_attendance(self, actor: User, meeting_id: str, body: AttendanceInput) -> Meeting:
        meeting, project = await self.get(actor, meeting_id, Need.MANAGE)
        self._check_scheduled(meeting)
        if not meeting.started(utcnow()):
            raise Conflict("attendance can be taken once the meeting has started", code="meeting_not_started")
        marks = attendance_changes(body, set(meeting.attendee_ids) | _members(project))
        now = utcnow()
        updated = await self._store.set_attendance(meeting.id, marks, actor.id, now)
        if updated is None:
            raise Conflict("the meeting was cancelled", code="meeting_cancelled")
        await self._audit.record(
            project_id=project.id, actor_id=actor.id, action="meeting.attendance",
            target_type=TargetType.MEETING, target_id=meeting.id,
            changes=diff({}, {f"attendance:{u}": p for u, p in marks.items()}), at=now,
        )  # fmt: skip
        return updated

    @staticmethod
    def _check_scheduled(meeting: Meeting) -> None:
        if meeting.status is MeetingStatus.CANCELLED:
            raise Conflict("the meeting is cancelled", code="meeting_cancelled")

    # -- calendars -----------------------------------------------------------------------------------

    async def calendar_of(self, actor: User, meeting_id: str) -> Calendar:
        meeting, project = await self.get(actor, meeting_id)
        return Calendar(project, [meeting], await self._people([meeting]))

    async def project_calendar(self, actor: User, project_id: str) -> Calendar:
        project = await self._gate.require(actor, project_id, Need.READ)
        meetings = await self._store.feed(project.id)
        return Calendar(project, meetings, await self._people(meetings))

    async def _people(self, meetings: list[Meeting]) -> dict[str, User]:
        ids = {u for m in meetings for u in (m.created_by, *m.attendee_ids)}
        return await self._users.get_many(sorted(ids))

    async def held_between(self, project_id: str, start: datetime, end: datetime) -> list[Meeting]:
        """For the engagement summary (which has checked the caller): meetings held (not cancelled)
        that started in [start, end), with their attendance."""
        return await self._store.attendance_between(project_id, start, end)

    async def purge_project(self, project_id: str) -> None:
        await self._store.delete_project(project_id)

    # -- notifications -------------------------------------------------------------------------------

    def _when(self, meeting: Meeting) -> str:
        local = meeting.starts_at.astimezone(self._zone)
        place = meeting.location or meeting.link or ""
        text = f"{local:%a %d %b %Y, %H:%M} ({self._zone.key}), {meeting.duration_minutes} min"
        return f"{text} · {place}" if place else text

    async def _tell(
        self, actor: User, user_ids: list[str], category: str, prefix: str, meeting: Meeting
    ) -> None:
        for user_id in user_ids:
            if user_id == actor.id:
                continue  # nobody is told about what they did themselves
            try:
                await self._notifications.notify(
                    user_id, project_id=meeting.project_id, category=category, title=f"{prefix}: {meeting.title}", body=self._when(meeting),
                    link=f"/api/meetings/{meeting.id}",
                )  # fmt: skip
            except Exception:  # the meeting is saved; a lost notice must not turn that into an error
                log.exception(
                    "meeting notification failed", extra={"meeting_id": meeting.id, "user_id": user_id}
                )

    async def _mail_about(
        self, actor: User, before: Meeting | None, after: Meeting, changed: set[str] | None = None
    ) -> None:
        try:
            await self._invitations.meeting_changed(actor, before, after, changed or set())
        except Exception:  # the meeting is saved; a mail that cannot be queued must not undo that
            log.exception("meeting mail could not be queued", extra={"meeting_id": after.id})

    async def _tell_revision(self, actor: User, before: Meeting, after: Meeting, changed: set[str]) -> None:
        old, new = set(before.attendee_ids), set(after.attendee_ids)
        await self._tell(
            actor, [u for u in after.attendee_ids if u not in old], "meeting.invited", "Invitation", after
        )
        await self._tell(
            actor,
            [u for u in before.attendee_ids if u not in new],
            "meeting.uninvited",
            "No longer invited",
            after,
        )
        if changed & NOTIFIED_FIELDS:
            await self._tell(
                actor, [u for u in after.attendee_ids if u in old], "meeting.changed", "Changed", after
            )
