"""Single sign-on's pure rules: reading a provider's claims, accepted domains, roles from groups."""

from __future__ import annotations

import pytest

from domain.accounts.models import Role
from domain.sso.models import ProviderError, email_allowed, identity_from, role_for

CLAIMS = {"email_claim": "email", "name_claim": "name", "groups_claim": "groups"}


def test_claims_become_an_identity():
    found = identity_from(
        "https://idp", {"sub": "42", "email": " Ada@Uni.Example ", "email_verified": "true", "groups": "/lab-heads"},
        **CLAIMS,
    )  # fmt: skip
    assert found.email == "ada@uni.example"
    assert found.email_verified is True  # older Keycloak and AD FS send the word
    assert found.name == "Ada"  # no name claim: the address's local part, as written
    assert found.groups == ("/lab-heads",)
    assert (
        identity_from(
            "https://idp", {"sub": "1", "email": "a@b.c", "email_verified": 1}, **CLAIMS
        ).email_verified
        is False
    )


@pytest.mark.parametrize(
    ("claims", "code"),
    [
        ({"email": "a@b.c"}, "id_token_invalid"),
        ({"sub": "1"}, "email_missing"),
        ({"sub": "1", "email": "nobody"}, "email_missing"),
    ],
)
def test_claims_without_a_subject_or_an_address_refuse(claims, code):
    with pytest.raises(ProviderError) as refused:
        identity_from("https://idp", claims, **CLAIMS)
    assert refused.value.code == code


def test_accepted_domains_include_subdomains_only():
    assert email_allowed("a@anything.example", ())
    assert email_allowed("a@uni.example", ("uni.example",))
    assert email_allowed("a@physics.uni.example", ("@UNI.example",))
    assert not email_allowed("a@evil-uni.example", ("uni.example",))
    assert not email_allowed("a@uni.example.evil.com", ("uni.example",))


def test_the_highest_mapped_role_wins_and_keycloak_paths_match():
    mapping = {"lab-heads": "DH", "lab-staff": "researcher", "directors": "GD"}
    assert role_for(("lab-staff", "/lab-heads"), mapping) is Role.DH
    assert role_for(("directors", "lab-staff"), mapping) is Role.GD
    assert role_for(("students",), mapping) is None
    assert role_for((), {}) is None
