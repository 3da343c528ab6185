"""Pesapal API 3.0: orders out, IPNs in, and the status query that decides.

- Auth: `POST /api/Auth/RequestToken` -> a five-minute Bearer token (providers/pesapal_auth.py).
- Create: `POST /api/Transactions/SubmitOrderRequest` -> `order_tracking_id` (the hub's
  order id: the IPN and the status query name it) and `redirect_url` (the checkout).
  Idempotency: the merchant reference `id` is derived from the receipt; the same order
  submitted again is answered with the order it created (see simulators/pesapal.py).
- Status: `GET /api/Transactions/GetTransactionStatus?orderTrackingId=`.
- Refund: `POST /api/Transactions/RefundRequest` with the payment's confirmation code.
- Test connection: `GET /api/URLSetup/GetIpnList`, after a token.

IPNs carry ids only and Pesapal signs nothing. The operator registers, once per
account, the hub's URL *with the account's ipn_token in its query string*
(`register_ipn`), with `ipn_notification_type` GET; the registered `ipn_id` is the
account's `ipn_id`. The ingress checks the token (the only proof a delivery came from
the URL we gave Pesapal) and the normalizer asks GetTransactionStatus what happened.
Only GET IPNs are taken: the ingress reads one body format per provider, and a GET's
fields are its query string.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlencode

import httpx
from pydantic import BaseModel, ConfigDict, SecretStr

import providers
from core.settings import Settings
from core.tenants import Tenant
from providers.base import (
    RETRYABLE_STATUSES,
    Delivered,
    Outcome,
    Rejected,
    RetryLater,
    json_or_empty,
    parse_retry_after,
)
from providers.currency_units import AmountError, json_number, to_major, to_minor
from providers.payments import FollowUp, GatewayAdapter, PaymentSnapshot, SnapshotStatus
from providers.pesapal_auth import TOKEN_PATH, PesapalAuths, pesapal_error
from providers.spec import API, Delivery, NormalizationError, Provider, Webhooks
from schemas.events import (
    ConnectorCommand,
    CreatePaymentOrder,
    FetchPaymentStatus,
    RawWebhook,
    RefundPayment,
)

# Pesapal's merchant reference: alphanumeric and -_.: , at most 50 characters.
MERCHANT_REFERENCE = re.compile(r"^[A-Za-z0-9_.:-]{1,50}$")
DESCRIPTION_LIMIT = 100
TOKEN = "token"  # noqa: S105 - the name of the token endpoint's base URL
IPN_TOKEN_PARAM = "token"  # noqa: S105 - the query parameter's name
TRACKING_EXTENSION = "pesapal.order_tracking_id"
CONFIRMATION_EXTENSION = "pesapal.confirmation_code"
# GetTransactionStatus's status_code: 0 INVALID, 1 COMPLETED, 2 FAILED, 3 REVERSED.
COMPLETED, FAILED, INVALID = 1, 2, 0


class PesapalAccount(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    consumer_key: str
    consumer_secret: SecretStr
    # The registered IPN's id (RegisterIPN's ipn_id): every order names it.
    ipn_id: str
    # Carried in the registered IPN URL's query string; the ingress checks it.
    ipn_token: SecretStr
    # Where the payer's browser returns after paying, unless the request names its own.
    callback_url: str
    refund_username: str = "integration-hub"  # RefundRequest's "who asked"


def merchant_reference_for(receipt: str) -> str:
    """The receipt when Pesapal accepts it as a reference, else a stable 44-character hash."""
    if MERCHANT_REFERENCE.match(receipt):
        return receipt
    return "hub-" + hashlib.sha256(receipt.encode()).hexdigest()[:40]


def _description(payload: CreatePaymentOrder) -> str:
    invoice = payload.notes.get("invoice_id")
    return (f"School fees, invoice {invoice}" if invoice else "School fees")[:DESCRIPTION_LIMIT]


def _billing_address(payload: CreatePaymentOrder) -> dict[str, str]:
    # Pesapal needs an email or a phone; the payer can complete it on the checkout page.
    notes, address = payload.notes, {}
    for field, note in (
        ("email_address", "customer_email"),
        ("phone_number", "customer_phone"),
        ("first_name", "customer_name"),
    ):
        if notes.get(note):
            address[field] = notes[note]
    return address


def _failure(response: httpx.Response, body: Mapping[str, Any]) -> Outcome:
    """Pesapal's error, by the body's `status` when HTTP says 200 (it often does)."""
    error = pesapal_error(dict(body)) or {}
    code = str(error.get("code") or "") or None
    message = str(error.get("message") or body.get("message") or code or response.reason_phrase)
    status = response.status_code
    said = str(body.get("status") or "")
    effective = int(said) if 200 <= status < 300 and said.isdigit() and said != "200" else status
    if effective in RETRYABLE_STATUSES or effective >= 500:
        retry_after = parse_retry_after(response.headers.get("retry-after"))
        return RetryLater(message, status, code, retry_after)
    return Rejected(message, status, code)


def _succeeded(response: httpx.Response, body: Mapping[str, Any]) -> bool:
    said = str(body.get("status") or "200")
    return response.status_code == 200 and said == "200" and pesapal_error(dict(body)) is None


class Pesapal(GatewayAdapter):
    name = "pesapal"

    def __init__(self, auths: PesapalAuths | None = None) -> None:
        self._auths = auths or PesapalAuths()

    def _account(self, tenant: Tenant, label: str | None) -> PesapalAccount:
        return tenant.account(self.name, PesapalAccount, label)

    def auth(
        self, tenant: Tenant, settings: Settings, label: str | None = None
    ) -> httpx.Auth | None:
        account = self._account(tenant, label)
        token_url = providers.base_url(settings, self.name, TOKEN)
        secret = account.consumer_secret.get_secret_value()
        return self._auths.get(tenant.id, account.consumer_key, secret, token_url)

    def create_order(
        self, command: ConnectorCommand, payload: CreatePaymentOrder, tenant: Tenant, base: str
    ) -> httpx.Request:
        account = self._account(tenant, command.account)
        body: dict[str, Any] = {
            "id": merchant_reference_for(payload.receipt),
            "currency": payload.currency,
            "amount": json_number(to_major(payload.amount_minor, payload.currency)),
            "description": _description(payload),
            "callback_url": payload.return_url or account.callback_url,
            "notification_id": account.ipn_id,
            "billing_address": _billing_address(payload),
        }
        return httpx.Request(
            "POST",
            f"{base}/api/Transactions/SubmitOrderRequest",
            json=body,
            headers={"Accept": "application/json"},
        )

    def classify_order(self, response: httpx.Response) -> Outcome:
        body = json_or_empty(response)
        tracking, link = body.get("order_tracking_id"), body.get("redirect_url")
        if not _succeeded(response, body):
            return _failure(response, body)
        if not (isinstance(tracking, str) and tracking and isinstance(link, str) and link):
            return Rejected("pesapal answered without an order_tracking_id and redirect_url", 200)
        reference = str(body.get("merchant_reference") or "")
        details = {"payment_url": link, "merchant_reference": reference}
        return Delivered(tracking, 200, details)

    def fetch_status(
        self, command: ConnectorCommand, payload: FetchPaymentStatus, tenant: Tenant, base: str
    ) -> httpx.Request:
        request = httpx.Request(
            "GET",
            f"{base}/api/Transactions/GetTransactionStatus",
            params={"orderTrackingId": payload.order_id},
            headers={"Accept": "application/json"},
        )
        request.extensions = {**request.extensions, TRACKING_EXTENSION: payload.order_id}
        return request

    def classify_status(self, response: httpx.Response) -> Outcome:
        body = json_or_empty(response)
        tracking = str(response.request.extensions.get(TRACKING_EXTENSION, ""))
        code = str((pesapal_error(body) or {}).get("code") or "")
        if code.endswith("not_found"):  # payment_details_not_found: no such order (here)
            return Delivered(tracking, 200, PaymentSnapshot("NOT_FOUND", tracking).to_details())
        if not _succeeded(response, body):
            return _failure(response, body)
        try:
            snapshot = status_snapshot(tracking, body)
        except (AmountError, NormalizationError) as exc:
            return Rejected(f"pesapal status answer: {exc}", 200)
        return Delivered(tracking, 200, snapshot.to_details())

    def refund(
        self, command: ConnectorCommand, payload: RefundPayment, tenant: Tenant, base: str
    ) -> httpx.Request:
        account = self._account(tenant, command.account)
        body = {
            "confirmation_code": payload.payment_id,
            "amount": str(to_major(payload.amount_minor, payload.currency)),
            "username": account.refund_username,
            "remarks": payload.reason or "Refund requested by the school",
        }
        request = httpx.Request(
            "POST",
            f"{base}/api/Transactions/RefundRequest",
            json=body,
            headers={"Accept": "application/json"},
        )
        request.extensions = {**request.extensions, CONFIRMATION_EXTENSION: payload.payment_id}
        return request

    def classify_refund(self, response: httpx.Response) -> Outcome:
        body = json_or_empty(response)
        if not _succeeded(response, body):
            return _failure(response, body)
        # Pesapal returns no refund id: the payment's confirmation code names it.
        code = str(response.request.extensions.get(CONFIRMATION_EXTENSION, ""))
        return Delivered(code or None, 200, {"message": str(body.get("message") or "")})

    def probe_request(self, tenant: Tenant, label: str | None, base_url: str) -> httpx.Request:
        self._account(tenant, label)  # a missing account fails here, not at the token
        return httpx.Request(
            "GET",
            f"{base_url.rstrip('/')}/api/URLSetup/GetIpnList",
            headers={"Accept": "application/json"},
        )


def _status(body: Mapping[str, Any]) -> SnapshotStatus:
    code = body.get("status_code")
    described = str(body.get("payment_status_description") or "").upper()
    if code == COMPLETED or described == "COMPLETED":
        return "CAPTURED"
    if code == FAILED or described == "FAILED":
        return "FAILED"
    if code == INVALID or described == "INVALID":
        # Pesapal answers INVALID both for an order nobody has tried to pay yet and
        # for a payment attempt it threw out; only the second has a method or a code.
        attempted = body.get("payment_method") or body.get("confirmation_code")
        return "FAILED" if attempted else "PENDING"
    return "PENDING"  # REVERSED and anything new: nothing the hub settles on


def status_snapshot(tracking: str, body: Mapping[str, Any]) -> PaymentSnapshot:
    """GetTransactionStatus as a snapshot.

    payment_id: a captured payment is named by its confirmation code (the payment's
    reference, which a refund needs); a COMPLETED answer without one stays PENDING
    rather than settle under an id that could change. A failed order is named by
    its tracking id: one failure per order, however many attempts failed.
    """
    status = _status(body)
    confirmation = str(body.get("confirmation_code") or "")
    if status == "CAPTURED" and not confirmation:
        status = "PENDING"
    currency = body.get("currency")
    if not isinstance(currency, str) or not currency:
        raise NormalizationError("the answer has no currency")
    failed = status == "FAILED"
    return PaymentSnapshot(
        status=status,
        order_id=tracking,
        payment_id=tracking if failed else confirmation,
        amount_minor=to_minor(body.get("amount", 0), currency),
        currency=currency,
        method=str(body.get("payment_method") or ""),
        error_code=str(body.get("status_code") if failed else ""),
        error_description=str(body.get("description") or "") if failed else "",
    )


# --- IPN registration: once per account, by the operator -----------------------------


def ipn_url(webhook_url: str, ipn_token: str) -> str:
    """The hub's webhook URL for the tenant, with the token the ingress will check."""
    separator = "&" if "?" in webhook_url else "?"
    return f"{webhook_url}{separator}{urlencode({IPN_TOKEN_PARAM: ipn_token})}"


