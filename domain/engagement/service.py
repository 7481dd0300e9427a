"""Engagement service: time students log, corrected by leads, summed with what LabHub counted.

Students (every member who is not a lead) log, see and change only their own entries and get only
their own summary rows; the project's leads and heads see and correct everyone's (docs/architecture.md, "Access rules").
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import attrs

from domain.accounts.models import Role, User
from domain.accounts.people import People
from domain.activity.models import Signal
from domain.activity.service import ActivityLog
from domain.core.clock import utcnow
from domain.core.errors import Forbidden, NotFound, field_error
from domain.core.ids import looks_like_id
from domain.core.pagination import Page, clamp_limit
from domain.engagement.models import (
    MINUTES_PER_DAY,
    Activity,
    EngagementPlotInput,
    Entry,
    EntryChanges,
    EntryInput,
    Group,
    Summary,
    checked_fields,
    summarize,
)
from domain.engagement.store import EngagementStore
from domain.meetings.models import Presence
from domain.meetings.service import MeetingsService
from domain.projects.audit import AuditLog
from domain.projects.models import Need, Project, TargetType, check_owner_or_lead, diff, manages
from domain.projects.service import ProjectGate
from domain.visualizations.models import PlotKind, PlotSpec, Visualization, check_layout
from domain.visualizations.service import VisualizationsService

MAX_PLOT_STUDENTS = 24
MAX_PLOT_PERIODS = 260  # five years of weeks


def _user_id(value: str, path: str) -> str:
    if not isinstance(value, str) or not looks_like_id(value.lower()):
        raise field_error(path, "is not a user id")
    return value.lower()


class EngagementService:
    def __init__(
        self,
        gate: ProjectGate,
        store: EngagementStore,
        activity: ActivityLog,
        users: People,
        audit: AuditLog,
        visualizations: VisualizationsService,
        meetings: MeetingsService,
        *,
        zone: ZoneInfo,
    ) -> None:
        self._gate = gate
        self._store = store
        self._activity = activity
        self._meetings = meetings
        self._users = users
        self._audit = audit
        self._visualizations = visualizations
        self._zone = zone

    def today(self) -> date:
        return utcnow().astimezone(self._zone).date()

    # -- entries -----------------------------------------------------------------------------------

    async def create(self, actor: User, project_id: str, body: EntryInput) -> Entry:
        project = await self._gate.require(actor, project_id, Need.WRITE)
        fields = checked_fields(attrs.asdict(body, recurse=False), self.today())
        student_id = actor.id if body.student_id is None else _user_id(body.student_id, "$.student_id")
        if student_id != actor.id:
            if not manages(actor, project):
                raise Forbidden(
                    "students log their own time; leads and heads may log for others", code="own_only"
                )
            if project.role_of(student_id) is None:
                raise field_error("$.student_id", "is not a member of this project")
        entry = await self._store.insert(project.id, student_id, actor.id, fields, utcnow())
        await self._within_day(entry, undo=lambda: self._store.delete(entry.id))
        await self._audit.record(
            project_id=project.id, actor_id=actor.id, action="engagement.created",
            target_type=TargetType.ENGAGEMENT, target_id=entry.id,
            changes=diff({}, {"student_id": student_id, "date": entry.date, "minutes": entry.minutes,
                              "activity": entry.activity}),
            at=entry.created_at,
        )  # fmt: skip
        return entry

    async def _within_day(self, entry: Entry, undo: Callable[[], Awaitable[object]]) -> None:
        """A day has 1440 minutes, across every project: checked after the write (so two writes at
        once cannot both slip under the limit) and undone when over."""
        total = await self._store.day_total(entry.student_id, entry.date)
        if total <= MINUTES_PER_DAY:
            return
        await undo()
        before = total - entry.minutes
        raise field_error(
            "$.minutes",
            f"{entry.date.isoformat()} already has {before} minutes logged (in all projects); "
            f"with {entry.minutes} more it would pass {MINUTES_PER_DAY}",
        )

    async def _entry(self, actor: User, entry_id: str, need: Need) -> tuple[Entry, Project]:
        entry = await self._store.get(entry_id)
        if entry is None:
            raise NotFound("entry not found")
        project = await self._gate.require(actor, entry.project_id, need, what="entry")
        return entry, project

    async def list_entries(
        self, actor: User, project_id: str, *, student_id: str | None, start: date | None, end: date | None,
        activity: Activity | None, limit: int | None, cursor: str | None,
    ) -> Page[Entry]:  # fmt: skip
        project = await self._gate.require(actor, project_id, Need.READ)
        whose = self._whose(actor, project, student_id)
        if start and end and end < start:
            raise field_error("$.to", "must not be before from")
        entries, following = await self._store.page(
            project.id, student_id=whose, start=start, end=end, activity=activity, limit=clamp_limit(limit),
            cursor=cursor,
        )  # fmt: skip
        return Page(entries, following)

    def _whose(self, actor: User, project: Project, student_id: str | None) -> str | None:
        """Whose entries the caller asked for: anyone's for leads and heads, their own otherwise."""
        wanted = None if student_id is None else _user_id(student_id, "$.student_id")
        if manages(actor, project):
            return wanted
        if wanted not in (None, actor.id):
            raise Forbidden("students see only their own engagement", code="own_only")
        return actor.id

    async def update(self, actor: User, entry_id: str, changes: EntryChanges) -> Entry:
        entry, project = await self._entry(actor, entry_id, Need.WRITE)
        check_owner_or_lead(actor, project, entry.student_id, "the student it belongs to")
        requested = checked_fields(attrs.asdict(changes, recurse=False), self.today())
        if not requested:
            raise field_error("$", "nothing to change")
        fields = {k: v for k, v in requested.items() if getattr(entry, k) != v}
        if not fields:
            return entry
        updated = await self._store.update(entry.id, fields, utcnow())
        if updated is None:
            raise NotFound("entry not found")
        before = {k: getattr(entry, k) for k in fields}
        if "date" in fields or "minutes" in fields:
            await self._within_day(updated, undo=lambda: self._store.update(entry.id, before, utcnow()))
        await self._audit.record(
            project_id=project.id, actor_id=actor.id, action="engagement.updated",
            target_type=TargetType.ENGAGEMENT, target_id=entry.id,
            changes=diff(before, fields), at=updated.updated_at,
        )  # fmt: skip
        return updated

    async def delete(self, actor: User, entry_id: str) -> None:
        entry, project = await self._entry(actor, entry_id, Need.WRITE)
        check_owner_or_lead(actor, project, entry.student_id, "the student it belongs to")
        if await self._store.delete(entry.id):
            await self._audit.record(
                project_id=project.id, actor_id=actor.id, action="engagement.deleted",
                target_type=TargetType.ENGAGEMENT, target_id=entry.id,
                changes=diff({"date": entry.date, "minutes": entry.minutes}, {}), at=utcnow(),
            )  # fmt: skip

    # -- the summary -------------------------------------------------------------------------------

    async def summary(
        self, actor: User, project_id: str, *, student_id: str | None, start: date | None, end: date | None,
        group: Group,
    ) -> Summary:  # fmt: skip
        project = await self._gate.require(actor, project_id, Need.READ)
        return await self._summary(project, self._whose(actor, project, student_id), start, end, group)

    async def _summary(
        self, project: Project, whose: str | None, start: date | None, end: date | None, group: Group
    ) -> Summary:
        """whose: one person's rows, or (None) every student's."""
        end = end or self.today()
        if start is None:
            earliest = await self._store.earliest(project.id)
            created = project.created_at.astimezone(self._zone).date()
            start = min(created, end, *([earliest] if earliest else []))
        if end < start:
            raise field_error("$.to", "must not be before from")
        names = await self._students(project, whose)
        entries = await self._store.between(project.id, start, end, names)
        signals = [s for s in await self._signals(project.id, start, end) if s[0] in names]
        totals, rows = summarize(
            group=group, start=start, end=end, students=names, entries=entries, signals=signals
        )
        return Summary(
            project_id=project.id, group=group, start=start, end=end, timezone=self._zone.key, students=totals,
            rows=rows,
        )  # fmt: skip

    async def _signals(self, project_id: str, start: date, end: date) -> list[tuple[str, date, Signal, int]]:
        """What LabHub counted of each person in [start, end], and the meetings they attended or missed."""
        found = [(c.user_id, c.day, c.signal, c.n) for c in await self._activity.between(project_id, start, end)]
        moment_from = datetime.combine(start, time(), self._zone)
        moment_to = datetime.combine(end + timedelta(days=1), time(), self._zone)
        for meeting in await self._meetings.held_between(project_id, moment_from, moment_to):
            day = meeting.starts_at.astimezone(self._zone).date()
            for mark in meeting.attendance:
                attended = mark.presence is Presence.PRESENT
                found.append((mark.user_id, day, Signal.MEETING_ATTENDED if attended else Signal.MEETING_MISSED, 1))
        return found

    async def _students(self, project: Project, whose: str | None) -> dict[str, str]:
        """id -> name of the people in the summary, by name: one person, or (for leads and heads)
        the members whose role is student and anyone with logged time."""
        if whose is not None:
            users = await self._users.get_many([whose])
            if whose not in users or (
                project.role_of(whose) is None and whose not in await self._store.students(project.id)
            ):
                raise NotFound("student not found")
            return {whose: users[whose].name}
        members = await self._users.get_many([m.user_id for m in project.members])
        logged = set(await self._store.students(project.id))
        users = {**members, **await self._users.get_many(sorted(logged - set(members)))}
        chosen = [u for u in users.values() if u.role is Role.STUDENT or u.id in logged]
        return {u.id: u.name for u in sorted(chosen, key=lambda u: (u.name.lower(), u.id))}

    # -- the plot ----------------------------------------------------------------------------------

    async def plot(self, actor: User, project_id: str, body: EngagementPlotInput) -> Visualization:
        project = await self._gate.require(actor, project_id, Need.WRITE)
        spec = PlotSpec(
            kind=PlotKind.BAR, x="period", y=[a.value for a in Activity], group_by="student",
            title=body.title or f"{project.name}: logged time per {body.group.value}", x_label=body.group.value,
            y_label="minutes", width=body.width, height=body.height, dpi=body.dpi, format=body.format,
        )  # fmt: skip
        check_layout(spec)
        subject = self._whose(actor, project, body.student_id)  # None: everyone's, for leads and heads
        summary = await self._summary(project, subject, body.from_, body.to, body.group)
        periods = list(dict.fromkeys(r.period for r in summary.rows))
        if len(periods) > MAX_PLOT_PERIODS:
            raise field_error(
                "$.from", f"a plot shows at most {MAX_PLOT_PERIODS} {body.group.value}s; narrow from and to"
            )
        ranked = sorted(summary.students, key=lambda t: -t.minutes)[:MAX_PLOT_STUDENTS]
        shown = {t.student_id for t in ranked}
        students = [t for t in summary.students if t.student_id in shown]
        minutes = {
            (r.student_id, r.period): [r.minutes_by_activity[a.value] for a in Activity] for r in summary.rows
        }
        table = {
            "periods": periods,
            "activities": [a.value for a in Activity],
            "students": [t.student_name for t in students],
            "minutes": [[minutes[(t.student_id, p)] for p in periods] for t in students],
            "left_out": len(summary.students) - len(students),
            "timezone": summary.timezone,
        }
        query = {"student_id": subject, "from": summary.start.isoformat(), "to": summary.end.isoformat(),
                 "group": body.group.value}  # fmt: skip
        return await self._visualizations.queue_engagement(actor.id, project.id, subject, spec, query, table)

    async def purge_project(self, project_id: str) -> None:
        await self._store.delete_project(project_id)
        await self._activity.delete_project(project_id)
