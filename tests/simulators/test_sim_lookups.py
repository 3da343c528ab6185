"""Reading messages back (Twilio list/fetch, SendGrid activity feed) and the "hold" fault."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import pytest
from sim_support import basic, mail, sendgrid_auth, twilio_auth, twilio_path
from starlette.applications import Starlette
from tenant_accounts import primary

from core.tenants import Tenant
from providers.base import Delivered
from providers.lookup import Found, LookupOutcome, NextPage, NotFound
from providers.sendgrid import SendGrid
from providers.twilio import Twilio, TwilioAccount
from schemas.events import ConnectorCommand, EventHeader, SendEmail, SendSms

pytestmark = pytest.mark.anyio

TO = "+919800000001"
OTHER = "+919800000002"
FROM = "+15005550006"
ACTIVITY = "/sendgrid/v3/messages"


class Clock:
    """A settable clock for the simulator's message statuses."""

    def __init__(self) -> None:
        self.now = float(int(time.time()))

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(app: Starlette) -> Clock:
    fake = Clock()
    app.state.sim.state.clock = fake
    return fake


async def send_sms(
    client: httpx.AsyncClient, t: Tenant, to: str = TO, text: str = "hello"
) -> dict[str, Any]:
    data = {"To": to, "From": FROM, "Body": text}
    response = await client.post(twilio_path(t), data=data, headers=twilio_auth(t))
    assert response.status_code == 201, response.text
    return dict(response.json())


async def list_sms(
    client: httpx.AsyncClient, t: Tenant, params: Mapping[str, str] | None = None, status: int = 200
) -> dict[str, Any]:
    response = await client.get(twilio_path(t), params=params, headers=twilio_auth(t))
    assert response.status_code == status, response.text
    return dict(response.json())


def fetch_path(t: Tenant, sid: str) -> str:
    return twilio_path(t).removesuffix(".json") + f"/{sid}.json"


# --- Twilio: list -----------------------------------------------------------------


async def test_list_is_newest_first_in_twilios_envelope(
    client: httpx.AsyncClient, t1: Tenant, clock: Clock
) -> None:
    first = await send_sms(client, t1, text="one")
    clock.now += 1
    second = await send_sms(client, t1, OTHER, text="two")
    page = await list_sms(client, t1)
    assert [m["sid"] for m in page["messages"]] == [second["sid"], first["sid"]]
    path = f"/2010-04-01/Accounts/{primary(t1, TwilioAccount).account_sid}/Messages.json"
    assert {k: v for k, v in page.items() if k != "messages"} == {
        "end": 1,
        "first_page_uri": f"{path}?PageSize=50&Page=0",
        "next_page_uri": None,
        "page": 0,
        "page_size": 50,
        "previous_page_uri": None,
        "start": 0,
        "uri": f"{path}?PageSize=50&Page=0",
    }
    # The created resource, a second on: sent since.
    older = page["messages"][1]
    assert older == {
        **first,
        "status": "sent",
        "date_sent": older["date_sent"],
        "date_updated": older["date_sent"],
    }
    assert older["date_sent"] is not None


async def test_list_filters_by_to_and_from(client: httpx.AsyncClient, t1: Tenant) -> None:
    await send_sms(client, t1, TO, "for a")
    await send_sms(client, t1, OTHER, "for b")
    assert [m["body"] for m in (await list_sms(client, t1, {"To": OTHER}))["messages"]] == ["for b"]
    assert len((await list_sms(client, t1, {"From": FROM}))["messages"]) == 2
    assert (await list_sms(client, t1, {"From": "+15550000000"}))["messages"] == []
    filtered = await list_sms(client, t1, {"To": OTHER, "From": FROM})
    assert filtered["uri"].endswith("?To=%2B919800000002&From=%2B15005550006&PageSize=50&Page=0")


async def test_each_account_sees_only_its_messages(
    client: httpx.AsyncClient, t1: Tenant, t2: Tenant
) -> None:
    await send_sms(client, t1)
    assert (await list_sms(client, t2))["messages"] == []
    assert len((await list_sms(client, t1))["messages"]) == 1