class IpnRegistrationError(RuntimeError):
    """Pesapal did not register the IPN URL (its answer says why)."""


async def register_ipn(
    client: httpx.AsyncClient, account: PesapalAccount, base_url: str, webhook_url: str
) -> str:
    """Register the hub's IPN URL (GET) with Pesapal; returns the ipn_id for the account.

    `webhook_url` is the ingress's `.../webhooks/pesapal/<tenant>`; the account's
    ipn_token is added to it, so every IPN Pesapal sends carries it.
    """
    base = base_url.rstrip("/")
    secret = account.consumer_secret.get_secret_value()
    auth = PesapalAuths().get("register", account.consumer_key, secret, base + TOKEN_PATH)
    url = ipn_url(webhook_url, account.ipn_token.get_secret_value())
    response = await client.post(
        f"{base}/api/URLSetup/RegisterIPN",
        json={"url": url, "ipn_notification_type": "GET"},
        auth=auth,
    )
    body = json_or_empty(response)
    ipn_id = body.get("ipn_id")
    if not _succeeded(response, body) or not isinstance(ipn_id, str) or not ipn_id:
        raise IpnRegistrationError(f"RegisterIPN failed: {_failure(response, body)}")
    return ipn_id


# --- the IPN: a token check, then a FollowUp ---------------------------------------------


