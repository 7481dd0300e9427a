"""Command-line login without a password (docs/architecture.md, "Device login"), after RFC 8628.

`labhub-client login --browser` asks for a login: it gets a secret device code (which it keeps) and
a short user code (which the person types at {public_url}/device). A signed-in person (password or
single sign-on; never a personal access token) looks the code up, sees which client asks, from
where and for which scopes, and approves or denies. The client's poll then gets a personal access
token named after its machine with the scopes asked for, once. Codes expire after
`device_login.ttl_s` (10 minutes); starting is limited per client address, typing wrong codes per
person, and polling faster than the interval answers slow_down.
"""

from __future__ import annotations

import re
import secrets
import time
from datetime import datetime, timedelta

import attrs

from domain.accounts.jwt import hash_secret
from domain.accounts.models import User
from domain.accounts.people import People
from domain.core.clock import utcnow
from domain.core.errors import BadRequest, Conflict, NotFound, TooManyRequests, field_error
from domain.core.settings import DeviceLoginSettings
from domain.infra.throttle import WindowLimit, client_key
from domain.tokens.device_store import DeviceLoginStore
from domain.tokens.models import MAX_NAME, NewToken, Scope, TokenInput, check_scopes
from domain.tokens.service import AccessTokenService

# RFC 8628 §6.1: consonants only (no words, nothing to mistake for another letter), 8 of them
USER_CODE_ALPHABET = "BCDFGHJKLMNPQRSTVWXZ"
USER_CODE_LENGTH = 8
MAX_CLIENT_NAME = 60
MAX_MACHINE = 60
_PRINTABLE = re.compile(r"^[^\x00-\x1f\x7f]+$")


@attrs.frozen
class DeviceStart:
    client_name: str = "labhub-client"
    machine: str = ""
    scopes: list[Scope] = attrs.field(factory=lambda: [Scope.READ, Scope.WRITE])


@attrs.frozen
class DeviceCode:
    """What the client gets: the device code is its secret, the user code is for the person."""

    device_code: str
    user_code: str
    verification_uri: str
    verification_uri_complete: str
    expires_in: int
    interval: int


@attrs.frozen
class DevicePoll:
    device_code: str


@attrs.frozen
class DeviceRequest:
    """What the approval page shows: who asks, for what, until when."""

    user_code: str
    client_name: str
    machine: str
    client_address: str
    scopes: list[Scope]
    token_name: str
    grants: str
    requested_at: datetime
    expires_at: datetime
    status: str


def normalize_user_code(text: str) -> str:
    """What a person types: any case, with or without the dash or spaces."""
    return "".join(ch for ch in text.upper() if ch.isalnum())


def show_user_code(code: str) -> str:
    return f"{code[:4]}-{code[4:]}"


def _clean(value: str, path: str, most: int) -> str:
    value = value.strip()
    if not value or len(value) > most or not _PRINTABLE.match(value):
        raise field_error(path, f"must be 1 to {most} printable characters")
    return value


_SAYS = {
    Scope.READ: "read every project, dataset, document and record you can read",
    Scope.WRITE: "upload files, start ingestions and change what you can change",
    Scope.ADMIN: "manage users and the system as you can (heads only)",
}


