"""Project service: the gate every project-scoped service passes through, projects and members."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from domain.accounts.models import User, normalize_email
from domain.accounts.people import People
from domain.core.cache import TtlCache
from domain.core.clock import utcnow
from domain.core.errors import Conflict, Forbidden, InvalidInput, NotFound, field_error
from domain.core.flight import SingleFlight
from domain.core.pagination import Page, clamp_limit
from domain.projects.audit import AuditLog
from domain.projects.grant import project_filter, reaches
from domain.projects.models import (
    AuditEvent,
    Member,
    MemberCandidate,
    MemberView,
    Need,
    Project,
    ProjectChanges,
    ProjectName,
    ProjectRole,
    ProjectStatus,
    TargetType,
    check_access,
    check_active,
    check_description,
    check_project_name,
    diff,
    with_member_added,
    with_role_changed,
    without_member,
)
from domain.projects.stamps import ProjectStamps
from domain.projects.store import ProjectStore

CANDIDATE_LIMIT = 20  # people a member search shows at once
log = logging.getLogger("labhub.projects")

MAX_RETRIES = 8
ProjectPurger = Callable[[str], Awaitable[None]]


class ProjectGate:
    """Loads a project and checks the caller's place in it: the one authorisation point."""

    def __init__(
        self, projects: ProjectStore, cache_s: float = 0.0, stamps: ProjectStamps | None = None
    ) -> None:
        self._projects = projects
        self._cache: TtlCache[str, Project] = TtlCache(cache_s)
        self._names: TtlCache[None, list[ProjectName]] = TtlCache(cache_s, max_entries=1)
        self._reading: SingleFlight[str, Project | None] = SingleFlight()
        self._stamps = stamps
        # for changes' checks: copies with the stamp their project had when they were read
        self._stamped: TtlCache[str, tuple[str, Project]] = TtlCache(cache_s)

    async def changed(self, project_id: str) -> None:
        """After a change to the project is stored (or its removal)."""
        self._cache.forget(project_id)
        self._stamped.forget(project_id)
        if self._stamps is not None:
            await self._stamps.changed(project_id)

    # -- for the system, where there is no caller to check (a job notice, a calendar feed's owner) --

    async def name_of(self, project_id: str) -> str | None:
        try:
            project = await self._projects.get(project_id)
        except NotFound:
            return None
        return project.name if project else None

    async def ids_of_member(self, user_id: str) -> list[str]:
        return await self._projects.ids_of_member(user_id)

    async def names(self, *, having: set[str] | frozenset[str] = frozenset()) -> list[ProjectName]:
        """Every project's name (for names that must not depend on who asks: SQL's table names), at
        most the identity cache's age old, and read again when one of `having` is not among them."""
        cached = self._names.get(None)
        if cached is None or not having <= {n.id for n in cached}:
            cached = await self._projects.names()
            self._names.put(None, cached)
        return cached

    async def readable_ids(self, actor: User) -> set[str] | None:
        """The projects the caller may read (None: every project, for a head), never more than the
        request's token reaches."""
        reach = project_filter()
        if actor.is_head:
            return None if reach is None else set(reach)
        own = set(await self._projects.ids_of_member(actor.id))
        return own if reach is None else own & set(reach)

    async def require(
        self, actor: User, project_id: str, need: Need, *, what: str = "project", allow_archived: bool = False,
        early: bool = False,
    ) -> Project:
        """early: a check that only refuses early (before an upload is read), whose change checks
        again when it is made; it may use a cached copy, as reads do."""
        if not reaches(project_id):
            raise NotFound(f"{what} not found")  # a token narrowed to other projects sees none of this one
        # reads may use a cached copy; changes check the project as stored now
        cached = need is Need.READ or early
        project = self._cache.get(project_id) if cached else None
        if project is None:
            try:
                # requests that may use a cached copy and find none read it once between them
                project = await (
                    self._reading.run(project_id, lambda: self._projects.get(project_id))
                    if cached else self._current(project_id)
                )  # fmt: skip
            except NotFound:
                project = None
            if project is None:
                raise NotFound(f"{what} not found")
            self._cache.put(project_id, project)
        check_access(actor, project, need, what=what)
        if need is not Need.READ and not allow_archived:
            check_active(project)
        return project

    async def _current(self, project_id: str) -> Project | None:
        """The project as stored now: a copy read on this instance when its change stamp says that
        no change was made since on any instance (projects/stamps.py), else the stored one."""
        stamp = await self._stamps.current(project_id) if self._stamps is not None else None
        copy = self._stamped.get(project_id) if stamp is not None else None
        if copy is not None and copy[0] == stamp:
            return copy[1]
        project = await self._projects.get(project_id)  # read after the stamp: never older than it
        if stamp is not None and project is not None:
            self._stamped.put(project_id, (stamp, project))
        return project


