"""/api/projects: projects, their members and their audit log."""

from __future__ import annotations

from typing import Literal

import attrs
from aiohttp import web

from domain.core.pagination import Page
from domain.projects.models import (
    AuditEvent,
    MemberCandidate,
    MemberView,
    Project,
    ProjectChanges,
    ProjectRole,
)
from handlers.codec import json_response, parse_body, parse_query
from handlers.identity import require_user
from handlers.keys import PROJECTS
from handlers.openapi import doc

routes = web.RouteTableDef()


@attrs.frozen
class ProjectInput:
    name: str
    description: str = ""


@attrs.frozen
class ProjectListQuery:
    q: str | None = None
    status: Literal["active", "archived", "all"] = "active"
    limit: int | None = None
    cursor: str | None = None


@attrs.frozen
class DeleteProjectQuery:
    """purge=true (heads only) removes the project and everything in it instead of archiving it."""

    purge: bool = False


@attrs.frozen
class PageQuery:
    limit: int | None = None
    cursor: str | None = None


@attrs.frozen
class MemberInput:
    user_id: str
    role: ProjectRole = ProjectRole.MEMBER


@attrs.frozen
class MemberRoleInput:
    role: ProjectRole


@attrs.frozen
class MemberSearchQuery:
    q: str


@routes.post("/api/projects")
@doc("Create a project; its creator becomes its lead", body=ProjectInput, response=Project, status=201)
async def create_project(request: web.Request) -> web.Response:
    actor = await require_user(request)
    body = await parse_body(request, ProjectInput)
    project = await request.app[PROJECTS].create(actor, name=body.name, description=body.description)
    return json_response(project, status=201)


@routes.get("/api/projects")
@doc(
    "Projects you belong to (heads: all); q= matches the name", query=ProjectListQuery, response=Page[Project]
)
async def list_projects(request: web.Request) -> web.Response:
    actor = await require_user(request)
    query = parse_query(request, ProjectListQuery)
    page = await request.app[PROJECTS].list_projects(
        actor, q=query.q, status=query.status, limit=query.limit, cursor=query.cursor
    )
    return json_response(page)


@routes.get("/api/projects/{pid}")
@doc("One project", response=Project)
async def get_project(request: web.Request) -> web.Response:
    actor = await require_user(request)
    return json_response(await request.app[PROJECTS].get(actor, request.match_info["pid"]))


@routes.patch("/api/projects/{pid}")
@doc(
    "Rename, describe, archive or un-archive a project (leads, heads)", body=ProjectChanges, response=Project
)
async def patch_project(request: web.Request) -> web.Response:
    actor = await require_user(request)
    changes = await parse_body(request, ProjectChanges)
    return json_response(await request.app[PROJECTS].update(actor, request.match_info["pid"], changes))


@routes.delete("/api/projects/{pid}")
@doc("Archive a project (leads, heads); with purge=true heads remove it and all its data",
     query=DeleteProjectQuery, status=204)  # fmt: skip
async def delete_project(request: web.Request) -> web.Response:
    actor = await require_user(request)
    query = parse_query(request, DeleteProjectQuery)
    if query.purge:
        await request.app[PROJECTS].purge(actor, request.match_info["pid"])
    else:
        await request.app[PROJECTS].archive(actor, request.match_info["pid"])
    return web.Response(status=204)


@routes.get("/api/projects/{pid}/members")
@doc("The project's members with their names and roles", response=Page[MemberView])
async def list_members(request: web.Request) -> web.Response:
    actor = await require_user(request)
    return json_response(await request.app[PROJECTS].members(actor, request.match_info["pid"]))


@routes.post("/api/projects/{pid}/members")
@doc("Add a member (leads, heads)", body=MemberInput, response=MemberView, status=201)
async def add_member(request: web.Request) -> web.Response:
    actor = await require_user(request)
    body = await parse_body(request, MemberInput)
    member = await request.app[PROJECTS].add_member(actor, request.match_info["pid"], body.user_id, body.role)
    return json_response(member, status=201)


@routes.get("/api/projects/{pid}/members/search")
@doc("Members whose name or email starts with q", query=MemberSearchQuery, response=Page[MemberView])
async def search_members(request: web.Request) -> web.Response:
    actor = await require_user(request)
    query = parse_query(request, MemberSearchQuery)
    return json_response(
        await request.app[PROJECTS].search_members(actor, request.match_info["pid"], query.q)
    )


@routes.get("/api/projects/{pid}/members/candidates")
@doc("People who could be added (leads, heads): active users outside the project whose name or "
     "email starts with q, at most 20", query=MemberSearchQuery, response=Page[MemberCandidate])  # fmt: skip
async def member_candidates(request: web.Request) -> web.Response:
    actor = await require_user(request)
    query = parse_query(request, MemberSearchQuery)
    return json_response(
        await request.app[PROJECTS].member_candidates(actor, request.match_info["pid"], query.q)
    )


@routes.patch("/api/projects/{pid}/members/{uid}")
@doc(
    "Change a member's role (leads, heads); the last lead stays lead",
    body=MemberRoleInput,
    response=MemberView,
)
async def change_member(request: web.Request) -> web.Response:
    actor = await require_user(request)
    body = await parse_body(request, MemberRoleInput)
    member = await request.app[PROJECTS].change_member(
        actor, request.match_info["pid"], request.match_info["uid"], body.role
    )
    return json_response(member)


@routes.delete("/api/projects/{pid}/members/{uid}")
@doc("Remove a member (leads, heads; anyone may leave); the last lead stays", status=204)
async def remove_member(request: web.Request) -> web.Response:
    actor = await require_user(request)
    await request.app[PROJECTS].remove_member(actor, request.match_info["pid"], request.match_info["uid"])
    return web.Response(status=204)


@routes.get("/api/projects/{pid}/audit")
@doc("The project's audit log, newest first (leads, heads)", query=PageQuery, response=Page[AuditEvent])
async def project_audit(request: web.Request) -> web.Response:
    actor = await require_user(request)
    query = parse_query(request, PageQuery)
    page = await request.app[PROJECTS].audit(
        actor, request.match_info["pid"], limit=query.limit, cursor=query.cursor
    )
    return json_response(page)
