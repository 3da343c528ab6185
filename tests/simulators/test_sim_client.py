"""SimulatorClient against the simulators served by a real uvicorn server in a thread."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
import uvicorn
from sim_support import (
    DIRECTORY_SCOPE,
    JWT_BEARER,
    WEBHOOK_TEMPLATE,
    Receiver,
    account_jwt,
    bearer,
    google_claims,
    rzp_auth,
    school_domain,
    twilio_auth,
    twilio_path,
)
from starlette.applications import Starlette
from tenant_accounts import primary

from catalog.tenant_file import parse_tenants
from core.settings import Settings
from core.tenants import Tenant, TenantDirectory
from providers.gworkspace import GoogleWorkspaceAccount
from providers.razorpay import RazorpayAccount
from simulators import SimulatorClient, create_app
from simulators.server import build_server


@contextmanager
def running(server: uvicorn.Server) -> Iterator[str]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", server.config.port if server.config.port else 0))
    port = sock.getsockname()[1]
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "simulator server did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@pytest.fixture
def sim_url(tenants: TenantDirectory, receiver: Receiver) -> Iterator[str]:
    app = create_app(
        tenants, webhook_url_template=WEBHOOK_TEMPLATE, webhook_transport=receiver.transport()
    )
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
    with running(uvicorn.Server(config)) as url:
        yield url


@pytest.fixture
def sim(sim_url: str) -> Iterator[SimulatorClient]:
    with SimulatorClient(sim_url) as client:
        yield client


def send_sms(base_url: str, t: Tenant, to: str) -> int:
    data = {"To": to, "From": "+15005550006", "Body": "hello"}
    response = httpx.post(base_url + twilio_path(t), data=data, headers=twilio_auth(t))
    return response.status_code


def new_order(base_url: str, t: Tenant) -> str:
    body = {"amount": 75000, "currency": "INR", "receipt": "fee-1"}
    response = httpx.post(f"{base_url}/razorpay/v1/orders", json=body, headers=rzp_auth(t))
    assert response.status_code == 200
    return str(response.json()["id"])


def test_health(sim: SimulatorClient) -> None:
    assert sim.health() is True
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    with SimulatorClient(f"http://127.0.0.1:{closed_port}") as nobody:
        assert nobody.health() is False


def test_requests_filters_and_clear(sim: SimulatorClient, sim_url: str, t1: Tenant) -> None:
    assert send_sms(sim_url, t1, "+919800000001") == 201
    assert send_sms(sim_url, t1, "+919800000002") == 201
    everything = sim.requests()
    assert [r["provider"] for r in everything] == ["twilio", "twilio"]
    assert [r["body"]["To"] for r in sim.requests("twilio", To="+919800000002")] == [
        "+919800000002"
    ]
    assert sim.requests("twilio", since_id=everything[-1]["id"]) == []
    assert sim.requests("sendgrid") == []
    sim.clear()
    assert sim.requests() == []


def test_wait_for_requests_polls_until_they_arrive(
    sim: SimulatorClient, sim_url: str, t1: Tenant
) -> None:
    timer = threading.Timer(0.3, send_sms, args=(sim_url, t1, "+919800000003"))
    timer.start()
    try:
        found = sim.wait_for_requests("twilio", 1, timeout=5, To="+919800000003")
    finally:
        timer.join()
    assert found[0]["response_status"] == 201
    with pytest.raises(TimeoutError, match="saw 0 of 1"):
        sim.wait_for_requests("sendgrid", 1, timeout=0.2)


def test_faults(sim: SimulatorClient, sim_url: str, t1: Tenant) -> None:
    sim.add_fault("twilio", status=503, times=2, retry_after=1, match={"To": "+919800000009"})
    [fault] = sim.faults()
    assert (fault["status"], fault["times"], fault["retry_after"]) == (503, 2, 1.0)
    assert fault["match"] == {"To": "+919800000009"}
    assert send_sms(sim_url, t1, "+919800000001") == 201
    assert send_sms(sim_url, t1, "+919800000009") == 503
    assert sim.faults()[0]["times"] == 1
    sim.clear_faults()
    assert sim.faults() == []
    assert send_sms(sim_url, t1, "+919800000009") == 201
    with pytest.raises(httpx.HTTPStatusError):
        sim.add_fault("nosuch")


def test_timeout_fault_makes_the_callers_read_timeout_fire(
    sim: SimulatorClient, sim_url: str, t1: Tenant
) -> None:
    sim.add_fault("twilio", mode="timeout", delay_seconds=1.0)
    data = {"To": "+919800000001", "From": "+15005550006", "Body": "hello"}
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(sim_url + twilio_path(t1), data=data, headers=twilio_auth(t1), timeout=0.3)
    [pending] = sim.requests("twilio")
    assert pending["response_status"] is None  # still "being answered"


def test_pay_order_and_resend_webhook(
    sim: SimulatorClient, sim_url: str, t1: Tenant, receiver: Receiver
) -> None:
    order_id = new_order(sim_url, t1)
    result = sim.pay_order(order_id, "failed", method="netbanking", error_code="GATEWAY_ERROR")
    assert result["order_id"] == order_id
    assert result["webhook_status"] == 200
    payment = json.loads(receiver.requests[0].content)["payload"]["payment"]["entity"]
    assert (payment["method"], payment["bank"], payment["error_code"]) == (
        "netbanking",
        "HDFC",
        "GATEWAY_ERROR",
    )
    assert sim.order(order_id)["status"] == "attempted"

    paid = sim.pay_order(order_id, webhook_url="http://other.test/hook")
    assert paid["webhook_url"] == "http://other.test/hook"
    assert sim.order(order_id)["status"] == "paid"

    again = sim.resend_webhook(paid["event_id"])
    assert again["event_id"] == paid["event_id"]
    assert receiver.requests[-1].content == receiver.requests[-2].content
    assert [w["event"] for w in sim.webhooks()] == ["payment.failed", "payment.captured"]
    with pytest.raises(httpx.HTTPStatusError):
        sim.pay_order(order_id)  # already paid: 409

    sim.reset()
    assert sim.webhooks() == []
    assert sim.requests() == []


def test_build_server_serves_the_configured_tenants(tenants: TenantDirectory, t1: Tenant) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # Only t1, and only its Razorpay account: the server serves the tenants it is given.
    razorpay = primary(t1, RazorpayAccount)
    configured = parse_tenants(
        {
            "t1": {
                "razorpay": {
                    "key_id": razorpay.key_id,
                    "key_secret": razorpay.key_secret.get_secret_value(),
                    "webhook_secret": razorpay.webhook_secret.get_secret_value(),
                }
            }
        }
    )
    settings = Settings(simulator_port=port, ingress_port=18080)
    server = build_server(settings, configured)
    assert (server.config.host, server.config.port, server.config.log_level) == (
        "127.0.0.1",
        port,
        "warning",
    )
    app = server.config.app
    assert isinstance(app, Starlette)
    assert app.state.sim.webhooks.default_url("t1") == "http://127.0.0.1:18080/webhooks/razorpay/t1"
    with running(server) as url, SimulatorClient(url) as sim:
        assert sim.health()
        new_order(url, t1)
        [recorded] = sim.requests("razorpay")
        assert recorded["tenant"] == "t1"


def test_expire_google_tokens_and_sync_state(
    sim: SimulatorClient, sim_url: str, t1: Tenant
) -> None:
    account = primary(t1, GoogleWorkspaceAccount)
    assert account is not None
    # The audience is the token URL as the caller knows it: the real server's address.
    claims = google_claims(
        account, DIRECTORY_SCOPE, aud=f"{sim_url}/google/oauth2/token", sub=account.admin_email
    )
    grant = {"grant_type": JWT_BEARER, "assertion": account_jwt(account, claims)}
    token = httpx.post(f"{sim_url}/google/oauth2/token", data=grant).json()["access_token"]
    user_url = f"{sim_url}/gworkspace/admin/directory/v1/users/asha@{school_domain(t1)}"
    assert httpx.patch(user_url, json={}, headers=bearer(token)).status_code == 200
    assert [t["expired"] for t in sim.google_tokens()] == [False]
    assert sim.expire_google_tokens() == 1
    assert sim.expire_google_tokens() == 0
    assert httpx.patch(user_url, json={}, headers=bearer(token)).status_code == 401
    assert [t["expired"] for t in sim.google_tokens()] == [True]
    assert [u["primaryEmail"] for u in sim.directory_users()] == [f"asha@{school_domain(t1)}"]
    assert sim.app_profiles() == sim.sms_contacts() == []
    assert [r["response_status"] for r in sim.requests("gworkspace", path="/users/asha@")] == [
        200,
        401,
    ]
    assert sim.requests("gworkspace", path="/users/ravi@") == []
    sim.reset()
    assert sim.google_tokens() == sim.directory_users() == []