class PesapalVerifier:
    """No signature exists: the registered IPN URL's `token` is checked, in constant time.

    Pesapal sends no header to check (hence no signature_header: the ingress leaves
    the decision to verify_delivery). A delivery without the right token is refused.
    """

    signature_header = ""
    event_id_header: str | None = None

    def sign(self, body: bytes, secret: str) -> str:
        return secret  # what the IPN URL carries

    def signed_headers(self, body: bytes, secret: str) -> dict[str, str]:
        return {}  # the proof travels in the URL, not in headers

    def verify(self, body: bytes, headers: Mapping[str, str], secret: str) -> bool:
        return False  # without the URL there is nothing to check

    def verify_delivery(self, delivery: Delivery, secret: str, account: BaseModel) -> bool:
        received = delivery.query.get(IPN_TOKEN_PARAM, "")
        if delivery.method != "GET" or not received or not secret:
            return False
        return hmac.compare_digest(received.encode(), secret.encode())


def pesapal_event_id_at(clock: Callable[[], int]) -> Callable[[Mapping[str, Any]], str | None]:
    def event_id(body: Mapping[str, Any]) -> str | None:
        """Unique per delivery, on purpose.

        Every IPN of an order has the same query string, yet the order's status can
        change between two of them (a failed attempt, then a paid one). A stable id
        would drop the second as a duplicate and its FollowUp would reuse the first
        status answer; so each delivery asks again. Repeats are harmless: the status
        answer settles a payment once (the ledger keys on payment id and kind).
        """
        tracking = body.get("OrderTrackingId")
        if not isinstance(tracking, str) or not tracking:
            return None
        return f"{tracking}:{body.get('OrderNotificationType')}:{clock()}"

    return event_id


