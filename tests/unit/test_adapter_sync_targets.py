"""The outbound-sync adapters: Google Workspace, FCM, the school's app backend, the SMS gateway.

Each adapter's request and its reading of the provider's answers, then the
Google ones end to end through CommandExecutor with a fake token endpoint + API.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import httpx
import pytest
from adapter_support import (
    TOKEN_URL,
    FakeClock,
    FakeGoogle,
    google_error,
    token_error,
    verify_jwt,
    with_bearer,
)
from connector_support import BARE, PHONE, SleepRecorder, Step, command, make_tenants, tenant
from tenant_accounts import primary

import providers
from catalog.tenant_file import new_rsa_key_pem
from connectors.executor import CommandExecutor
from connectors.registry import adapter as registered
from connectors.retry import RetryPolicy
from core.settings import Settings
from core.tenants import TenantDirectory
from providers.base import Delivered, MissingCredentialsError, Rejected, RetryLater
from providers.fcm import Fcm, FcmAccount
from providers.google_auth import GoogleServiceAccountAuth
from providers.gworkspace import GoogleWorkspace, GoogleWorkspaceAccount
from providers.mobileapp import MobileApp, MobileAppAccount
from providers.smsgateway import SmsGateway, SmsGatewayAccount
from schemas.events import (
    CommandPayload,
    ConnectorCommand,
    ConnectorResult,
    ResultStatus,
    SendPush,
    UpdateAppProfile,
    UpdateDirectoryUser,
    UpdateSmsContact,
)

TENANTS = make_tenants()
T1 = tenant(TENANTS)
NO_ACCOUNTS = tenant(TENANTS, BARE)
SETTINGS = Settings(provider_base_urls={"gworkspace.token": TOKEN_URL, "fcm.token": TOKEN_URL})
GW_BASE = "http://sim/gworkspace"
FCM_BASE = "http://sim/fcm"
DIRECTORY_SCOPE = "https://www.googleapis.com/auth/admin.directory.user"
FCM_SCOPE = "https://www.googleapis.com/auth/firebase.messaging"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def directory_user(
    email: str = "asha.rao@t1.school.example", phone: str | None = PHONE
) -> UpdateDirectoryUser:
    return UpdateDirectoryUser(user_email=email, mobile_phone=phone)


def push() -> SendPush:
    return SendPush(
        topic="class-7b",
        title="Fee reminder",
        body="Term 2 fees are due on 15 July.",
        data={"invoice_id": "inv-1", "kind": "fee_reminder"},
    )


def app_profile(student_id: str = "stu-42") -> UpdateAppProfile:
    return UpdateAppProfile(
        student_id=student_id,
        profile={"guardian_phone": PHONE, "guardian_email": None, "class": "7B"},
    )


def sms_contact(student_id: str = "stu-42") -> UpdateSmsContact:
    return UpdateSmsContact(student_id=student_id, phone=PHONE)


def answer(
    status: int,
    body: Any = None,
    *,
    request: httpx.Request | None = None,
    headers: dict[str, str] | None = None,
    content: bytes | None = None,
) -> httpx.Response:
    request = request or httpx.Request("POST", "http://provider.test/")
    if body is not None:
        return httpx.Response(status, json=body, headers=headers, request=request)
    return httpx.Response(status, content=content or b"", headers=headers, request=request)


# --- registry ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "cls", "category", "payload_type"),
    [
        ("gworkspace", GoogleWorkspace, "directory", UpdateDirectoryUser),
        ("fcm", Fcm, "push", SendPush),
        ("mobileapp", MobileApp, "profile", UpdateAppProfile),
        ("smsgateway", SmsGateway, "contacts", UpdateSmsContact),
    ],
)
def test_sync_targets_are_registered(
    key: str, cls: type, category: str, payload_type: type
) -> None:
    found: Any = registered(key)
    assert isinstance(found, cls)
    assert found.name == key
    assert found.category == category
    assert found.payload_type is payload_type


# --- Google Workspace ------------------------------------------------------------


def test_gworkspace_request_patches_the_users_mobile_phone() -> None:
    adapter = GoogleWorkspace()
    payload = directory_user()
    request = adapter.build_request(command("gworkspace", payload), payload, T1, GW_BASE + "/")
    assert request.method == "PATCH"
    assert str(request.url) == (
        "http://sim/gworkspace/admin/directory/v1/users/asha.rao@t1.school.example"
    )
    assert request.headers["content-type"] == "application/json"
    assert "authorization" not in request.headers  # the auth flow adds the bearer token
    assert json.loads(request.content) == {
        "phones": [{"value": PHONE, "type": "mobile", "primary": True}]
    }


def test_gworkspace_quotes_the_user_key_and_clears_phones_without_a_number() -> None:
    adapter = GoogleWorkspace()
    payload = directory_user("a+b/c d@x.example", phone=None)
    request = adapter.build_request(command("gworkspace", payload), payload, T1, GW_BASE)
    assert request.url.raw_path == b"/gworkspace/admin/directory/v1/users/a%2Bb%2Fc%20d@x.example"
    assert json.loads(request.content) == {"phones": []}


def test_gworkspace_auth_is_delegated_to_the_admin_with_the_directory_scope() -> None:
    adapter = GoogleWorkspace()
    auth = adapter.auth(T1, SETTINGS)
    assert isinstance(auth, GoogleServiceAccountAuth)
    assert auth.scopes == (DIRECTORY_SCOPE,)
    account = primary(T1, GoogleWorkspaceAccount)
    assert auth.subject == account.admin_email
    assert auth.token_url == TOKEN_URL
    header, claims = verify_jwt(auth.assertion(), account.private_key.get_secret_value())
    assert header["kid"] == account.private_key_id
    assert claims["iss"] == account.client_email
    assert claims["sub"] == account.admin_email
    assert claims["scope"] == DIRECTORY_SCOPE
    assert claims["aud"] == TOKEN_URL
    assert claims["exp"] - claims["iat"] == 3600
    assert adapter.auth(T1, SETTINGS) is auth  # cached: the token outlives one call
    assert adapter.auth(T1, Settings()) is not auth  # another token endpoint, another flow


def test_gworkspace_auth_for_a_labelled_account_is_that_accounts_own() -> None:
    district = providers.parse_account(
        "gworkspace",
        "gworkspace-district",
        {
            "client_email": "hub-sync@district-erp.iam.gserviceaccount.com",
            "private_key": new_rsa_key_pem(),
            "private_key_id": "district-key",
            "admin_email": "it@district.example",
        },
        priority=5,
    )
    both = T1.model_copy(update={"accounts": (*T1.accounts, district)})
    adapter = GoogleWorkspace()
    primary_auth = adapter.auth(both, SETTINGS)
    labelled = adapter.auth(both, SETTINGS, "gworkspace-district")
    assert isinstance(primary_auth, GoogleServiceAccountAuth)
    assert isinstance(labelled, GoogleServiceAccountAuth)
    assert labelled is not primary_auth
    assert labelled.subject == "it@district.example"
    assert isinstance(district.config, GoogleWorkspaceAccount)
    header, claims = verify_jwt(
        labelled.assertion(), district.config.private_key.get_secret_value()
    )
    assert header["kid"] == "district-key"
    assert claims["iss"] == "hub-sync@district-erp.iam.gserviceaccount.com"
    # Each account keeps its own cached flow (and token).
    assert primary_auth.subject == primary(T1, GoogleWorkspaceAccount).admin_email
    assert adapter.auth(both, SETTINGS) is primary_auth
    assert adapter.auth(both, SETTINGS, "gworkspace-district") is labelled


def test_gworkspace_without_account_is_missing_credentials() -> None:
    adapter = GoogleWorkspace()
    payload = directory_user()
    with pytest.raises(MissingCredentialsError, match="bare"):
        adapter.build_request(command("gworkspace", payload), payload, NO_ACCOUNTS, GW_BASE)
    with pytest.raises(MissingCredentialsError, match="bare"):
        adapter.auth(NO_ACCOUNTS, SETTINGS)


def directory_user_resource() -> dict[str, Any]:
    return {
        "kind": "admin#directory#user",
        "id": "104593764312309876543",
        "etag": '"nMIcbcY0lJqG0nN9Wv8n3X8iA3w/xyz"',
        "primaryEmail": "asha.rao@t1.school.example",
        "phones": [{"value": PHONE, "type": "mobile", "primary": True}],
    }


def test_gworkspace_updated_user_is_delivered_with_its_id_and_etag() -> None:
    outcome = GoogleWorkspace().classify(answer(200, directory_user_resource()))
    assert outcome == Delivered(
        "104593764312309876543",
        200,
        {
            "etag": '"nMIcbcY0lJqG0nN9Wv8n3X8iA3w/xyz"',
            "primary_email": "asha.rao@t1.school.example",
        },
    )


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (
            404,
            google_error(404, "NOT_FOUND", "Resource Not Found: userKey", "notFound"),
            Rejected("Resource Not Found: userKey", 404, "NOT_FOUND"),
        ),
        (
            400,
            {
                "error": {
                    "code": 400,
                    "message": "Invalid Input: phones",
                    "errors": [
                        {"message": "Invalid Input", "domain": "global", "reason": "invalid"}
                    ],
                }
            },
            Rejected("Invalid Input: phones", 400, "invalid"),
        ),
        (
            403,
            google_error(
                403, "PERMISSION_DENIED", "Not Authorized to access this resource/api", "forbidden"
            ),
            Rejected("Not Authorized to access this resource/api", 403, "PERMISSION_DENIED"),
        ),
        (
            401,
            google_error(401, "UNAUTHENTICATED", "Invalid Credentials", "authError"),
            Rejected("Invalid Credentials", 401, "UNAUTHENTICATED"),
        ),
        (
            429,
            google_error(429, "RESOURCE_EXHAUSTED", "Quota exceeded", "rateLimitExceeded"),
            RetryLater("Quota exceeded", 429, "RESOURCE_EXHAUSTED", 30.0),
        ),
        (
            503,
            google_error(
                503, "UNAVAILABLE", "The service is currently unavailable.", "backendError"
            ),
            RetryLater("The service is currently unavailable.", 503, "UNAVAILABLE", 30.0),
        ),
    ],
)
def test_gworkspace_errors(status: int, body: dict[str, Any], expected: object) -> None:
    # A Retry-After is honoured on 429/5xx and changes nothing on other 4xx.
    assert (
        GoogleWorkspace().classify(answer(status, body, headers={"Retry-After": "30"})) == expected
    )


@pytest.mark.parametrize("reason", ["rateLimitExceeded", "userRateLimitExceeded"])
def test_gworkspace_403_rate_limits_retry_later(reason: str) -> None:
    body = {
        "error": {
            "code": 403,
            "message": "Rate Limit Exceeded",
            "errors": [
                {"message": "Rate Limit Exceeded", "domain": "usageLimits", "reason": reason}
            ],
        }
    }
    assert GoogleWorkspace().classify(answer(403, body)) == RetryLater(
        "Rate Limit Exceeded", 403, reason, None
    )


def test_gworkspace_non_json_error_uses_the_reason_phrase() -> None:
    outcome = GoogleWorkspace().classify(answer(502, content=b"<html>502</html>"))
    assert outcome == RetryLater("Bad Gateway", 502, None, None)


def test_gworkspace_200_without_a_user_is_not_delivered() -> None:
    assert isinstance(GoogleWorkspace().classify(answer(200, {"kind": "x"})), Rejected)


# --- FCM ---------------------------------------------------------------------------


def test_fcm_request_sends_a_topic_message() -> None:
    adapter = Fcm()
    payload = push()
    cmd = command("fcm", payload)
    request = adapter.build_request(cmd, payload, T1, FCM_BASE)
    assert request.method == "POST"
    project = primary(T1, FcmAccount).project_id
    assert str(request.url) == f"http://sim/fcm/v1/projects/{project}/messages:send"
    assert "authorization" not in request.headers
    tag = "hub-" + hashlib.sha256(cmd.idempotency_key.encode()).hexdigest()[:32]
    assert json.loads(request.content) == {
        "message": {
            "topic": "class-7b",
            "notification": {"title": "Fee reminder", "body": "Term 2 fees are due on 15 July."},
            "data": {"invoice_id": "inv-1", "kind": "fee_reminder"},
            "android": {"collapse_key": tag, "notification": {"tag": tag}},
            "apns": {"headers": {"apns-collapse-id": tag}},
        }
    }


def test_fcm_sends_of_one_command_collapse_into_one_notification() -> None:
    adapter, payload = Fcm(), push()
    first, again = command("fcm", payload), command("fcm", payload)
    other = command("fcm", payload, key="another-command")
    assert first.idempotency_key == again.idempotency_key != other.idempotency_key

    def tag(cmd: ConnectorCommand) -> str:
        body = json.loads(adapter.build_request(cmd, payload, T1, FCM_BASE).content)
        return str(body["message"]["android"]["notification"]["tag"])

    assert tag(first) == tag(again) != tag(other)
    assert len(tag(first)) <= 64


def test_fcm_auth_has_the_messaging_scope_and_no_subject() -> None:
    adapter = Fcm()
    auth = adapter.auth(T1, SETTINGS)
    assert isinstance(auth, GoogleServiceAccountAuth)
    assert auth.scopes == (FCM_SCOPE,)
    assert auth.subject is None
    account = primary(T1, FcmAccount)
    _, claims = verify_jwt(auth.assertion(), account.private_key.get_secret_value())
    assert claims["iss"] == account.client_email
    assert "sub" not in claims
    assert adapter.auth(T1, SETTINGS) is auth


def test_fcm_without_account_is_missing_credentials() -> None:
    payload = push()
    with pytest.raises(MissingCredentialsError, match="bare"):
        Fcm().build_request(command("fcm", payload), payload, NO_ACCOUNTS, FCM_BASE)
    with pytest.raises(MissingCredentialsError, match="bare"):
        Fcm().auth(NO_ACCOUNTS, SETTINGS)


def test_fcm_sent_message_is_delivered_with_its_name() -> None:
    name = "projects/t1-parent-app/messages/0:1500415314455276%31bd1c9631bd1c96"
    assert Fcm().classify(answer(200, {"name": name})) == Delivered(
        name, 200, {"message_name": name}
    )


def fcm_error(code: int, status: str, message: str, error_code: str) -> dict[str, Any]:
    return google_error(
        code,
        status,
        message,
        details=[
            {
                "@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError",
                "errorCode": error_code,
            }
        ],
    )


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (
            400,
            fcm_error(400, "INVALID_ARGUMENT", "Invalid topic name", "INVALID_ARGUMENT"),
            Rejected("Invalid topic name", 400, "INVALID_ARGUMENT"),
        ),
        (
            404,
            fcm_error(404, "NOT_FOUND", "Requested entity was not found.", "UNREGISTERED"),
            Rejected("Requested entity was not found.", 404, "UNREGISTERED"),
        ),
        (
            403,
            fcm_error(403, "PERMISSION_DENIED", "SenderId mismatch", "SENDER_ID_MISMATCH"),
            Rejected("SenderId mismatch", 403, "SENDER_ID_MISMATCH"),
        ),
        (
            429,
            fcm_error(429, "RESOURCE_EXHAUSTED", "Quota exceeded", "QUOTA_EXCEEDED"),
            RetryLater("Quota exceeded", 429, "QUOTA_EXCEEDED", 60.0),
        ),
        (
            503,
            fcm_error(503, "UNAVAILABLE", "The service is currently unavailable.", "UNAVAILABLE"),
            RetryLater("The service is currently unavailable.", 503, "UNAVAILABLE", 60.0),
        ),
        (
            500,
            fcm_error(500, "INTERNAL", "Internal error encountered.", "INTERNAL"),
            RetryLater("Internal error encountered.", 500, "INTERNAL", 60.0),
        ),
        (
            401,
            google_error(401, "UNAUTHENTICATED", "Request had invalid authentication credentials."),
            Rejected("Request had invalid authentication credentials.", 401, "UNAUTHENTICATED"),
        ),
    ],
)
def test_fcm_errors_keep_the_fcm_code_and_follow_the_http_status(
    status: int, body: dict[str, Any], expected: object
) -> None:
    assert Fcm().classify(answer(status, body, headers={"Retry-After": "60"})) == expected


# --- the school's mobile app backend -------------------------------------------------


def test_mobileapp_request_puts_the_profile_with_bearer_key_and_idempotency_key() -> None:
    payload = app_profile("stu/42")
    cmd = command("mobileapp", payload, key="sync-stu-42-v3")
    request = MobileApp().build_request(cmd, payload, T1, "http://sim/mobileapp/")
    assert request.method == "PUT"
    assert request.url.raw_path == b"/mobileapp/api/v1/students/stu%2F42/profile"
    api_key = primary(T1, MobileAppAccount).api_key.get_secret_value()
    assert request.headers["authorization"] == f"Bearer {api_key}"
    assert request.headers["idempotency-key"] == "sync-stu-42-v3"
    assert json.loads(request.content) == {
        "guardian_phone": PHONE,
        "guardian_email": None,
        "class": "7B",
    }
    assert MobileApp().auth(T1, SETTINGS) is None


def test_mobileapp_without_api_key_is_missing_credentials() -> None:
    payload = app_profile()
    with pytest.raises(MissingCredentialsError, match="bare"):
        MobileApp().build_request(command("mobileapp", payload), payload, NO_ACCOUNTS, "http://x")


def mobileapp_request(student_id: str = "stu-42") -> httpx.Request:
    payload = app_profile(student_id)
    return MobileApp().build_request(command("mobileapp", payload), payload, T1, "http://sim/m")


def test_mobileapp_updated_profile_is_delivered_with_the_student_id() -> None:
    body = {"student_id": "stu-42", "updated_at": "2025-07-01T10:00:00Z"}
    outcome = MobileApp().classify(answer(200, body, request=mobileapp_request()))
    assert outcome == Delivered("stu-42", 200, {"updated_at": "2025-07-01T10:00:00Z"})


def test_mobileapp_204_is_delivered_with_the_student_id_from_the_path() -> None:
    outcome = MobileApp().classify(answer(204, request=mobileapp_request("stu/7")))
    assert outcome == Delivered("stu/7", 204, {"updated_at": ""})


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (
            404,
            {"error": "student_not_found", "message": "No student stu-42"},
            Rejected("No student stu-42", 404, "student_not_found"),
        ),
        (
            422,
            {"error": "validation_failed", "message": "guardian_phone is not a phone number"},
            Rejected("guardian_phone is not a phone number", 422, "validation_failed"),
        ),
        (
            401,
            {"error": "invalid_api_key", "message": "API key not recognised"},
            Rejected("API key not recognised", 401, "invalid_api_key"),
        ),
        (
            429,
            {"error": "rate_limited", "message": "Slow down"},
            RetryLater("Slow down", 429, "rate_limited", 5.0),
        ),
        (
            503,
            {"error": "maintenance", "message": "Back soon"},
            RetryLater("Back soon", 503, "maintenance", 5.0),
        ),
    ],
)
def test_mobileapp_errors(status: int, body: dict[str, Any], expected: object) -> None:
    response = answer(status, body, request=mobileapp_request(), headers={"Retry-After": "5"})
    assert MobileApp().classify(response) == expected


# --- the SMS gateway's contact book ----------------------------------------------------


def sms_request(student_id: str = "stu-42") -> httpx.Request:
    payload = sms_contact(student_id)
    return SmsGateway().build_request(command("smsgateway", payload), payload, T1, "http://sim/sms")


def test_smsgateway_request_posts_the_contact_with_the_authkey() -> None:
    request = sms_request()
    assert request.method == "POST"
    assert str(request.url) == "http://sim/sms/v1/contacts/update"
    assert request.headers["authkey"] == primary(T1, SmsGatewayAccount).api_key.get_secret_value()
    assert "authorization" not in request.headers
    assert json.loads(request.content) == {"phone": PHONE, "studentId": "stu-42"}
    assert SmsGateway().auth(T1, SETTINGS) is None


def test_smsgateway_without_api_key_is_missing_credentials() -> None:
    payload = sms_contact()
    with pytest.raises(MissingCredentialsError, match="bare"):
        SmsGateway().build_request(command("smsgateway", payload), payload, NO_ACCOUNTS, "http://x")


def test_smsgateway_success_is_delivered_with_the_student_id() -> None:
    body = {"type": "success", "message": "Contact updated"}
    outcome = SmsGateway().classify(answer(200, body, request=sms_request()))
    assert outcome == Delivered("stu-42", 200, {"message": "Contact updated"})


def test_smsgateway_error_with_http_200_is_rejected_not_delivered() -> None:
    body = {"type": "error", "message": "Mobile number is not valid"}
    outcome = SmsGateway().classify(answer(200, body, request=sms_request()))
    assert outcome == Rejected("Mobile number is not valid", 200, None)


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (
            401,
            {"type": "error", "message": "Authentication failure", "code": "418"},
            Rejected("Authentication failure", 401, "418"),
        ),
        (
            400,
            {"type": "error", "message": "Missing studentId"},
            Rejected("Missing studentId", 400, None),
        ),
        (
            429,
            {"type": "error", "message": "Too many requests"},
            RetryLater("Too many requests", 429, None, None),
        ),
        (
            500,
            None,
            RetryLater("Internal Server Error", 500, None, None),
        ),
    ],
)
def test_smsgateway_errors(status: int, body: dict[str, Any] | None, expected: object) -> None:
    response = answer(status, body, request=sms_request(), content=b"<html>oops</html>")
    assert SmsGateway().classify(response) == expected


# --- end to end through the executor -----------------------------------------------------


def executor(
    adapter: Any,
    fake: FakeGoogle,
    base_url: str,
    sleep: SleepRecorder,
    tenants: TenantDirectory = TENANTS,
) -> CommandExecutor:
    return CommandExecutor(
        adapter,
        settings=SETTINGS,
        base_url=base_url,
        tenants=tenants,
        http=httpx.AsyncClient(transport=fake.transport()),
        policy=RetryPolicy(base_seconds=0),
        sleep=sleep,
    )


async def run(
    adapter: Any, fake: FakeGoogle, payload: CommandPayload, base_url: str = GW_BASE, **kw: Any
) -> tuple[ConnectorResult, SleepRecorder]:
    sleep = SleepRecorder()
    ex = executor(adapter, fake, base_url, sleep)
    async with ex.http:
        result = await ex.attempt(command(adapter.name, payload, **kw))
    return result, sleep


def directory_api(fake: FakeGoogle) -> Step:
    """The Directory API: the latest token only, then the updated user."""

    def update(request: httpx.Request) -> httpx.Response:
        assert request.method == "PATCH"
        assert request.url.path == "/gworkspace/admin/directory/v1/users/asha.rao@t1.school.example"
        return httpx.Response(200, json=directory_user_resource())

    return with_bearer(update, fake)


@pytest.mark.anyio
async def test_gworkspace_end_to_end_fetches_a_token_then_patches_the_user() -> None:
    fake = FakeGoogle()
    fake.api_steps = [directory_api(fake)]
    result, sleep = await run(GoogleWorkspace(), fake, directory_user())
    assert result.status is ResultStatus.DELIVERED
    assert result.provider_ref == "104593764312309876543"
    assert result.attempts == 1
    assert result.details["etag"] == '"nMIcbcY0lJqG0nN9Wv8n3X8iA3w/xyz"'
    assert sleep.waits == []
    [token_request] = fake.token_requests
    account = primary(T1, GoogleWorkspaceAccount)
    _, claims = verify_jwt(fake.assertions[0], account.private_key.get_secret_value())
    assert claims["sub"] == account.admin_email
    assert claims["aud"] == TOKEN_URL
    [api_request] = fake.api_requests
    assert api_request.headers["authorization"] == "Bearer ya29.token-1"
    assert token_request.url == TOKEN_URL


@pytest.mark.anyio
async def test_gworkspace_end_to_end_retries_a_503_with_the_cached_token() -> None:
    fake = FakeGoogle()
    unavailable = httpx.Response(
        503, json=google_error(503, "UNAVAILABLE", "Backend Error", "backendError")
    )
    fake.api_steps = [unavailable, unavailable, directory_api(fake)]
    result, sleep = await run(GoogleWorkspace(), fake, directory_user())
    assert result.status is ResultStatus.DELIVERED
    assert result.attempts == 3
    assert sleep.waits == [0.0, 0.0]
    assert len(fake.token_requests) == 1
    assert len(fake.api_requests) == 3


@pytest.mark.anyio
async def test_gworkspace_end_to_end_401_refreshes_within_one_attempt() -> None:
    fake = FakeGoogle()
    fake.api_steps = [
        httpx.Response(401, json=google_error(401, "UNAUTHENTICATED", "Invalid Credentials")),
        directory_api(fake),
    ]
    result, _ = await run(GoogleWorkspace(), fake, directory_user())
    assert result.status is ResultStatus.DELIVERED
    assert result.attempts == 1
    assert len(fake.token_requests) == 2


@pytest.mark.anyio
async def test_gworkspace_end_to_end_refused_credentials_fail_permanently() -> None:
    fake = FakeGoogle(
        token_steps=[
            token_error(
                400,
                "unauthorized_client",
                "Client is unauthorized to retrieve access tokens using this method, "
                "or client not authorized for any of the scopes requested.",
            )
        ]
    )
    result, sleep = await run(GoogleWorkspace(), fake, directory_user())
    assert result.status is ResultStatus.FAILED
    assert result.retryable is False
    assert result.attempts == 1
    assert result.error_message is not None
    assert result.error_message.startswith(
        "authentication failed: token endpoint answered 400: unauthorized_client"
    )
    assert sleep.waits == []
    assert fake.api_requests == []


@pytest.mark.anyio
async def test_gworkspace_end_to_end_token_endpoint_outage_is_retried() -> None:
    fake = FakeGoogle()
    down = token_error(503, "temporarily_unavailable", "Service unavailable")
    fake.token_steps = [down, down, fake.issue_token]
    fake.api_steps = [directory_api(fake)]
    result, sleep = await run(GoogleWorkspace(), fake, directory_user())
    assert result.status is ResultStatus.DELIVERED
    assert result.attempts == 3
    assert len(sleep.waits) == 2
    assert len(fake.token_requests) == 3
    assert len(fake.api_requests) == 1


@pytest.mark.anyio
async def test_gworkspace_end_to_end_token_endpoint_down_throughout_is_retryable_failure() -> None:
    fake = FakeGoogle(token_steps=[token_error(500, "internal_failure", "Internal error")])
    result, sleep = await run(GoogleWorkspace(), fake, directory_user())
    assert result.status is ResultStatus.FAILED
    assert result.retryable is True
    assert result.attempts == 5
    assert result.error_message is not None
    assert "TokenUnavailableError" in result.error_message
    assert "500" in result.error_message
    assert len(sleep.waits) == 4
    assert fake.api_requests == []


@pytest.mark.anyio
async def test_gworkspace_end_to_end_without_account_fails_permanently() -> None:
    fake = FakeGoogle()
    result, _ = await run(GoogleWorkspace(), fake, directory_user(), tenant_id=BARE)
    assert result.status is ResultStatus.FAILED
    assert result.retryable is False
    assert result.attempts == 0
    assert fake.token_requests == []


@pytest.mark.anyio
async def test_fcm_end_to_end_sends_the_push() -> None:
    fake = FakeGoogle()
    account = primary(T1, FcmAccount)
    name = f"projects/{account.project_id}/messages/0:1500415314455276%31bd1c96"
    fake.api_steps = [with_bearer(lambda _r: httpx.Response(200, json={"name": name}), fake)]
    result, _ = await run(Fcm(), fake, push(), base_url=FCM_BASE)
    assert result.status is ResultStatus.DELIVERED
    assert result.provider_ref == name
    _, claims = verify_jwt(fake.assertions[0], account.private_key.get_secret_value())
    assert claims["scope"] == FCM_SCOPE
    assert "sub" not in claims
    [api_request] = fake.api_requests
    assert api_request.url.path == f"/fcm/v1/projects/{account.project_id}/messages:send"


@pytest.mark.anyio
async def test_fcm_end_to_end_quota_exceeded_waits_as_told() -> None:
    fake = FakeGoogle()
    quota = httpx.Response(
        429,
        headers={"Retry-After": "12"},
        json=fcm_error(429, "RESOURCE_EXHAUSTED", "Quota exceeded", "QUOTA_EXCEEDED"),
    )
    fake.api_steps = [quota, lambda _r: httpx.Response(200, json={"name": "projects/p/messages/1"})]
    result, sleep = await run(Fcm(), fake, push(), base_url=FCM_BASE)
    assert result.status is ResultStatus.DELIVERED
    assert result.attempts == 2
    assert sleep.waits == [12.0]


@pytest.mark.anyio
async def test_api_key_targets_end_to_end() -> None:
    fake = FakeGoogle(
        api_steps=[lambda r: httpx.Response(200, json={"type": "success", "message": "ok"})]
    )
    result, _ = await run(SmsGateway(), fake, sms_contact(), base_url="http://sim/smsgateway")
    assert result.status is ResultStatus.DELIVERED
    assert result.provider_ref == "stu-42"
    fake = FakeGoogle(api_steps=[lambda r: httpx.Response(200, json={"updated_at": "now"})])
    result, _ = await run(
        MobileApp(), fake, app_profile(), base_url="http://sim/mobileapp", key="k9"
    )
    assert result.status is ResultStatus.DELIVERED
    assert result.provider_ref == "stu-42"
    assert result.details["updated_at"] == "now"
    assert fake.api_requests[0].headers["idempotency-key"] == "k9"
    assert fake.token_requests == []


def test_fake_clock_is_injectable_into_the_google_adapters() -> None:
    clock = FakeClock(1_800_000_000.0)
    auth = GoogleWorkspace(clock=clock).auth(T1, SETTINGS)
    assert isinstance(auth, GoogleServiceAccountAuth)
    assert auth.claims()["iat"] == 1_800_000_000
    fcm_auth = Fcm(clock=clock).auth(T1, SETTINGS)
    assert isinstance(fcm_auth, GoogleServiceAccountAuth)
    assert fcm_auth.claims()["exp"] == 1_800_003_600