async def test_status_goes_queued_sent_delivered_with_the_clock(
    client: httpx.AsyncClient, t1: Tenant, clock: Clock
) -> None:
    sent = await send_sms(client, t1)
    [queued] = (await list_sms(client, t1))["messages"]
    assert (queued["status"], queued["date_sent"]) == ("queued", None)
    clock.now += 1
    [now_sent] = (await list_sms(client, t1))["messages"]
    assert now_sent["status"] == "sent"
    created = parsedate_to_datetime(sent["date_created"])
    assert parsedate_to_datetime(now_sent["date_sent"]) == created + timedelta(seconds=1)
    clock.now += 2
    fetched = await client.get(fetch_path(t1, sent["sid"]), headers=twilio_auth(t1))
    assert fetched.json()["status"] == "delivered"
    assert fetched.json()["date_sent"] == now_sent["date_sent"]


async def test_date_sent_filters_skip_unsent_messages(
    client: httpx.AsyncClient, t1: Tenant, clock: Clock
) -> None:
    await send_sms(client, t1)
    today = datetime.fromtimestamp(clock.now, UTC).date()
    assert (await list_sms(client, t1, {"DateSent>": today.isoformat()}))["messages"] == []
    clock.now += 1  # now sent (unless the second just rolled over midnight: use its date)
    sent_day = datetime.fromtimestamp(clock.now, UTC).date()
    day, before, after = (
        sent_day.isoformat(),
        (sent_day - timedelta(days=1)).isoformat(),
        (sent_day + timedelta(days=1)).isoformat(),
    )
    assert len((await list_sms(client, t1, {"DateSent": day}))["messages"]) == 1
    assert len((await list_sms(client, t1, {"DateSent>": before}))["messages"]) == 1
    assert len((await list_sms(client, t1, {"DateSent<": day}))["messages"]) == 1
    assert (await list_sms(client, t1, {"DateSent>": after}))["messages"] == []
    assert (await list_sms(client, t1, {"DateSent<": before}))["messages"] == []
    # A time part (as the SDKs send it) is accepted; the filter stays day-granular.
    late = f"{day}T23:59:59Z"
    assert len((await list_sms(client, t1, {"DateSent>": late}))["messages"]) == 1


@pytest.mark.parametrize(
    "params",
    [
        {"DateSent>": "yesterday"},
        {"DateSent": "2024-13-01"},
        {"PageSize": "0"},
        {"PageSize": "1001"},
        {"PageSize": "ten"},
        {"Page": "-1"},
        {"PageToken": "PASMnotamessage"},
    ],
)
async def test_bad_list_parameters_are_400(
    client: httpx.AsyncClient, t1: Tenant, params: dict[str, str]
) -> None:
    await send_sms(client, t1)
    body = await list_sms(client, t1, params, status=400)
    assert body["status"] == 400
    assert body["message"]


async def test_paging_follows_next_page_uri_to_the_end(
    client: httpx.AsyncClient, t1: Tenant, clock: Clock
) -> None:
    sids = []
    for i in range(5):
        sids.append((await send_sms(client, t1, text=f"m{i}"))["sid"])
        clock.now += 1
    newest_first = list(reversed(sids))
    page = await list_sms(client, t1, {"PageSize": "2"})
    seen, pages = list[str](), []
    while True:
        pages.append(page)
        seen += [m["sid"] for m in page["messages"]]
        if page["next_page_uri"] is None:
            break
        response = await client.get("/twilio" + page["next_page_uri"], headers=twilio_auth(t1))
        assert response.status_code == 200
        page = response.json()
    assert seen == newest_first
    assert [(p["page"], p["start"], p["end"]) for p in pages] == [(0, 0, 1), (1, 2, 3), (2, 4, 4)]
    assert pages[1]["next_page_uri"].endswith(f"Page=2&PageToken=PA{newest_first[3]}")
    back = await client.get("/twilio" + pages[1]["previous_page_uri"], headers=twilio_auth(t1))
    assert [m["sid"] for m in back.json()["messages"]] == newest_first[:2]
    # A plain Page index works too (without a token it is Page × PageSize).
    by_index = await list_sms(client, t1, {"PageSize": "2", "Page": "1"})
    assert [m["sid"] for m in by_index["messages"]] == newest_first[2:4]


