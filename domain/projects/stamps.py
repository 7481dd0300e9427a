"""Project change stamps: a key per project in Redis that every change sets to a new token, so that
a change's check (ProjectGate.require) can use a copy of the project read earlier on this instance
when no change has been made since, on any instance (one Redis GET where a MongoDB read was one
command; docs/architecture.md, "Access rules").

A stamp lives STAMP_TTL_S, far longer than any copy (the identity cache's age): a copy read while a
project had no stamp never meets that empty stamp again after a change. Without Redis there is no
stamp and the stored project is read, as before.
"""

from __future__ import annotations

import logging
import secrets

from redis.exceptions import RedisError

from domain.infra.redis_store import RedisStore, text

log = logging.getLogger("labhub.projects")

STAMP_TTL_S = 24 * 3600
NO_CHANGE = ""  # the stamp of a project with no change in the last STAMP_TTL_S


class ProjectStamps:
    def __init__(self, redis: RedisStore) -> None:
        self._redis = redis

    def _key(self, project_id: str) -> str:
        return self._redis.key("project-stamp", project_id)

    async def current(self, project_id: str) -> str | None:
        """The project's stamp now; None when Redis cannot say (then nothing may be assumed)."""
        try:
            value = await self._redis.client.get(self._key(project_id))
        except (RedisError, OSError):
            return None
        return NO_CHANGE if value is None else text(value)

    async def changed(self, project_id: str) -> None:
        """After a change is stored: copies read before it are no longer used for a change's check
        (should Redis be away, other instances' copies live out their age instead)."""
        try:
            await self._redis.client.set(self._key(project_id), secrets.token_hex(8), ex=STAMP_TTL_S)
        except (RedisError, OSError) as exc:
            log.warning("project change not stamped", extra={"project_id": project_id, "error": repr(exc)[:200]})
