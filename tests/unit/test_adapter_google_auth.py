"""Google service-account auth: the signed JWT, the token exchange, caching, refresh, failures."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from adapter_support import (
    API,
    TOKEN_URL,
    FakeClock,
    FakeGoogle,
    form_of,
    token_error,
    verify_jwt,
)
from connector_support import make_tenants, tenant
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from tenant_accounts import primary

from catalog.tenant_file import new_rsa_key_pem
from providers.base import AuthError
from providers.google_auth import (
    JWT_BEARER_GRANT,
    GoogleServiceAccountAuth,
    ServiceAccountAuths,
    TokenUnavailableError,
    jwt_assertion,
    jwt_claims,
    load_private_key,
    token_from_response,
)
from providers.gworkspace import GoogleWorkspaceAccount

T1 = tenant(make_tenants())
ACCOUNT: GoogleWorkspaceAccount = primary(T1, GoogleWorkspaceAccount)
PEM = ACCOUNT.private_key.get_secret_value()
SCOPE = "https://www.googleapis.com/auth/admin.directory.user"
START = 1_700_000_000.0


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def make_auth(
    clock: FakeClock | None = None, subject: str | None = "it-admin@t1.school.example"
) -> GoogleServiceAccountAuth:
    return GoogleServiceAccountAuth.for_account(
        ACCOUNT,
        scopes=[SCOPE, "https://www.googleapis.com/auth/admin.directory.group"],
        token_url=TOKEN_URL,
        subject=subject,
        clock=clock or FakeClock(START),
    )


async def call(http: httpx.AsyncClient, auth: httpx.Auth) -> httpx.Response:
    return await http.send(httpx.Request("PATCH", f"{API}/users/x", json={"a": 1}), auth=auth)


# --- pure helpers ---------------------------------------------------------------


def test_claims_carry_issuer_scopes_audience_and_one_hour() -> None:
    claims = jwt_claims(
        issuer="svc@p.iam.gserviceaccount.com",
        scopes=["s1", "s2"],
        audience=TOKEN_URL,
        now=START + 0.7,
        subject="admin@school.example",
    )
    assert claims == {
        "iss": "svc@p.iam.gserviceaccount.com",
        "scope": "s1 s2",
        "aud": TOKEN_URL,
        "iat": int(START),
        "exp": int(START) + 3600,
        "sub": "admin@school.example",
    }


def test_claims_without_subject_have_no_sub() -> None:
    claims = jwt_claims(issuer="i", scopes=["s"], audience="a", now=START)
    assert "sub" not in claims
    assert claims["exp"] - claims["iat"] == 3600


def test_assertion_is_a_compact_rs256_jwt_that_verifies_with_the_public_key() -> None:
    claims = jwt_claims(issuer="i", scopes=["s"], audience="a", now=START, subject="x")
    assertion = jwt_assertion(claims, load_private_key(PEM), "kid-123")
    parts = assertion.split(".")
    assert len(parts) == 3
    assert all("=" not in p and "+" not in p and "/" not in p for p in parts)
    header, decoded = verify_jwt(assertion, PEM)
    assert header == {"alg": "RS256", "typ": "JWT", "kid": "kid-123"}
    assert decoded == claims


def test_assertion_signed_with_another_key_does_not_verify() -> None:
    claims = jwt_claims(issuer="i", scopes=["s"], audience="a", now=START)
    assertion = jwt_assertion(claims, load_private_key(new_rsa_key_pem()), "k")
    with pytest.raises(InvalidSignature):
        verify_jwt(assertion, PEM)


def test_assertion_without_key_id_has_no_kid() -> None:
    assertion = jwt_assertion({"iss": "i"}, load_private_key(PEM), "")
    header, _ = verify_jwt(assertion, PEM)
    assert header == {"alg": "RS256", "typ": "JWT"}


def test_auth_claims_use_the_account_the_token_url_and_the_clock() -> None:
    clock = FakeClock(START)
    auth = make_auth(clock)
    clock.advance(42)
    header, claims = verify_jwt(auth.assertion(), PEM)
    assert header["kid"] == ACCOUNT.private_key_id
    assert claims == {
        "iss": ACCOUNT.client_email,
        "scope": f"{SCOPE} https://www.googleapis.com/auth/admin.directory.group",
        "aud": TOKEN_URL,
        "iat": int(START) + 42,
        "exp": int(START) + 42 + 3600,
        "sub": "it-admin@t1.school.example",
    }


def test_token_request_is_the_jwt_bearer_grant_form() -> None:
    request = make_auth().token_request()
    assert request.method == "POST"
    assert str(request.url) == TOKEN_URL
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    form = form_of(request)
    assert form["grant_type"] == JWT_BEARER_GRANT == "urn:ietf:params:oauth:grant-type:jwt-bearer"
    verify_jwt(form["assertion"], PEM)


def test_unusable_private_keys_are_auth_errors() -> None:
    with pytest.raises(AuthError, match="not a usable PEM"):
        load_private_key("-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----\n")
    ec_pem = (
        ec.generate_private_key(ec.SECP256R1())
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode()
    )
    with pytest.raises(AuthError, match="not RSA"):
        load_private_key(ec_pem)


def token_response(
    status: int, body: object, headers: dict[str, str] | None = None
) -> httpx.Response:
    return httpx.Response(
        status, json=body, headers=headers, request=httpx.Request("POST", TOKEN_URL)
    )


def test_token_response_2xx_gives_token_and_expiry() -> None:
    token = token_from_response(
        token_response(200, {"access_token": "ya29.a", "expires_in": 3599}), START
    )
    assert token.value == "ya29.a"
    assert token.expires_at == START + 3599
    assert token.fresh(START + 3599 - 61)
    assert not token.fresh(START + 3599 - 60)


def test_token_response_without_expires_in_lasts_an_hour() -> None:
    token = token_from_response(token_response(200, {"access_token": "ya29.a"}), START)
    assert token.expires_at == START + 3600


@pytest.mark.parametrize(
    ("status", "error", "description"),
    [
        (400, "invalid_grant", "Invalid JWT Signature."),
        (400, "invalid_scope", "Invalid OAuth scope or ID token audience provided."),
        (401, "unauthorized_client", "Client is unauthorized to retrieve access tokens."),
        (403, "access_denied", "Account disabled"),
    ],
)
def test_token_endpoint_client_errors_are_auth_errors(
    status: int, error: str, description: str
) -> None:
    answer = token_response(status, {"error": error, "error_description": description})
    with pytest.raises(AuthError) as caught:
        token_from_response(answer, START)
    assert str(caught.value) == f"token endpoint answered {status}: {error}: {description}"


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
def test_token_endpoint_transient_errors_are_retryable_transport_errors(status: int) -> None:
    answer = token_response(status, {"error": "internal_failure"}, {"Retry-After": "7"})
    with pytest.raises(TokenUnavailableError) as caught:
        token_from_response(answer, START)
    assert isinstance(caught.value, httpx.TransportError)
    assert not isinstance(caught.value, AuthError)
    assert caught.value.status_code == status
    assert caught.value.retry_after == 7.0
    assert "internal_failure" in str(caught.value)


def test_token_endpoint_2xx_without_a_token_is_retryable() -> None:
    with pytest.raises(TokenUnavailableError, match="without an access_token"):
        token_from_response(token_response(200, {"expires_in": 3599}), START)


# --- the async flow ---------------------------------------------------------------


@pytest.mark.anyio
async def test_first_call_fetches_a_token_and_sends_it_as_bearer() -> None:
    fake = FakeGoogle()
    auth = make_auth()
    async with httpx.AsyncClient(transport=fake.transport()) as http:
        answer = await call(http, auth)
    assert answer.status_code == 200
    [token_request] = fake.token_requests
    assert token_request.method == "POST"
    _, claims = verify_jwt(form_of(token_request)["assertion"], PEM)
    assert claims["iss"] == ACCOUNT.client_email
    assert claims["aud"] == TOKEN_URL
    [api_request] = fake.api_requests
    assert api_request.headers["authorization"] == "Bearer ya29.token-1"
    assert api_request.method == "PATCH"
    assert json.loads(api_request.content) == {"a": 1}


@pytest.mark.anyio
async def test_token_is_cached_across_calls() -> None:
    fake = FakeGoogle()
    auth = make_auth()
    async with httpx.AsyncClient(transport=fake.transport()) as http:
        answers = [await call(http, auth) for _ in range(5)]
    assert [a.status_code for a in answers] == [200] * 5
    assert len(fake.token_requests) == 1
    assert len(fake.api_requests) == 5


@pytest.mark.anyio
async def test_concurrent_calls_share_one_token_request() -> None:
    fake = FakeGoogle()
    auth = make_auth()
    async with httpx.AsyncClient(transport=fake.transport()) as http:
        answers = await asyncio.gather(*(call(http, auth) for _ in range(10)))
    assert [a.status_code for a in answers] == [200] * 10
    assert len(fake.token_requests) == 1


@pytest.mark.anyio
async def test_token_is_refreshed_a_minute_before_it_expires() -> None:
    fake = FakeGoogle(expires_in=3600)
    clock = FakeClock(START)
    auth = make_auth(clock)
    async with httpx.AsyncClient(transport=fake.transport()) as http:
        await call(http, auth)
        clock.advance(3600 - 61)  # 61 s left: still good
        await call(http, auth)
        assert len(fake.token_requests) == 1
        clock.advance(1)  # 60 s left: refresh first
        answer = await call(http, auth)
    assert answer.status_code == 200
    assert len(fake.token_requests) == 2
    assert fake.api_requests[-1].headers["authorization"] == "Bearer ya29.token-2"
    _, claims = verify_jwt(fake.assertions[-1], PEM)
    assert claims["iat"] == int(START) + 3600 - 60


@pytest.mark.anyio
async def test_api_401_refreshes_the_token_and_resends_once() -> None:
    fake = FakeGoogle()
    fake.api_steps = [
        httpx.Response(401, json={"error": {"code": 401, "status": "UNAUTHENTICATED"}}),
        fake.api_ok,
    ]
    auth = make_auth()
    async with httpx.AsyncClient(transport=fake.transport()) as http:
        answer = await call(http, auth)
        assert answer.status_code == 200
        assert len(fake.token_requests) == 2
        assert [r.headers["authorization"] for r in fake.api_requests] == [
            "Bearer ya29.token-1",
            "Bearer ya29.token-2",
        ]
        assert [json.loads(r.content) for r in fake.api_requests] == [{"a": 1}, {"a": 1}]
        await call(http, auth)  # the new token is the cached one now
    assert len(fake.token_requests) == 2


@pytest.mark.anyio
async def test_a_revoked_cached_token_is_replaced() -> None:
    fake = FakeGoogle()
    auth = make_auth()
    async with httpx.AsyncClient(transport=fake.transport()) as http:
        await call(http, auth)
        fake.issued.append("ya29.issued-elsewhere")  # the cached token-1 is no longer accepted
        answer = await call(http, auth)
    assert answer.status_code == 200
    assert len(fake.token_requests) == 2
    assert fake.api_requests[-1].headers["authorization"] == "Bearer ya29.token-2"


@pytest.mark.anyio
async def test_a_second_401_is_returned_without_looping() -> None:
    fake = FakeGoogle(api_steps=[httpx.Response(401, json={"error": {"code": 401}})])
    auth = make_auth()
    async with httpx.AsyncClient(transport=fake.transport()) as http:
        answer = await call(http, auth)
    assert answer.status_code == 401
    assert len(fake.token_requests) == 2
    assert len(fake.api_requests) == 2


@pytest.mark.anyio
async def test_token_endpoint_400_raises_auth_error_and_never_calls_the_api() -> None:
    fake = FakeGoogle(token_steps=[token_error(400, "invalid_grant", "Invalid JWT Signature.")])
    async with httpx.AsyncClient(transport=fake.transport()) as http:
        with pytest.raises(AuthError, match=r"400: invalid_grant: Invalid JWT Signature\."):
            await call(http, make_auth())
    assert fake.api_requests == []


@pytest.mark.anyio
async def test_token_endpoint_503_is_retryable_and_the_next_call_tries_again() -> None:
    fake = FakeGoogle()
    fake.token_steps = [
        token_error(503, "temporarily_unavailable", "Try again later"),
        fake.issue_token,
    ]
    auth = make_auth()
    async with httpx.AsyncClient(transport=fake.transport()) as http:
        with pytest.raises(httpx.TransportError) as caught:
            await call(http, auth)
        assert isinstance(caught.value, TokenUnavailableError)
        assert caught.value.status_code == 503
        assert fake.api_requests == []
        answer = await call(http, auth)
    assert answer.status_code == 200
    assert len(fake.token_requests) == 2


@pytest.mark.anyio
async def test_token_endpoint_unreachable_is_a_network_error() -> None:
    fake = FakeGoogle(token_steps=[httpx.ConnectError("refused")])
    async with httpx.AsyncClient(transport=fake.transport()) as http:
        with pytest.raises(httpx.ConnectError):
            await call(http, make_auth())
    assert fake.api_requests == []


@pytest.mark.anyio
async def test_a_broken_private_key_fails_before_any_request() -> None:
    fake = FakeGoogle()
    auth = GoogleServiceAccountAuth(
        client_email="svc@x.iam.gserviceaccount.com",
        private_key="not a key",
        private_key_id="k",
        scopes=[SCOPE],
        token_url=TOKEN_URL,
    )
    async with httpx.AsyncClient(transport=fake.transport()) as http:
        with pytest.raises(AuthError):
            await call(http, auth)
    assert fake.token_requests == []
    assert fake.api_requests == []


def test_one_auth_works_across_event_loops() -> None:
    """The registry's adapters outlive one event loop; their flows' locks must not."""
    fake = FakeGoogle(expires_in=3600)
    clock = FakeClock(START)
    auth = make_auth(clock)

    async def burst() -> list[int]:
        async with httpx.AsyncClient(transport=fake.transport()) as http:
            answers = await asyncio.gather(*(call(http, auth) for _ in range(4)))
        return [a.status_code for a in answers]

    assert asyncio.run(burst()) == [200] * 4
    clock.advance(3600)  # expired: the next loop contends for the lock again
    assert asyncio.run(burst()) == [200] * 4
    assert len(fake.token_requests) == 2


# --- the sync flow ------------------------------------------------------------------


def test_sync_flow_caches_and_refreshes_on_401() -> None:
    fake = FakeGoogle()
    auth = make_auth()
    with httpx.Client(transport=fake.transport()) as http:
        for _ in range(3):
            assert http.get(f"{API}/x", auth=auth).status_code == 200
        assert len(fake.token_requests) == 1
        fake.issued.append("ya29.issued-elsewhere")
        assert http.get(f"{API}/x", auth=auth).status_code == 200
    assert len(fake.token_requests) == 2
    assert fake.api_requests[-1].headers["authorization"] == "Bearer ya29.token-2"


def test_sync_flow_token_failures() -> None:
    refused = FakeGoogle(token_steps=[token_error(400, "invalid_grant", "Bad")])
    with httpx.Client(transport=refused.transport()) as http, pytest.raises(AuthError):
        http.get(f"{API}/x", auth=make_auth())
    down = FakeGoogle(token_steps=[token_error(500, "internal_failure", "oops")])
    with httpx.Client(transport=down.transport()) as http, pytest.raises(TokenUnavailableError):
        http.get(f"{API}/x", auth=make_auth())


# --- the per-adapter cache ------------------------------------------------------------


def test_auths_are_cached_per_tenant_and_token_url() -> None:
    auths = ServiceAccountAuths([SCOPE])
    first = auths.get("t1", ACCOUNT, TOKEN_URL, subject="a@x")
    assert auths.get("t1", ACCOUNT, TOKEN_URL, subject="a@x") is first
    assert auths.get("t2", ACCOUNT, TOKEN_URL, subject="a@x") is not first
    assert (
        auths.get("t1", ACCOUNT, "https://oauth2.googleapis.com/token", subject="a@x") is not first
    )
    assert first.scopes == (SCOPE,)
    assert first.subject == "a@x"
    assert first.token_url == TOKEN_URL


def test_a_rotated_key_gets_a_new_auth() -> None:
    auths = ServiceAccountAuths([SCOPE])
    first = auths.get("t1", ACCOUNT, TOKEN_URL)
    rotated = ACCOUNT.model_copy(
        update={
            "private_key": type(ACCOUNT.private_key)(new_rsa_key_pem()),
            "private_key_id": "new",
        }
    )
    second = auths.get("t1", rotated, TOKEN_URL)
    assert second is not first
    assert second.private_key_id == "new"
    assert auths.get("t1", rotated, TOKEN_URL) is second