# --- Twilio: fetch and auth --------------------------------------------------------


async def test_fetch_one_message_and_404_for_unknown(
    client: httpx.AsyncClient, t1: Tenant, t2: Tenant
) -> None:
    sent = await send_sms(client, t1)
    found = await client.get(fetch_path(t1, sent["sid"]), headers=twilio_auth(t1))
    assert found.status_code == 200
    assert (found.json()["sid"], found.json()["body"]) == (sent["sid"], "hello")
    unknown = fetch_path(t1, "SM" + "0" * 32)
    missing = await client.get(unknown, headers=twilio_auth(t1))
    assert missing.status_code == 404
    assert missing.json() == {
        "code": 20404,
        "message": f"The requested resource {unknown.removeprefix('/twilio')} was not found",
        "more_info": "https://www.twilio.com/docs/errors/20404",
        "status": 404,
    }
    # t2's credentials on t1's account: not t2's resource.
    other = await client.get(fetch_path(t1, sent["sid"]), headers=twilio_auth(t2))
    assert other.status_code == 404


@pytest.mark.parametrize("which", ["list", "fetch"])
async def test_reading_needs_the_accounts_credentials(
    client: httpx.AsyncClient, t1: Tenant, which: str
) -> None:
    sent = await send_sms(client, t1)
    path = twilio_path(t1) if which == "list" else fetch_path(t1, sent["sid"])
    for headers in ({}, basic(primary(t1, TwilioAccount).account_sid, "wrong")):
        response = await client.get(path, headers=headers)
        assert response.status_code == 401
        assert response.json()["code"] == 20003
        assert response.headers["www-authenticate"] == 'Basic realm="Twilio API"'


async def test_unknown_paths_still_404_and_reset_forgets_messages(
    client: httpx.AsyncClient, t1: Tenant
) -> None:
    await send_sms(client, t1)
    calls = twilio_path(t1).replace("Messages.json", "Calls.json")
    assert (await client.get(calls, headers=twilio_auth(t1))).json()["code"] == 20404
    assert (await client.post("/_sim/reset")).status_code == 200
    assert (await list_sms(client, t1))["messages"] == []


# --- SendGrid: the Email Activity feed -------------------------------------------


async def send_mail(
    client: httpx.AsyncClient, t: Tenant, to: str = "parent@example.com", **overrides: Any
) -> str:
    response = await client.post(
        "/sendgrid/v3/mail/send", json=mail(to, **overrides), headers=sendgrid_auth(t)
    )
    assert response.status_code == 202, response.text
    return response.headers["x-message-id"]


async def activity(
    client: httpx.AsyncClient,
    t: Tenant,
    query: str | None = None,
    status: int = 200,
    limit: str | None = None,
) -> dict[str, Any]:
    params = {k: v for k, v in (("query", query), ("limit", limit)) if v is not None}
    response = await client.get(ACTIVITY, params=params, headers=sendgrid_auth(t))
    assert response.status_code == status, response.text
    return dict(response.json())


async def listed(
    client: httpx.AsyncClient, t: Tenant, query: str | None = None, limit: str | None = None
) -> list[dict[str, Any]]:
    return list((await activity(client, t, query, limit=limit))["messages"])