class DeviceLogins:
    def __init__(
        self, store: DeviceLoginStore, tokens: AccessTokenService, people: People, settings: DeviceLoginSettings,
        *, starts: WindowLimit, lookups: WindowLimit,
    ) -> None:  # fmt: skip
        self._store = store
        self._tokens = tokens
        self._people = people
        self._settings = settings
        self._starts = starts
        self._lookups = lookups

    async def start(self, body: DeviceStart, client: str, base_url: str) -> DeviceCode:
        """base_url: where people open the console (http.public_url, else the request's)."""
        client_name = _clean(body.client_name, "$.client_name", MAX_CLIENT_NAME)
        machine = _clean(body.machine or "unnamed machine", "$.machine", MAX_MACHINE)
        scopes = check_scopes(body.scopes, head=True)  # whether the person may grant admin: at approval
        if wait := await self._starts.hit(client_key(client)):
            raise TooManyRequests(
                f"too many device logins from this address; try again in {wait} s", retry_after_s=wait,
                code="device_login_throttled",
            )  # fmt: skip
        device_code = secrets.token_urlsafe(32)
        now = utcnow()
        fields = {
            "client_name": client_name, "machine": machine, "client_address": client,
            "scopes": ",".join(s.value for s in scopes), "requested_at": now.isoformat(),
            "expires_at": (now + timedelta(seconds=self._settings.ttl_s)).isoformat(),
        }  # fmt: skip
        for _ in range(10):
            user_code = "".join(secrets.choice(USER_CODE_ALPHABET) for _ in range(USER_CODE_LENGTH))
            if await self._store.insert(hash_secret(device_code), user_code, fields, self._settings.ttl_s):
                break
        else:
            raise Conflict("no free code could be drawn; try again", code="device_code_busy")
        shown = show_user_code(user_code)
        return DeviceCode(
            device_code=device_code, user_code=shown, verification_uri=f"{base_url}/device",
            verification_uri_complete=f"{base_url}/device?code={shown}", expires_in=self._settings.ttl_s,
            interval=self._settings.interval_s,
        )  # fmt: skip

    async def _find(self, actor: User, user_code: str) -> tuple[str, dict[str, str]]:
        code = normalize_user_code(user_code)
        found = await self._store.by_user_code(code) if len(code) == USER_CODE_LENGTH else None
        if found is None:
            # each wrong code counts: 20^8 codes, 10 tries per person per 10 minutes
            if wait := await self._lookups.hit(actor.id):
                raise TooManyRequests(
                    f"too many wrong codes; try again in {wait} s",
                    retry_after_s=wait,
                    code="device_code_throttled",
                )
            raise NotFound(
                "no login is waiting for this code; it may have expired (codes work for 10 minutes)"
            )
        return found

    def _request(self, fields: dict[str, str]) -> DeviceRequest:
        scopes = [Scope(s) for s in fields["scopes"].split(",") if s]
        token_name = f"{fields['client_name']} on {fields['machine']}"[:MAX_NAME]
        grants = "; ".join(_SAYS[s] for s in scopes)
        return DeviceRequest(
            user_code=show_user_code(fields["user_code"]), client_name=fields["client_name"],
            machine=fields["machine"], client_address=fields["client_address"], scopes=scopes,
            token_name=token_name,
            grants=f"A personal access token named “{token_name}” that can {grants}, until you revoke it.",
            requested_at=datetime.fromisoformat(fields["requested_at"]),
            expires_at=datetime.fromisoformat(fields["expires_at"]), status=fields["status"],
        )  # fmt: skip

    async def describe(self, actor: User, user_code: str) -> DeviceRequest:
        _code_hash, fields = await self._find(actor, user_code)
        if fields["status"] != "pending" and fields.get("user_id") != actor.id:
            raise NotFound(
                "no login is waiting for this code; it may have expired (codes work for 10 minutes)"
            )
        return self._request(fields)

    async def approve(self, actor: User, user_code: str) -> DeviceRequest:
        code_hash, fields = await self._find(actor, user_code)
        request = self._request(fields)
        check_scopes(request.scopes, head=actor.is_head)  # admin only from a head
        if not await self._store.move(code_hash, "pending", "approved", user_id=actor.id):
            raise Conflict("this code was already approved or denied", code="device_code_used")
        await self._people.record(
            user_id=actor.id, actor_id=actor.id, action="device_login.approved", target_type="device",
            target_id=request.token_name, at=utcnow(),
            details={"scopes": [s.value for s in request.scopes], "client_address": request.client_address},
        )  # fmt: skip
        return attrs.evolve(request, status="approved")

    async def deny(self, actor: User, user_code: str) -> DeviceRequest:
        code_hash, fields = await self._find(actor, user_code)
        if not await self._store.move(code_hash, "pending", "denied", user_id=actor.id):
            raise Conflict("this code was already approved or denied", code="device_code_used")
        return attrs.evolve(self._request(fields), status="denied")

    async def poll(self, body: DevicePoll) -> NewToken:
        """The client's question: the token once approved; else a 400 whose code says why (RFC 8628 §3.5)."""
        code_hash = hash_secret(body.device_code)
        interval_ms = int(self._settings.interval_s * 1000 * 0.8)  # a little slack for timers and the network
        status = await self._store.poll(code_hash, int(time.time() * 1000), interval_ms)
        if status == "pending":
            raise BadRequest("waiting for the person to approve in the browser", code="authorization_pending")
        if status == "slow_down":
            raise BadRequest(f"poll every {self._settings.interval_s} s, not faster", code="slow_down")
        if status == "denied":
            raise BadRequest("the login was denied in the browser", code="access_denied")
        if status != "granted":  # gone (expired or never was), or taken by an earlier poll ("used")
            raise BadRequest("this code has expired or was used; start again", code="expired_token")
        fields = await self._store.get(code_hash)
        if fields is None or "user_id" not in fields:
            raise BadRequest("this code has expired or was used; start again", code="expired_token")
        owner = await self._people.get(fields["user_id"])
        if owner is None or not owner.active:
            raise BadRequest("the account that approved this login is not active", code="access_denied")
        request = self._request(fields)
        return await self._tokens.create(owner, TokenInput(name=request.token_name, scopes=request.scopes))