def pesapal_event_type(body: Mapping[str, Any]) -> str | None:
    found = body.get("OrderNotificationType")
    return found if isinstance(found, str) else None


def acknowledge_ipn(body: Mapping[str, Any]) -> Mapping[str, Any]:
    """The answer Pesapal expects, else it keeps sending the IPN."""
    return {
        "orderNotificationType": body.get("OrderNotificationType", ""),
        "orderTrackingId": body.get("OrderTrackingId", ""),
        "orderMerchantReference": body.get("OrderMerchantReference", ""),
        "status": 200,
    }


def normalize_pesapal(raw: RawWebhook, body: dict[str, Any]) -> FollowUp | None:
    if body.get("OrderNotificationType") != "IPNCHANGE":
        return None  # CALLBACKURL and RECURRING notices: nothing for the hub to ask
    tracking = body.get("OrderTrackingId")
    if not isinstance(tracking, str) or not tracking.strip():
        raise NormalizationError("pesapal IPN has no OrderTrackingId")
    return FollowUp("fetch_status", tracking.strip(), reason="ipn")


PROVIDER = Provider(
    name="pesapal",
    title="Pesapal",
    category="payment",
    account_model=PesapalAccount,
    adapter=Pesapal(),
    base_urls={API: "https://pay.pesapal.com/v3", TOKEN: "https://pay.pesapal.com/v3" + TOKEN_PATH},
    simulator_paths={API: "/pesapal", TOKEN: "/pesapal" + TOKEN_PATH},
    summary="Payment gateway (East Africa): API 3.0 orders, IPN + GetTransactionStatus, refunds",
    docs_url="https://developer.pesapal.com/how-to-integrate/e-commerce/api-30-json/api-reference",
    webhooks=Webhooks(
        PesapalVerifier(),
        normalize_pesapal,
        secret_field="ipn_token",  # noqa: S106 - a field name
        body_format="query",
        methods=("GET",),
        event_type=pesapal_event_type,
        event_id=pesapal_event_id_at(time.time_ns),
        acknowledge=acknowledge_ipn,
    ),
)