async def test_activity_finds_a_mail_by_its_custom_args(
    client: httpx.AsyncClient, t1: Tenant, clock: Clock
) -> None:
    message_id = await send_mail(
        client, t1, custom_args={"idempotency_key": "k-1", "command_id": "c-1"}
    )
    await send_mail(client, t1, custom_args={"idempotency_key": "k-2"})
    key_1 = "unique_args['idempotency_key']=\"k-1\""
    [message] = await listed(client, t1, key_1, limit="10")
    assert message["msg_id"].startswith(message_id + ".")
    assert message == {
        "from_email": "fees@t1.school.example",
        "msg_id": message["msg_id"],
        "subject": "Fee receipt",
        "to_email": "parent@example.com",
        "status": "processed",
        "opens_count": 0,
        "clicks_count": 0,
        "last_event_time": datetime.fromtimestamp(clock.now, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    clock.now += 1
    [later] = await listed(client, t1, key_1)
    assert later["status"] == "delivered"
    assert await listed(client, t1, "unique_args['idempotency_key']=\"k-3\"") == []


async def test_activity_lists_each_recipient_and_personalization_args_win(
    client: httpx.AsyncClient, t1: Tenant
) -> None:
    personalizations = [
        {"to": [{"email": "a@example.com"}, {"email": "b@example.com"}]},
        {"to": [{"email": "c@example.com"}], "subject": "Own", "custom_args": {"k": "mine"}},
    ]
    await send_mail(client, t1, personalizations=personalizations, custom_args={"k": "shared"})
    shared = await listed(client, t1, "unique_args['k']=\"shared\"")
    assert sorted(m["to_email"] for m in shared) == ["a@example.com", "b@example.com"]
    [own] = await listed(client, t1, "unique_args['k']=\"mine\"")
    assert (own["to_email"], own["subject"]) == ("c@example.com", "Own")
    assert len({m["msg_id"] for m in await listed(client, t1)}) == 3


async def test_activity_equality_fields_and_and(
    client: httpx.AsyncClient, t1: Tenant, clock: Clock
) -> None:
    await send_mail(client, t1, "x@example.com", subject='Say "hi"', custom_args={"n": "1"})
    await send_mail(client, t1, "y@example.com", custom_args={"n": "1"})
    [hit] = await listed(client, t1, 'to_email="X@Example.com" AND unique_args[\'n\']="1"')
    assert hit["to_email"] == "x@example.com"
    both = '(from_email="fees@t1.school.example") and (status="processed")'
    assert len(await listed(client, t1, both)) == 2
    assert len(await listed(client, t1, 'subject="Say \\"hi\\""')) == 1
    assert await listed(client, t1, f'msg_id="{hit["msg_id"]}"') == [hit]
    assert await listed(client, t1, 'status="delivered"') == []


async def test_activity_without_query_is_newest_first_and_limited(
    client: httpx.AsyncClient, t1: Tenant, t2: Tenant
) -> None:
    for i in range(12):
        await send_mail(client, t1, f"p{i}@example.com")
    newest_ten = [f"p{i}@example.com" for i in range(11, 1, -1)]
    assert [m["to_email"] for m in await listed(client, t1)] == newest_ten
    assert len(await listed(client, t1, limit="1000")) == 12
    assert len(await listed(client, t1, limit="1")) == 1
    assert await listed(client, t2) == []


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ('bad_field="x"', "invalid syntax: 'bad_field' is not a known field"),
        ('categories="x"', "invalid syntax: 'categories' is not a known field"),
        ('to_email="a@b.c" OR to_email="d@e.f"', "invalid syntax: expected AND at character 17"),
        ("to_email LIKE 'a%'", None),
        ('to_email="unterminated', None),
        ('(to_email="a@b.c"', "invalid syntax: unbalanced parentheses"),
        ('to_email="a@b.c" AND', None),
        ('last_event_time BETWEEN TIMESTAMP "2024-01-01T00:00:00Z" AND TIMESTAMP "x"', None),
    ],
)
async def test_queries_outside_the_subset_are_400(
    client: httpx.AsyncClient, t1: Tenant, query: str, message: str | None
) -> None:
    body = await activity(client, t1, query, status=400)
    [error] = body["errors"]
    assert set(error) == {"message"}
    if message is not None:
        assert error["message"] == message
    else:
        assert error["message"].startswith("invalid syntax")