class ProjectsService:
    def __init__(self, gate: ProjectGate, projects: ProjectStore, users: People, audit: AuditLog) -> None:
        self._gate = gate
        self._projects = projects
        self._users = users
        self._audit = audit
        self._purgers: list[ProjectPurger] = []

    def add_purger(self, purger: ProjectPurger) -> None:
        """Services holding project data register how to remove it when a head purges a project."""
        self._purgers.append(purger)

    async def create(self, actor: User, *, name: str, description: str) -> Project:
        now = utcnow()
        project = await self._projects.insert(
            name=check_project_name(name),
            description=check_description(description),
            creator=Member(actor.id, ProjectRole.LEAD, now),
        )
        await self._audit.record(
            project_id=project.id, actor_id=actor.id, action="project.created", target_type=TargetType.PROJECT,
            target_id=project.id, changes=diff({}, {"name": project.name, "description": project.description}),
            at=now,
        )  # fmt: skip
        return project

    async def list_projects(
        self, actor: User, *, q: str | None, status: str, limit: int | None, cursor: str | None
    ) -> Page[Project]:
        wanted = None if status == "all" else ProjectStatus(status)
        projects, next_cursor = await self._projects.page(
            member_id=None if actor.is_head else actor.id,
            only_ids=project_filter(),
            q=q,
            status=wanted,
            limit=clamp_limit(limit),
            cursor=cursor,
        )
        return Page(projects, next_cursor)

    async def get(self, actor: User, project_id: str) -> Project:
        return await self._gate.require(actor, project_id, Need.READ)

    async def update(self, actor: User, project_id: str, changes: ProjectChanges) -> Project:
        fields: dict[str, Any] = {}
        if changes.name is not None:
            fields["name"] = check_project_name(changes.name)
        if changes.description is not None:
            fields["description"] = check_description(changes.description)
        if changes.status is not None:
            fields["status"] = changes.status
        if not fields:
            raise field_error("$", "nothing to change")
        # un-archiving is the one change allowed on an archived project
        reopening = (
            changes.status is ProjectStatus.ACTIVE and changes.name is None and changes.description is None
        )
        return await self._change(
            actor, project_id, "project.updated", lambda _p: fields, allow_archived=reopening
        )

    async def archive(self, actor: User, project_id: str) -> Project:
        return await self._change(
            actor,
            project_id,
            "project.archived",
            lambda _p: {"status": ProjectStatus.ARCHIVED},
            allow_archived=True,
        )

    async def purge(self, actor: User, project_id: str) -> None:
        """Remove the project and everything in it, objects included (heads only)."""
        if not actor.is_head:
            await self._gate.require(actor, project_id, Need.READ)
            raise Forbidden("only heads (GD, DH) can purge a project", code="not_head")
        project = await self._gate.require(actor, project_id, Need.MANAGE, allow_archived=True)
        for purger in self._purgers:
            await purger(project.id)
        await self._projects.delete(project.id)
        await self._gate.changed(project.id)
        log.info("project purged", extra={"project_id": project.id, "actor_id": actor.id})

    async def _change(
        self,
        actor: User,
        project_id: str,
        action: str,
        compute: Callable[[Project], dict[str, Any]],
        *,
        allow_archived: bool = False,
        need: Need = Need.MANAGE,
        target: tuple[TargetType, str] | None = None,
    ) -> Project:
        """Read, compute the fields from what was read, write if unchanged since; retry on a race."""
        for _ in range(MAX_RETRIES):
            project = await self._gate.require(actor, project_id, need, allow_archived=allow_archived)
            fields = compute(project)
            updated = await self._projects.update(project, fields)
            await self._gate.changed(project.id)
            if updated is None:
                continue
            target_type, target_id = target or (TargetType.PROJECT, project.id)
            await self._audit.record(
                project_id=project.id, actor_id=actor.id, action=action, target_type=target_type,
                target_id=target_id, changes=self._changes(project, fields), at=updated.updated_at,
            )  # fmt: skip
            return updated
        raise Conflict("the project changed too often while saving; try again", code="busy")

    @staticmethod
    def _changes(project: Project, fields: dict[str, Any]) -> Any:
        if "members" in fields:
            before = {m.user_id: m.role for m in project.members}
            after = {m.user_id: m.role for m in fields["members"]}
            return diff(
                {f"role:{k}": v for k, v in before.items()}, {f"role:{k}": v for k, v in after.items()}
            )
        return diff({k: getattr(project, k) for k in fields}, fields)

    async def audit(
        self, actor: User, project_id: str, *, limit: int | None, cursor: str | None
    ) -> Page[AuditEvent]:
        project = await self._gate.require(actor, project_id, Need.MANAGE, allow_archived=True)
        return await self._audit.page(project.id, limit=limit, cursor=cursor)

    # -- members ---------------------------------------------------------------------------------

    async def members(self, actor: User, project_id: str) -> Page[MemberView]:
        project = await self._gate.require(actor, project_id, Need.READ)
        return Page(await self._views(project.members))

    async def search_members(self, actor: User, project_id: str, q: str) -> Page[MemberView]:
        project = await self._gate.require(actor, project_id, Need.READ)
        matching = await self._users.search_among([m.user_id for m in project.members], q)
        return Page(await self._views([m for m in project.members if m.user_id in matching]))

    async def member_candidates(self, actor: User, project_id: str, q: str) -> Page[MemberCandidate]:
        """People a lead can add: active users outside the project. Heads find anyone whose name or
        email starts with q; anyone else finds people they already share a project with that way,
        and others only by their exact email (a student who made a project of their own must not
        be able to list every account of the lab)."""
        project = await self._gate.require(actor, project_id, Need.MANAGE)
        q = q.strip()
        if not q:
            raise field_error("$.q", "type at least one character of a name or email")
        inside = {m.user_id for m in project.members}
        if actor.is_head:
            found = await self._users.search_outside(sorted(inside), q, CANDIDATE_LIMIT)
        else:
            known = await self._projects.co_member_ids(actor.id) - inside
            matching = await self._users.search_among(sorted(known), q) if known else set()
            by_name = await self._users.get_many(sorted(matching))
            found = sorted((u for u in by_name.values() if u.active), key=lambda u: (u.name.lower(), u.id))
            exact = await self._exact_email(q)
            if exact is not None and exact.id not in inside and exact.id not in matching:
                found.insert(0, exact)
        return Page([MemberCandidate(id=u.id, name=u.name, email=u.email) for u in found[:CANDIDATE_LIMIT]])

    async def _exact_email(self, q: str) -> User | None:
        try:
            email = normalize_email(q)
        except InvalidInput:
            return None
        return await self._users.active_by_email(email)

    async def add_member(self, actor: User, project_id: str, user_id: str, role: ProjectRole) -> MemberView:
        try:
            user = await self._users.get(user_id)
        except NotFound:
            user = None
        if user is None or not user.active:
            await self._gate.require(actor, project_id, Need.MANAGE)  # a non-member still gets 404 first
            raise field_error("$.user_id", "no active user has this id")
        if user.is_head and not actor.is_head:
            await self._gate.require(actor, project_id, Need.MANAGE)
            raise Forbidden("only heads (GD, DH) can add a head to a project", code="not_head")
        now = utcnow()
        project = await self._change(
            actor, project_id, "member.added",
            lambda p: {"members": with_member_added(p.members, user_id, role, now)},
            target=(TargetType.MEMBER, user_id),
        )  # fmt: skip
        return (await self._views([m for m in project.members if m.user_id == user_id]))[0]

    async def change_member(
        self, actor: User, project_id: str, user_id: str, role: ProjectRole
    ) -> MemberView:
        project = await self._change(
            actor, project_id, "member.role_changed",
            lambda p: {"members": with_role_changed(p.members, user_id, role)},
            target=(TargetType.MEMBER, user_id),
        )  # fmt: skip
        return (await self._views([m for m in project.members if m.user_id == user_id]))[0]

    async def remove_member(self, actor: User, project_id: str, user_id: str) -> None:
        # members may leave on their own; removing someone else takes a lead or a head
        need = Need.READ if user_id == actor.id and not actor.is_head else Need.MANAGE
        await self._change(
            actor, project_id, "member.removed",
            lambda p: {"members": without_member(p.members, user_id)},
            need=need, target=(TargetType.MEMBER, user_id),
        )  # fmt: skip

    async def _views(self, members: list[Member]) -> list[MemberView]:
        users = await self._users.get_many([m.user_id for m in members])
        return [
            MemberView(m.user_id, users[m.user_id].name, users[m.user_id].email, m.role, m.added_at)
            for m in members
            if m.user_id in users
        ]
