"""The official Twilio and SendGrid SDKs against the simulators on a real local server.

The SDKs build the requests and parse the answers themselves, so these tests check
the simulators' wire format against an independent reading of each API. The same
server also runs what needs real sockets: a client that goes away while its answer
is held, and SimulatorClient's held/release.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import uvicorn
from python_http_client.exceptions import BadRequestsError, NotFoundError
from sendgrid import SendGridAPIClient
from sendgrid.helpers.mail import CustomArg, Mail
from sim_support import WEBHOOK_TEMPLATE, Receiver, twilio_auth, twilio_path
from tenant_accounts import primary
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.rest import Client as TwilioClient

from core.ports import free_port
from core.tenants import Tenant, TenantDirectory
from providers.sendgrid import SendGridAccount
from providers.twilio import TwilioAccount
from simulators import SimulatorClient, create_app
from simulators.state import SimState

TO = "+919800000001"


class Clock:
    def __init__(self) -> None:
        self.now = float(int(time.time()))

    def __call__(self) -> float:
        return self.now


@dataclass
class Sim:
    url: str
    state: SimState
    clock: Clock


@pytest.fixture
def sim(tenants: TenantDirectory, receiver: Receiver) -> Iterator[Sim]:
    app = create_app(
        tenants, webhook_url_template=WEBHOOK_TEMPLATE, webhook_transport=receiver.transport()
    )
    state: SimState = app.state.sim.state
    clock = Clock()
    state.clock = clock
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "simulator did not start"
        time.sleep(0.01)
    try:
        yield Sim(f"http://127.0.0.1:{port}", state, clock)
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def twilio_client(sim: Sim, t: Tenant) -> TwilioClient:
    account = primary(t, TwilioAccount)
    client = TwilioClient(account.account_sid, account.auth_token.get_secret_value())
    client.api.base_url = f"{sim.url}/twilio"  # the SDK's requests go to the simulator
    return client


def sendgrid_client(sim: Sim, t: Tenant) -> SendGridAPIClient:
    api_key = primary(t, SendGridAccount).api_key.get_secret_value()
    return SendGridAPIClient(api_key, host=f"{sim.url}/sendgrid")


# --- Twilio --------------------------------------------------------------------------


def test_twilio_sdk_sends_lists_across_pages_and_fetches(sim: Sim, t1: Tenant) -> None:
    client = twilio_client(sim, t1)
    from_number = primary(t1, TwilioAccount).from_number
    created = [client.messages.create(to=TO, from_=from_number, body=f"fee {i}") for i in range(3)]
    client.messages.create(to="+919800000002", from_=from_number, body="other")
    assert [m.status for m in created] == ["queued"] * 3
    # Not sent yet: a DateSent filter does not see them, a plain list does.
    today = datetime.fromtimestamp(sim.clock.now, UTC)
    assert client.messages.list(to=TO, date_sent_after=today - timedelta(days=1)) == []
    assert len(client.messages.list(to=TO)) == 3
    sim.clock.now += 2
    # page_size=2: the SDK has to follow next_page_uri to get the third.
    listed = client.messages.list(to=TO, date_sent_after=today - timedelta(days=1), page_size=2)
    assert [m.sid for m in listed] == [m.sid for m in reversed(created)]
    assert {(m.to, m.status) for m in listed} == {(TO, "sent")}
    assert all(isinstance(m.date_sent, datetime) and m.date_sent.tzinfo for m in listed)
    fetched = client.messages(created[0].sid).fetch()
    assert (fetched.sid, fetched.body, fetched.status) == (created[0].sid, "fee 0", "sent")
    assert fetched.date_created == created[0].date_created


def test_twilio_sdk_sees_twilios_errors(sim: Sim, t1: Tenant) -> None:
    client = twilio_client(sim, t1)
    with pytest.raises(TwilioRestException) as missing:
        client.messages("SM" + "0" * 32).fetch()
    assert (missing.value.status, missing.value.code) == (404, 20404)
    intruder = TwilioClient(primary(t1, TwilioAccount).account_sid, "not-the-token")
    intruder.api.base_url = f"{sim.url}/twilio"
    # A list page that fails is a plain TwilioException carrying the answer.
    with pytest.raises(TwilioException, match=r"HTTP 401 .*\"code\":20003"):
        intruder.messages.list(to=TO)


# --- SendGrid ------------------------------------------------------------------------


def test_sendgrid_sdk_sends_then_finds_the_mail_in_the_activity_feed(sim: Sim, t1: Tenant) -> None:
    sg = sendgrid_client(sim, t1)
    message = Mail(
        from_email="fees@t1.school.example",
        to_emails="parent@example.com",
        subject="Fee receipt",
        plain_text_content="Thank you",
    )
    message.custom_arg = CustomArg("idempotency_key", 'key "quoted"')
    sent = sg.send(message)
    assert sent.status_code == 202
    message_id = sent.headers["X-Message-Id"]
    query = 'unique_args[\'idempotency_key\']="key \\"quoted\\""'
    answer = sg.client.messages.get(query_params={"query": query, "limit": 10})
    assert answer.status_code == 200
    [found] = json.loads(answer.body)["messages"]
    assert found["msg_id"].startswith(message_id)
    assert (found["to_email"], found["subject"]) == ("parent@example.com", "Fee receipt")
    details = sg.client.messages._(found["msg_id"]).get()
    assert json.loads(details.body)["unique_args"] == '{"idempotency_key": "key \\"quoted\\""}'


def test_sendgrid_sdk_sees_sendgrids_errors(sim: Sim, t1: Tenant) -> None:
    sg = sendgrid_client(sim, t1)
    with pytest.raises(BadRequestsError) as bad:
        sg.client.messages.get(query_params={"query": 'bad_field="x"'})
    assert json.loads(bad.value.body) == {
        "errors": [{"message": "invalid syntax: 'bad_field' is not a known field"}]
    }
    with pytest.raises(NotFoundError) as missing:
        sg.client.messages._("no-such-id").get()
    assert json.loads(missing.value.body)["errors"][0]["field"] == "message_id"


# --- what needs real sockets -----------------------------------------------------


def test_a_client_gone_while_held_leaves_the_message(sim: Sim, t1: Tenant) -> None:
    with SimulatorClient(sim.url) as control:
        control.add_fault("twilio", mode="hold", method="POST", delay_seconds=30)
        data = {"To": TO, "From": "+15005550006", "Body": "in doubt"}
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(sim.url + twilio_path(t1), data=data, headers=twilio_auth(t1), timeout=0.5)
        deadline = time.monotonic() + 5
        while control.held("twilio"):
            assert time.monotonic() < deadline, "the hold did not notice its client left"
            time.sleep(0.05)
        [post] = control.requests("twilio", method="POST")
        assert post["disconnected_at"] is not None
        assert post["answered_at"] is None
        assert control.release(post["id"]) is False
    listed = httpx.get(sim.url + twilio_path(t1), headers=twilio_auth(t1)).json()
    assert [m["body"] for m in listed["messages"]] == ["in doubt"]


def test_simulator_client_long_polls_and_releases(sim: Sim, t1: Tenant) -> None:
    results: list[int] = []

    def send() -> None:
        data = {"To": TO, "From": "+15005550006", "Body": "hi"}
        response = httpx.post(sim.url + twilio_path(t1), data=data, headers=twilio_auth(t1))
        results.append(response.status_code)

    with SimulatorClient(sim.url) as control:
        control.add_fault("twilio", mode="hold", method="POST")
        assert control.faults()[0]["method"] == "POST"
        sender = threading.Thread(target=send)
        sender.start()
        [entry] = control.held("twilio", wait=5)
        assert (entry["method"], entry["body"]["Body"], entry["status"]) == ("POST", "hi", 201)
        assert results == []
        assert control.release(entry["id"]) is True
        sender.join(timeout=5)
        assert results == [201]
        assert control.release(entry["id"]) is False
        assert control.held(wait=0.1) == []