@pytest.mark.parametrize("limit", ["0", "1001", "ten", "1.5"])
async def test_bad_limits_are_400(client: httpx.AsyncClient, t1: Tenant, limit: str) -> None:
    body = await activity(client, t1, status=400, limit=limit)
    assert body["errors"][0]["message"] == "limit must be an integer from 1 to 1000"


async def test_get_one_activity_message(
    client: httpx.AsyncClient, t1: Tenant, clock: Clock
) -> None:
    await send_mail(client, t1, custom_args={"idempotency_key": "k-1"})
    [summary] = await listed(client, t1)
    clock.now += 1
    response = await client.get(f"{ACTIVITY}/{summary['msg_id']}", headers=sendgrid_auth(t1))
    assert response.status_code == 200
    message = response.json()
    assert (message["msg_id"], message["status"]) == (summary["msg_id"], "delivered")
    assert [e["event_name"] for e in message["events"]] == ["processed", "delivered"]
    assert message["unique_args"] == '{"idempotency_key": "k-1"}'
    missing = await client.get(f"{ACTIVITY}/nope", headers=sendgrid_auth(t1))
    assert missing.status_code == 404
    assert missing.json() == {"errors": [{"message": "not found", "field": "message_id"}]}


@pytest.mark.parametrize("path", [ACTIVITY, f"{ACTIVITY}/some-id"])
async def test_activity_needs_a_valid_key(client: httpx.AsyncClient, path: str) -> None:
    for headers in ({}, {"Authorization": "Bearer SG.wrong.key"}):
        response = await client.get(path, headers=headers)
        assert response.status_code == 401
        assert response.json()["errors"][0]["message"].startswith("The provided authorization")


# --- the "hold" fault: the provider acts, the answer waits -------------------------


async def add_fault(client: httpx.AsyncClient, status: int = 201, **fault: Any) -> dict[str, Any]:
    response = await client.post("/_sim/faults", json=fault)
    assert response.status_code == status, response.text
    return dict(response.json())


async def held(client: httpx.AsyncClient, **params: str) -> list[dict[str, Any]]:
    response = await client.get("/_sim/held", params=params)
    assert response.status_code == 200, response.text
    return list(response.json()["held"])


async def recorded(client: httpx.AsyncClient, **params: str) -> list[dict[str, Any]]:
    return list((await client.get("/_sim/requests", params=params)).json()["requests"])


async def test_hold_creates_the_message_then_waits_for_release(
    client: httpx.AsyncClient, t1: Tenant
) -> None:
    await add_fault(client, provider="twilio", mode="hold", method="POST")
    sending = asyncio.create_task(send_sms(client, t1, text="held one"))
    [entry] = await held(client, provider="twilio", wait="5")
    assert (entry["provider"], entry["method"], entry["path"]) == (
        "twilio",
        "POST",
        twilio_path(t1),
    )
    assert (entry["body"]["Body"], entry["status"]) == ("held one", 201)
    # The provider already acted: the message is there, and a lookup GET is not held.
    [message] = (await list_sms(client, t1))["messages"]
    assert message["body"] == "held one"
    assert not sending.done()
    [post] = await recorded(client, method="POST")
    assert (post["id"], post["response_status"], post["answered_at"]) == (entry["id"], None, None)
    released_at = time.time()
    assert (await client.post(f"/_sim/held/{entry['id']}/release")).json() == {
        "released": entry["id"]
    }
    created = await asyncio.wait_for(sending, 5)
    assert created["sid"] == message["sid"]
    [post] = await recorded(client, method="POST")
    assert post["response_status"] == 201
    assert post["answered_at"] >= released_at
    assert post["disconnected_at"] is None
    assert await held(client) == []
    assert (await client.post(f"/_sim/held/{entry['id']}/release")).status_code == 404


async def test_hold_sends_the_answer_after_its_delay(client: httpx.AsyncClient, t1: Tenant) -> None:
    await add_fault(client, provider="twilio", mode="hold", delay_seconds=0.3)
    started = time.monotonic()
    await send_sms(client, t1)
    assert time.monotonic() - started >= 0.3
    assert await held(client) == []


