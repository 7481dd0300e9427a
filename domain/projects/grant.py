"""Which projects the current request reaches: all of its person's, or only those the personal
access token it came with was narrowed to.

This is the one input to authorisation that does not come through a service's arguments:
handlers/identity.py sets it for each request (a ContextVar, so it follows the request's task),
and the project gate (`ProjectGate.require`) and the listings of projects, jobs and notifications
read it through `reaches` and `project_filter`. Nothing else sets or reads it.
"""

from __future__ import annotations

import contextvars

from domain.tokens.models import TokenGrant

# the token behind the current request, if one (None: a session, which reaches all its projects)
current_grant: contextvars.ContextVar[TokenGrant | None] = contextvars.ContextVar(
    "current_grant", default=None
)


def reaches(project_id: str) -> bool:
    """Whether the current request's token (if any) reaches this project."""
    grant = current_grant.get()
    return grant is None or grant.project_ids is None or project_id in grant.project_ids


def project_filter() -> frozenset[str] | None:
    """The projects a listing is limited to (None: no limit beyond the person's own)."""
    grant = current_grant.get()
    return None if grant is None else grant.project_ids
