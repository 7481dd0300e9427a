"""The OpenID provider as LabHub's client sees it (docs/architecture.md, "Single sign-on").

authlib builds the authorization request (code flow, PKCE S256) and trades the code for tokens;
joserfc checks the ID token's signature against the provider's published keys, and authlib's
CodeIDToken its claims (iss, aud, azp, exp, iat, nonce, at_hash). Discovery and the key set are
read once and kept for `metadata_ttl_s`; an ID token signed with a key id the kept set does not
hold reads the keys again (at most every `jwks_refresh_s`), which is how a provider's key rotation
is followed. Every failure is a ProviderError with a code the sign-in page explains.
"""

from __future__ import annotations

import asyncio
import hmac
import time
from typing import Any

import httpx2
from authlib.integrations.httpx_client import AsyncOAuth2Client
from authlib.oauth2 import OAuth2Error
from authlib.oidc.core import CodeIDToken
from joserfc import jwt
from joserfc.errors import InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet
from joserfc.jws import JWSRegistry

from domain.core.settings import OidcSettings
from domain.sso.models import ProviderError

# asymmetric algorithms only: "none" and the HMAC family (keyed with the client secret) never sign in
_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")


class OidcClient:
    def __init__(self, settings: OidcSettings) -> None:
        self._settings = settings
        self._issuer = settings.issuer.rstrip("/")
        self._metadata: dict[str, Any] | None = None
        self._metadata_at = 0.0
        self._jwks: KeySet | None = None
        self._jwks_at = 0.0
        self._lock = asyncio.Lock()

    def _http(self) -> httpx2.AsyncClient:
        return httpx2.AsyncClient(timeout=self._settings.http_timeout_s, follow_redirects=False)

    async def _get_json(self, url: str, what: str) -> dict[str, Any]:
        try:
            async with self._http() as http:
                response = await http.get(url, headers={"Accept": "application/json"})
        except httpx2.HTTPError as exc:
            raise ProviderError(
                "provider_unreachable", f"the provider's {what} could not be read: {exc!r}"
            ) from None
        if response.status_code != 200:
            raise ProviderError(
                "provider_unreachable", f"the provider's {what} answered {response.status_code}"
            )
        try:
            body = response.json()
        except ValueError:
            raise ProviderError("provider_error", f"the provider's {what} is not JSON") from None
        if not isinstance(body, dict):
            raise ProviderError("provider_error", f"the provider's {what} is not a JSON object")
        return body

    async def metadata(self) -> dict[str, Any]:
        """The provider's discovery document, whose issuer must be the configured one exactly."""
        if (
            self._metadata is not None
            and time.monotonic() - self._metadata_at < self._settings.metadata_ttl_s
        ):
            return self._metadata
        async with self._lock:
            if (
                self._metadata is None
                or time.monotonic() - self._metadata_at >= self._settings.metadata_ttl_s
            ):
                found = await self._get_json(f"{self._issuer}/.well-known/openid-configuration", "discovery")
                if str(found.get("issuer", "")).rstrip("/") != self._issuer:
                    raise ProviderError(
                        "provider_error",
                        f"the provider calls itself {found.get('issuer')!r}, not the configured issuer",
                    )
                for key in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
                    if not isinstance(found.get(key), str):
                        raise ProviderError("provider_error", f"the provider's discovery has no {key}")
                self._metadata, self._metadata_at = found, time.monotonic()
                self._jwks = None  # read the keys again with the new document
        assert self._metadata is not None
        return self._metadata

    async def _keys(self, *, again: bool = False) -> KeySet:
        metadata = await self.metadata()
        async with self._lock:
            stale = self._jwks is None or time.monotonic() - self._jwks_at >= self._settings.metadata_ttl_s
            may_refresh = time.monotonic() - self._jwks_at >= self._settings.jwks_refresh_s
            if stale or (again and may_refresh):
                found = await self._get_json(metadata["jwks_uri"], "keys")
                try:
                    self._jwks = KeySet.import_key_set(found)  # type: ignore[arg-type]
                except (JoseError, ValueError, TypeError, KeyError) as exc:
                    raise ProviderError(
                        "provider_error", f"the provider's keys cannot be read: {exc}"
                    ) from None
                self._jwks_at = time.monotonic()
        assert self._jwks is not None
        return self._jwks

    def _client(self, metadata: dict[str, Any], redirect_uri: str) -> AsyncOAuth2Client:
        methods = metadata.get("token_endpoint_auth_methods_supported") or ["client_secret_basic"]
        if not self._settings.client_secret:
            auth_method = "none"  # a public client: PKCE is its proof
        elif "client_secret_basic" in methods:
            auth_method = "client_secret_basic"
        else:
            auth_method = "client_secret_post"
        return AsyncOAuth2Client(
            client_id=self._settings.client_id,
            client_secret=self._settings.client_secret or None,
            scope=" ".join(self._settings.scopes),
            redirect_uri=redirect_uri,
            code_challenge_method="S256",
            token_endpoint_auth_method=auth_method,
            timeout=self._settings.http_timeout_s,
        )

    async def authorization_url(
        self, *, redirect_uri: str, state: str, nonce: str, code_verifier: str
    ) -> str:
        metadata = await self.metadata()
        async with self._client(metadata, redirect_uri) as client:
            url, _state = client.create_authorization_url(
                metadata["authorization_endpoint"], state=state, nonce=nonce, code_verifier=code_verifier
            )
        return str(url)

    async def exchange(self, *, code: str, redirect_uri: str, code_verifier: str) -> dict[str, Any]:
        """The token response for an authorization code (one use; the provider refuses a second)."""
        metadata = await self.metadata()
        try:
            async with self._client(metadata, redirect_uri) as client:
                token = await client.fetch_token(
                    metadata["token_endpoint"], grant_type="authorization_code", code=code,
                    code_verifier=code_verifier,
                )  # fmt: skip
        except OAuth2Error as exc:
            raise ProviderError("code_refused", f"the provider refused the code: {exc.error}") from None
        except httpx2.HTTPError as exc:
            raise ProviderError(
                "provider_unreachable", f"the provider's token endpoint failed: {exc!r}"
            ) from None
        except ValueError:
            raise ProviderError("provider_error", "the provider's token answer is not JSON") from None
        if not isinstance(token.get("id_token"), str):
            raise ProviderError("id_token_invalid", "the provider's answer has no ID token")
        return dict(token)

    async def id_token_claims(self, token: dict[str, Any], *, nonce: str) -> dict[str, Any]:
        """The ID token's claims once its signature, issuer, audience, times and nonce hold."""
        metadata = await self.metadata()
        offered = metadata.get("id_token_signing_alg_values_supported") or ["RS256"]
        algorithms = [a for a in offered if a in _ALGORITHMS]
        registry = JWSRegistry(algorithms=algorithms, strict_check_header=False)
        try:
            try:
                decoded = jwt.decode(token["id_token"], await self._keys(), registry=registry)
            except InvalidKeyIdError:  # signed with a key we do not hold yet: the provider rotated
                decoded = jwt.decode(token["id_token"], await self._keys(again=True), registry=registry)
        except (JoseError, ValueError, TypeError) as exc:
            raise ProviderError(
                "id_token_invalid", f"the ID token's signature does not check out: {type(exc).__name__}"
            ) from None
        claims = CodeIDToken(
            decoded.claims, decoded.header,
            {"iss": {"essential": True, "value": metadata["issuer"]},
             "aud": {"essential": True, "value": self._settings.client_id}},
            {"nonce": nonce, "client_id": self._settings.client_id, "access_token": token.get("access_token")},
        )  # fmt: skip
        try:
            claims.validate(leeway=self._settings.leeway_s)
        except (JoseError, ValueError, TypeError) as exc:
            raise ProviderError("id_token_invalid", f"the ID token does not hold: {exc}") from None
        if not hmac.compare_digest(str(claims.get("nonce", "")), nonce):
            raise ProviderError("id_token_invalid", "the ID token's nonce is not the one this sign-in sent")
        return dict(claims)

    async def userinfo(self, access_token: str) -> dict[str, Any]:
        """The userinfo endpoint's claims (for providers that keep email or groups out of the ID token)."""
        metadata = await self.metadata()
        endpoint = metadata.get("userinfo_endpoint")
        if not isinstance(endpoint, str):
            return {}
        try:
            async with self._http() as http:
                response = await http.get(endpoint, headers={"Authorization": f"Bearer {access_token}"})
        except httpx2.HTTPError as exc:
            raise ProviderError("provider_unreachable", f"the provider's userinfo failed: {exc!r}") from None
        if response.status_code != 200 or not response.headers.get("content-type", "").startswith(
            "application/json"
        ):
            return {}  # a signed (JWT) userinfo or an error: the ID token's claims are what we have
        body = response.json()
        return body if isinstance(body, dict) else {}