async def test_held_long_poll_waits_for_a_first_held_answer(
    client: httpx.AsyncClient, t1: Tenant
) -> None:
    started = time.monotonic()
    assert await held(client, wait="0.3") == []
    assert time.monotonic() - started >= 0.3
    await add_fault(client, provider="sendgrid", mode="hold")
    polling = asyncio.create_task(held(client, provider="sendgrid", wait="5"))
    await asyncio.sleep(0.1)
    assert not polling.done()
    sending = asyncio.create_task(send_mail(client, t1, custom_args={"idempotency_key": "k-9"}))
    [entry] = await asyncio.wait_for(polling, 5)
    assert entry["provider"] == "sendgrid"
    # Accepted while held: the activity feed already lists it.
    assert len(await listed(client, t1, "unique_args['idempotency_key']=\"k-9\"")) == 1
    assert await held(client, provider="twilio") == []
    assert (await client.post(f"/_sim/held/{entry['id']}/release")).status_code == 200
    assert await asyncio.wait_for(sending, 5)


async def test_reset_lets_held_answers_go(client: httpx.AsyncClient, t1: Tenant) -> None:
    await add_fault(client, provider="twilio", mode="hold")
    sending = asyncio.create_task(send_sms(client, t1))
    assert len(await held(client, wait="5")) == 1
    assert (await client.post("/_sim/reset")).status_code == 200
    assert (await asyncio.wait_for(sending, 5))["status"] == "queued"


async def test_method_limits_which_request_a_fault_takes(
    client: httpx.AsyncClient, t1: Tenant
) -> None:
    fault = await add_fault(client, provider="twilio", status=201, method="post")
    assert fault["fault"]["method"] == "POST"
    # The lookup GET passes untouched; the POST takes the fault (503 by default).
    assert (await client.get(twilio_path(t1), headers=twilio_auth(t1))).status_code == 200
    data = {"To": TO, "From": FROM, "Body": "x"}
    response = await client.post(twilio_path(t1), data=data, headers=twilio_auth(t1))
    assert response.status_code == 503


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/_sim/held", {"wait": "soon"}),
        ("/_sim/held", {"wait": "-1"}),
        ("/_sim/held", {"wait": "nan"}),
    ],
)
async def test_bad_held_requests_are_400(
    client: httpx.AsyncClient, path: str, params: dict[str, str]
) -> None:
    response = await client.get(path, params=params)
    assert response.status_code == 400
    assert response.json()["error"]


async def test_bad_release_and_bad_fault_method_are_400(client: httpx.AsyncClient) -> None:
    assert (await client.post("/_sim/held/abc/release")).status_code == 400
    body = await add_fault(client, status=400, provider="twilio", mode="hold", method="FETCH")
    assert "method must be one of" in body["error"]


# --- the hub's adapters against the simulator ---------------------------------------


def connector_command(provider: str, payload: SendSms | SendEmail, key: str) -> ConnectorCommand:
    header = EventHeader.new(ConnectorCommand.EVENT_TYPE, "t1", source="test", correlation_id="c")
    return ConnectorCommand(header=header, idempotency_key=key, provider=provider, payload=payload)


async def look_up(
    client: httpx.AsyncClient,
    adapter: Twilio | SendGrid,
    command: ConnectorCommand,
    t: Tenant,
    since: datetime,
) -> LookupOutcome:
    """Ask, read and follow NextPage, as the executor will."""
    payload: Any = command.payload
    request = adapter.lookup_request(command, payload, t, f"http://sim/{adapter.name}", since)
    for _ in range(20):
        outcome = adapter.read_lookup(command, payload, t, await client.send(request), since)
        if not isinstance(outcome, NextPage):
            return outcome
        request = outcome.request
    raise AssertionError("the lookup never ended")


