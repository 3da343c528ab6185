"""Flutterwave v3: Standard hosted checkout out, `charge.completed` webhooks in.

- Create: `POST /v3/payments` -> `data.link`, the hosted checkout. The hub's order id
  is the `tx_ref` we choose (derived from the receipt): the webhook and the status
  query both name it, so it is `Delivered.provider_ref`.
- Status: `GET /v3/transactions/verify_by_reference?tx_ref=`.
- Refund: `POST /v3/transactions/{id}/refund`.
- Test connection: `GET /v3/balances`, a read of the account's wallets.

Idempotency: v3 has no idempotency header (only v4 has `X-Idempotency-Key`); the
`tx_ref` is the key. A create repeated with the same `tx_ref` before anyone paid is
answered with a checkout link for that same `tx_ref`, so a retry after a lost answer
still hands the payer a working link and one payment at most can settle it; once a
transaction of that `tx_ref` exists the create is refused as a duplicate. (Flutterwave's
docs only say the `tx_ref` "must be unique"; the simulator models this reading.)
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, SecretStr

from core.tenants import Tenant
from providers.base import Delivered, Outcome, Rejected, classify_failure, json_or_empty
from providers.currency_units import AmountError, json_number, to_major, to_minor
from providers.payments import GatewayAdapter, PaymentSnapshot, SnapshotStatus
from providers.spec import API, NormalizationError, Provider, Webhooks
from schemas.events import (
    ConnectorCommand,
    CreatePaymentOrder,
    FetchPaymentStatus,
    PaymentEvent,
    PaymentEventKind,
    RawWebhook,
    RefundPayment,
)

# A receipt used as it is when it is a plain reference; anything else is hashed.
TX_REF = re.compile(r"^[A-Za-z0-9_.:-]{1,100}$")
META_FIELDS = ("invoice_id", "student_id", "request_id")
# Read back in classify: what the request asked about.
TX_REF_EXTENSION = "flutterwave.tx_ref"
CURRENCY_EXTENSION = "flutterwave.currency"
NOT_FOUND_MESSAGE = "no transaction was found"
_STATUSES: dict[str, SnapshotStatus] = {
    "successful": "CAPTURED",
    "failed": "FAILED",
    "pending": "PENDING",
}


class FlutterwaveAccount(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    secret_key: SecretStr  # FLWSECK-..., sent as the Bearer token
    # The dashboard's webhook "secret hash": Flutterwave echoes it in `verif-hash`.
    secret_hash: SecretStr
    # Flutterwave requires a customer email; the school's fees address when the invoice has none.
    default_customer_email: str
    # Where the payer's browser goes after checkout, unless the request names its own.
    redirect_url: str
    checkout_title: str = "School fees"


def tx_ref_for(receipt: str) -> str:
    """The receipt when it is a plain reference, else a stable hash of it."""
    if TX_REF.match(receipt):
        return receipt
    return "hub-" + hashlib.sha256(receipt.encode()).hexdigest()[:40]


def _auth_headers(account: FlutterwaveAccount) -> dict[str, str]:
    return {"Authorization": f"Bearer {account.secret_key.get_secret_value()}"}


def _customer(payload: CreatePaymentOrder, account: FlutterwaveAccount) -> dict[str, str]:
    notes = payload.notes
    customer = {"email": notes.get("customer_email") or account.default_customer_email}
    if notes.get("customer_phone"):
        customer["phonenumber"] = notes["customer_phone"]
    if notes.get("customer_name"):
        customer["name"] = notes["customer_name"]
    return customer


def _message(body: Mapping[str, Any], response: httpx.Response) -> str:
    return str(body.get("message") or response.reason_phrase or "error")


def _data(body: Mapping[str, Any]) -> dict[str, Any]:
    data = body.get("data")
    return data if isinstance(data, dict) else {}


class Flutterwave(GatewayAdapter):
    name = "flutterwave"

    def _account(self, tenant: Tenant, label: str | None) -> FlutterwaveAccount:
        return tenant.account(self.name, FlutterwaveAccount, label)

    def create_order(
        self, command: ConnectorCommand, payload: CreatePaymentOrder, tenant: Tenant, base: str
    ) -> httpx.Request:
        account = self._account(tenant, command.account)
        tx_ref = tx_ref_for(payload.receipt)
        body: dict[str, Any] = {
            "tx_ref": tx_ref,
            "amount": json_number(to_major(payload.amount_minor, payload.currency)),
            "currency": payload.currency,
            "redirect_url": payload.return_url or account.redirect_url,
            "customer": _customer(payload, account),
            "meta": {k: payload.notes[k] for k in META_FIELDS if payload.notes.get(k)},
            "customizations": {"title": account.checkout_title},
        }
        request = httpx.Request(
            "POST", f"{base}/v3/payments", json=body, headers=_auth_headers(account)
        )
        request.extensions = {**request.extensions, TX_REF_EXTENSION: tx_ref}
        return request

    def classify_order(self, response: httpx.Response) -> Outcome:
        body = json_or_empty(response)
        link = _data(body).get("link")
        tx_ref = str(response.request.extensions.get(TX_REF_EXTENSION, ""))
        if response.status_code == 200 and body.get("status") == "success":
            if isinstance(link, str) and link and tx_ref:
                return Delivered(tx_ref, 200, {"payment_url": link, "tx_ref": tx_ref})
            return Rejected("flutterwave answered success without a checkout link", 200)
        return classify_failure(response, _message(body, response), None)

    def fetch_status(
        self, command: ConnectorCommand, payload: FetchPaymentStatus, tenant: Tenant, base: str
    ) -> httpx.Request:
        account = self._account(tenant, command.account)
        request = httpx.Request(
            "GET",
            f"{base}/v3/transactions/verify_by_reference",
            params={"tx_ref": payload.order_id},
            headers=_auth_headers(account),
        )
        request.extensions = {
            **request.extensions,
            TX_REF_EXTENSION: payload.order_id,
            CURRENCY_EXTENSION: payload.currency,
        }
        return request

    def classify_status(self, response: httpx.Response) -> Outcome:
        body = json_or_empty(response)
        asked = str(response.request.extensions.get(TX_REF_EXTENSION, ""))
        message = _message(body, response)
        if response.status_code in (400, 404) and NOT_FOUND_MESSAGE in message.lower():
            # Nobody has started paying yet: Flutterwave holds no transaction for it.
            return Delivered(
                asked, response.status_code, PaymentSnapshot("NOT_FOUND", asked).to_details()
            )
        if response.status_code != 200 or body.get("status") != "success":
            return classify_failure(response, message, None)
        data = _data(body)
        if data.get("tx_ref") != asked:
            return Rejected(
                f"flutterwave answered for tx_ref {data.get('tx_ref')!r}, not {asked!r}", 200
            )
        expected = str(response.request.extensions.get(CURRENCY_EXTENSION, ""))
        if expected and data.get("currency") != expected:
            return Rejected(
                f"transaction is in {data.get('currency')!r}, the order in {expected!r}", 200
            )
        try:
            snapshot = _snapshot(asked, data)
        except (AmountError, NormalizationError) as exc:
            return Rejected(f"flutterwave status answer: {exc}", 200)
        return Delivered(asked, 200, snapshot.to_details())

    def refund(
        self, command: ConnectorCommand, payload: RefundPayment, tenant: Tenant, base: str
    ) -> httpx.Request:
        account = self._account(tenant, command.account)
        amount = json_number(to_major(payload.amount_minor, payload.currency))
        return httpx.Request(
            "POST",
            f"{base}/v3/transactions/{payload.payment_id}/refund",
            json={"amount": amount},
            headers=_auth_headers(account),
        )

    def classify_refund(self, response: httpx.Response) -> Outcome:
        body = json_or_empty(response)
        refund_id = _data(body).get("id")
        if response.status_code == 200 and body.get("status") == "success" and refund_id:
            data = _data(body)
            return Delivered(
                str(refund_id),
                200,
                {"refund_id": str(refund_id), "refund_status": str(data.get("status") or "")},
            )
        return classify_failure(response, _message(body, response), None)

    def probe_request(self, tenant: Tenant, label: str | None, base_url: str) -> httpx.Request:
        account = self._account(tenant, label)
        return httpx.Request(
            "GET", f"{base_url.rstrip('/')}/v3/balances", headers=_auth_headers(account)
        )


def _transaction_id(data: Mapping[str, Any]) -> str:
    value = data.get("id")
    # Flutterwave's transaction id is a number; str() is the same text the webhook gives.
    if isinstance(value, bool) or not isinstance(value, int | str) or not str(value):
        raise NormalizationError("flutterwave transaction has no valid 'id'")
    return str(value)


def _text(data: Mapping[str, Any], field: str) -> str:
    value = data.get(field)
    if not isinstance(value, str) or not value:
        raise NormalizationError(f"flutterwave transaction has no valid {field!r}")
    return value


def _snapshot(tx_ref: str, data: Mapping[str, Any]) -> PaymentSnapshot:
    status = _STATUSES.get(str(data.get("status")), "PENDING")
    currency = _text(data, "currency")
    return PaymentSnapshot(
        status=status,
        order_id=tx_ref,
        payment_id=_transaction_id(data),
        amount_minor=to_minor(data.get("amount"), currency),
        currency=currency,
        method=str(data.get("payment_type") or ""),
        error_description=str(data.get("processor_response") or "") if status == "FAILED" else "",
    )


class FlutterwaveVerifier:
    """`verif-hash`: the account's dashboard "secret hash", echoed verbatim.

    It is NOT an HMAC of the body: anyone who learns the hash can forge any body,
    and nothing in v3 binds it to a time, so there is no replay window. It is compared
    in constant time; what a forged or replayed body could claim is guarded elsewhere:
    the hub's money checks match amount and currency against the invoice, and the
    ledger de-duplicates on the transaction id. Flutterwave sends no event id header.
    """

    signature_header = "verif-hash"
    event_id_header: str | None = None
    binds_body = False  # the same header verifies any body (see above)

    def sign(self, body: bytes, secret: str) -> str:
        return secret  # the header carries the secret hash itself, whatever the body

    def signed_headers(self, body: bytes, secret: str) -> dict[str, str]:
        return {self.signature_header: secret}

    def verify(self, body: bytes, headers: Mapping[str, str], secret: str) -> bool:
        received = headers.get(self.signature_header, "")
        if not received or not secret:
            return False
        return hmac.compare_digest(received.encode(), secret.encode())


# --- Webhooks: charge.completed to the hub's PaymentEvent --------------------------

_KINDS = {"successful": PaymentEventKind.CAPTURED, "failed": PaymentEventKind.FAILED}


def flutterwave_event_id(body: Mapping[str, Any]) -> str | None:
    """One delivery per transaction and status: a resent webhook is a duplicate."""
    data = body.get("data")
    if not isinstance(data, dict) or data.get("id") is None:
        return None
    return f"{data['id']}:{data.get('status')}"


def _created_at(data: Mapping[str, Any]) -> datetime | None:
    value = data.get("created_at")
    try:
        return datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None


def normalize_flutterwave(raw: RawWebhook, body: dict[str, Any]) -> PaymentEvent | None:
    if body.get("event") != "charge.completed":
        return None  # transfers, subscriptions and the rest: nothing the hub records
    data = body.get("data")
    if not isinstance(data, dict):
        raise NormalizationError("flutterwave charge.completed has no 'data' object")
    kind = _KINDS.get(str(data.get("status")))
    if kind is None:
        return None  # pending: the completed (or failed) charge comes later
    currency = _text(data, "currency")
    try:
        amount_minor = to_minor(data.get("amount"), currency)
    except AmountError as exc:
        raise NormalizationError(str(exc)) from None
    failed = kind is PaymentEventKind.FAILED
    return PaymentEvent(
        header=raw.header.caused(f"payments.payment.{kind.lower()}", source="normalizer"),
        provider=raw.provider,
        provider_event_id=raw.provider_event_id,
        kind=kind,
        payment_id=_transaction_id(data),
        order_id=_text(data, "tx_ref"),
        amount_minor=amount_minor,
        currency=currency,
        method=data.get("payment_type") if isinstance(data.get("payment_type"), str) else None,
        error_description=(str(data.get("processor_response") or "") or None) if failed else None,
        provider_created_at=_created_at(data),
    )


PROVIDER = Provider(
    name="flutterwave",
    title="Flutterwave",
    category="payment",
    account_model=FlutterwaveAccount,
    adapter=Flutterwave(),
    base_urls={API: "https://api.flutterwave.com"},
    simulator_paths={API: "/flutterwave"},
    summary="Payment gateway (Africa): v3 Standard checkout, verify by tx_ref, refunds, webhooks",
    docs_url="https://developer.flutterwave.com/docs/collecting-payments/standard",
    webhooks=Webhooks(
        FlutterwaveVerifier(),
        normalize_flutterwave,
        secret_field="secret_hash",  # noqa: S106 - a field name
        event_id=flutterwave_event_id,
    ),
)
