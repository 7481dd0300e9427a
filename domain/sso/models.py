"""Single sign-on's rules (docs/architecture.md, "Single sign-on"): what a provider's answer must say
for a person to sign in, which account it is, and which role the provider's groups give."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import attrs

from domain.accounts.models import Role

# why a sign-in through the provider did not happen; the sign-in page says it in words
REASONS = {
    "access_denied": "The sign-in was cancelled at your institution's sign-in page.",
    "provider_error": "Your institution's sign-in answered something LabHub cannot use. Try again, or sign in with a password.",
    "provider_unreachable": "Your institution's sign-in cannot be reached right now. Try again in a moment.",
    "state_invalid": "This sign-in link was already used or has expired. Start again.",
    "code_refused": "Your institution's sign-in did not accept this sign-in. Start again.",
    "id_token_invalid": "The answer from your institution's sign-in could not be verified. Start again; if it keeps happening, tell a head of the lab.",
    "email_missing": "Your institution's sign-in did not tell LabHub your email address.",
    "email_unverified": "Your institution has not verified your email address, so LabHub cannot link it to an account.",
    "email_domain": "This email address is not from a domain this LabHub accepts.",
    "no_account": "There is no LabHub account for this address. Ask a head of the lab to create one.",
    "inactive_account": "This LabHub account has been deactivated.",
    "sso_disabled": "Sign-in with your institution's account is not set up here.",
    "unavailable": "LabHub cannot finish signing you in right now (one of its services is restarting). Try again in a moment.",
}

ROLE_RANK = {Role.STUDENT: 0, Role.RESEARCHER: 1, Role.GD: 2, Role.DH: 3}
_DOMAIN = re.compile(r"^[a-z0-9.-]+$")


class ProviderError(Exception):
    """A sign-in that must not go on; code is a key of REASONS."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code if code in REASONS else "provider_error"
        self.detail = detail


@attrs.frozen
class Identity:
    """Who the provider says signed in."""

    issuer: str
    subject: str
    email: str
    email_verified: bool
    name: str
    groups: tuple[str, ...]


def identity_from(
    issuer: str, claims: Mapping[str, Any], *, email_claim: str, name_claim: str, groups_claim: str
) -> Identity:
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject:
        raise ProviderError("id_token_invalid", "the ID token has no subject")
    email = claims.get(email_claim)
    if not isinstance(email, str) or "@" not in email:
        raise ProviderError("email_missing", f"no {email_claim} claim")
    verified = claims.get("email_verified")
    # some providers send "true" as a string (older Keycloak, AD FS)
    email_verified = verified is True or (isinstance(verified, str) and verified.lower() == "true")
    name = claims.get(name_claim)
    if not isinstance(name, str) or not name.strip():
        name = email.split("@", 1)[0]
    groups = claims.get(groups_claim) or []
    if isinstance(groups, str):
        groups = [groups]
    if not isinstance(groups, list):
        groups = []
    # Keycloak's group mapper may send full paths ("/lab-heads"): both spellings match a mapping
    names = tuple(sorted({str(g).strip() for g in groups if isinstance(g, str | int) and str(g).strip()}))
    return Identity(
        issuer=issuer, subject=subject, email=email.strip().lower(), email_verified=email_verified,
        name=name.strip()[:200], groups=names,
    )  # fmt: skip


def email_allowed(email: str, domains: tuple[str, ...]) -> bool:
    """Whether the address is from one of the domains (or a subdomain of one); any, when none is set."""
    if not domains:
        return True
    domain = email.rsplit("@", 1)[-1].lower()
    for entry in domains:
        allowed = entry.strip().lower().lstrip("@")
        if _DOMAIN.match(allowed) and (domain == allowed or domain.endswith("." + allowed)):
            return True
    return False


def role_for(groups: tuple[str, ...], mapping: Mapping[str, str]) -> Role | None:
    """The highest role the person's groups map to; None when no group of theirs is mapped."""
    found = [
        Role(role)
        for group, role in mapping.items()
        if group in groups or "/" + group.lstrip("/") in groups or group.lstrip("/") in groups
    ]
    return max(found, key=ROLE_RANK.__getitem__) if found else None