async def adapter_send(
    client: httpx.AsyncClient, adapter: Twilio | SendGrid, command: ConnectorCommand, t: Tenant
) -> Delivered:
    payload: Any = command.payload
    request = adapter.build_request(command, payload, t, f"http://sim/{adapter.name}")
    outcome = adapter.classify(await client.send(request))
    assert isinstance(outcome, Delivered), outcome
    return outcome


async def test_twilio_adapter_finds_its_message_queued_or_sent(
    client: httpx.AsyncClient, t1: Tenant, clock: Clock
) -> None:
    twilio = Twilio()
    since = datetime.fromtimestamp(clock.now, UTC)
    mine = connector_command("twilio", SendSms(to=TO, text="Fee received"), "k-1")
    delivered = await adapter_send(client, twilio, mine, t1)
    # Still queued: only the list without a DateSent filter shows it.
    queued = await look_up(client, twilio, mine, t1, since)
    assert queued == Found(delivered.provider_ref, {"status": "queued"})
    clock.now += 5
    assert await look_up(client, twilio, mine, t1, since) == Found(
        delivered.provider_ref, {"status": "delivered"}
    )
    other = connector_command("twilio", SendSms(to=TO, text="Fee received!"), "k-2")
    assert await look_up(client, twilio, other, t1, since) == NotFound()
    elsewhere = connector_command("twilio", SendSms(to=OTHER, text="Fee received"), "k-3")
    assert await look_up(client, twilio, elsewhere, t1, since) == NotFound()


async def test_twilio_adapter_reads_past_the_first_page(
    client: httpx.AsyncClient, t1: Tenant, clock: Clock
) -> None:
    twilio = Twilio()
    since = datetime.fromtimestamp(clock.now, UTC)
    mine = connector_command("twilio", SendSms(to=TO, text="the first"), "k-1")
    delivered = await adapter_send(client, twilio, mine, t1)
    for i in range(55):  # newer messages push ours onto the second page
        await send_sms(client, t1, TO, f"later {i}")
    clock.now += 5
    before = len(await recorded(client, method="GET"))
    assert await look_up(client, twilio, mine, t1, since) == Found(
        delivered.provider_ref, {"status": "delivered"}
    )
    assert len(await recorded(client, method="GET")) - before == 2


async def test_twilio_adapter_finds_a_message_whose_answer_is_held(
    client: httpx.AsyncClient, t1: Tenant
) -> None:
    """The in-doubt window itself: Twilio created the message, the caller heard nothing."""
    twilio = Twilio()
    since = datetime.now(UTC)
    await add_fault(client, provider="twilio", mode="hold", method="POST")
    mine = connector_command("twilio", SendSms(to=TO, text="in doubt"), "k-1")
    sending = asyncio.create_task(adapter_send(client, twilio, mine, t1))
    [entry] = await held(client, provider="twilio", wait="5")
    found = await look_up(client, twilio, mine, t1, since)
    assert isinstance(found, Found)
    assert (await client.post(f"/_sim/held/{entry['id']}/release")).status_code == 200
    assert (await asyncio.wait_for(sending, 5)).provider_ref == found.provider_ref


async def test_sendgrid_adapter_finds_its_mail_by_key(
    client: httpx.AsyncClient, t1: Tenant, clock: Clock
) -> None:
    sendgrid = SendGrid()
    since = datetime.fromtimestamp(clock.now, UTC)
    payload = SendEmail(to="parent@example.com", subject="Fee receipt", text="Thank you")
    mine = connector_command("sendgrid", payload, 'receipt "42" \\ t1')
    delivered = await adapter_send(client, sendgrid, mine, t1)
    found = await look_up(client, sendgrid, mine, t1, since)
    assert isinstance(found, Found)
    assert found.details == {"status": "processed", "message_id": delivered.provider_ref}
    assert str(found.provider_ref).startswith(f"{delivered.provider_ref}.")
    other = connector_command("sendgrid", payload, "receipt 43")
    assert await look_up(client, sendgrid, other, t1, since) == NotFound()
