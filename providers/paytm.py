"""Paytm PG: Initiate Transaction, order status and refunds out; the checksummed callback in.

Every call is `{"body": {...}, "head": {"signature": <checksum of the body's JSON text>}}`
under the merchant key (providers/paytm_checksum.py); there are no auth headers.

- `POST /theia/api/v1/initiateTransaction?mid=&orderId=` -> `body.txnToken`. Paytm has
  no idempotency header: the orderId is the idempotency. It is derived from the receipt,
  so a retry names the same order, and Paytm answers a second initiate of an orderId
  with `334` (duplicate) and no token. The token of a lost answer cannot be fetched
  again, so `334` is Rejected with that reason (the payer needs a new payment request,
  a new receipt), never a Delivered order nobody can pay.
- The payer pays on `showPaymentPage?mid=&orderId=`, which real Paytm opens from a
  form POST of mid, orderId and txnToken: the hub gives that URL and the token in
  `Delivered.details` (payment_url, txn_token) for whoever renders the payer's page.
- `POST /v3/order/status` -> TXN_SUCCESS / TXN_FAILURE / PENDING; txnId is the payment id,
  the TXNID of the callback too. `POST /refund/apply` de-duplicates by refId, derived from
  the command's idempotency key.

Paytm answers most errors with HTTP 200 and `resultInfo.resultStatus` "F": those are
classified by their resultCode (501/502 are Paytm's "system error, retry"), not Delivered.
"""

from __future__ import annotations

import hashlib
import json
import re
from decimal import Decimal
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, SecretStr, field_validator

from core.tenants import Tenant
from providers.base import (
    Delivered,
    Outcome,
    Rejected,
    RetryLater,
    classify_failure,
    json_or_empty,
)
from providers.payments import GatewayAdapter, PaymentSnapshot, SnapshotStatus
from providers.paytm_checksum import AES_KEY_SIZES, generate_signature
from providers.paytm_webhooks import (
    PaytmVerifier,
    callback_event_id,
    callback_event_type,
    minor_units,
    normalize_paytm,
)
from providers.probe import ProbeResult
from providers.spec import API, NormalizationError, Provider, Webhooks
from schemas.events import (
    ConnectorCommand,
    CreatePaymentOrder,
    FetchPaymentStatus,
    RefundPayment,
)

# Paytm's orderId and refId: alphanumeric plus "_", "@" and "-", at most 50 characters.
PAYTM_ID = re.compile(r"^[A-Za-z0-9_@-]{3,50}$")
CUST_ID = re.compile(r"^[A-Za-z0-9@!_$.-]{1,64}$")
MOBILE = re.compile(r"^[6-9][0-9]{9}$")  # Paytm's userInfo.mobile: 10 digits, no +91
INITIATE_PATH = "/theia/api/v1/initiateTransaction"
PAYMENT_PAGE_PATH = "/theia/api/v1/showPaymentPage"
STATUS_PATH = "/v3/order/status"
REFUND_PATH = "/refund/apply"
PROBE_ORDER_ID = "hub_probe_order"
# resultCodes that mean "Paytm failed, not the request": retry with the same orderId/refId.
RETRYABLE_CODES = frozenset({"501", "502"})
# A refund of this order is still being processed: Paytm asks to retry in a few minutes.
REFUND_IN_PROGRESS = "626"
REFUND_ALREADY_RAISED = "617"  # the same refId again: the refund exists
NO_RECORD = "331"  # order status of an orderId Paytm never saw
DUPLICATE_ORDER = "334"
# resultCodes refusing the credentials: a checksum the key did not make, an unknown MID.
AUTH_CODES = frozenset({"227", "2006"})
CENTS = Decimal("0.01")


class PaytmAccount(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    mid: str  # the merchant id Paytm issued
    merchant_key: SecretStr  # signs requests and the callback's CHECKSUMHASH
    website: str = "DEFAULT"  # websiteName as provisioned ("WEBSTAGING" on staging)

    @field_validator("merchant_key")
    @classmethod
    def _aes_key(cls, value: SecretStr) -> SecretStr:
        if len(value.get_secret_value().encode()) not in AES_KEY_SIZES:
            raise ValueError("a Paytm merchant key is 16 characters long")
        return value


def paytm_id(source: str, prefix: str = "hub_") -> str:
    """`source` when Paytm accepts it as an orderId/refId, else a stable hash of it."""
    if PAYTM_ID.match(source):
        return source
    return prefix + hashlib.sha256(source.encode()).hexdigest()[:40]


def rupees(amount_minor: int) -> str:
    return str((Decimal(amount_minor) / 100).quantize(CENTS))


def signed_request(url: str, body: dict[str, Any], key: str, **params: str) -> httpx.Request:
    """The body's JSON text is signed and sent as is: Paytm checks the bytes it receives."""
    text = json.dumps(body, separators=(",", ":"))
    head = json.dumps({"signature": generate_signature(text, key)}, separators=(",", ":"))
    content = f'{{"body":{text},"head":{head}}}'.encode()
    headers = {"content-type": "application/json"}
    return httpx.Request("POST", url, params=params or None, content=content, headers=headers)


def _user_info(payload: CreatePaymentOrder, tenant: Tenant) -> dict[str, str]:
    notes = payload.notes
    # A stable customer reference per student (or receipt) without sending the raw id.
    who = notes.get("student_id") or payload.receipt
    info = {"custId": "hub_" + hashlib.sha256(f"{tenant.id}:{who}".encode()).hexdigest()[:24]}
    phone = notes.get("customer_phone", "").removeprefix("+91").replace(" ", "")
    if MOBILE.match(phone):
        info["mobile"] = phone
    if notes.get("customer_email"):
        info["email"] = notes["customer_email"]
    return info


def _answer(response: httpx.Response) -> tuple[dict[str, Any], str, str, str]:
    """Paytm's response body and its resultInfo's status, code and message."""
    found = json_or_empty(response).get("body")
    body: dict[str, Any] = found if isinstance(found, dict) else {}
    info = body.get("resultInfo")
    result: dict[str, Any] = info if isinstance(info, dict) else {}
    message = str(result.get("resultMsg") or response.reason_phrase or "error")
    return body, str(result.get("resultStatus") or ""), str(result.get("resultCode") or ""), message


def _sent(response: httpx.Response) -> dict[str, Any]:
    """The body the hub sent (Paytm's answers do not always echo orderId or refId)."""
    try:
        found = json.loads(response.request.content).get("body")
    except (ValueError, AttributeError):
        return {}
    return found if isinstance(found, dict) else {}


def _refused(response: httpx.Response, code: str, message: str) -> Outcome:
    """An answer that is no success: HTTP errors by status, Paytm's 200s by resultCode."""
    if response.status_code != 200:
        return classify_failure(response, message, code or None)
    if code in RETRYABLE_CODES:
        return RetryLater(message, 200, code)
    return Rejected(message, 200, code or None)


def _snapshot_status(status: str, code: str) -> SnapshotStatus:
    if status == "TXN_SUCCESS":
        return "CAPTURED"
    if status == "PENDING":
        return "PENDING"
    return "NOT_FOUND" if code == NO_RECORD else "FAILED"


def _snapshot(
    body: dict[str, Any], status: str, code: str, message: str, order_id: str
) -> PaymentSnapshot:
    found = _snapshot_status(status, code)
    amount = body.get("txnAmount")
    failed = found == "FAILED"
    return PaymentSnapshot(
        status=found,
        order_id=str(body.get("orderId") or order_id),
        payment_id=str(body.get("txnId") or ""),
        amount_minor=minor_units(amount, "txnAmount") if amount else 0,
        currency="INR",  # Paytm PG settles in rupees only; its answer names no currency
        method=str(body.get("paymentMode") or ""),
        error_code=code if failed else "",
        error_description=message if failed else "",
    )


class Paytm(GatewayAdapter):
    name = "paytm"

    def _account(self, tenant: Tenant, label: str | None) -> PaytmAccount:
        return tenant.account("paytm", PaytmAccount, label)

    def create_order(
        self, command: ConnectorCommand, payload: CreatePaymentOrder, tenant: Tenant, base: str
    ) -> httpx.Request:
        account = self._account(tenant, command.account)
        order_id = paytm_id(payload.receipt)
        body: dict[str, Any] = {
            "requestType": "Payment",
            "mid": account.mid,
            "websiteName": account.website,
            "orderId": order_id,
            "txnAmount": {"value": rupees(payload.amount_minor), "currency": payload.currency},
            "userInfo": _user_info(payload, tenant),
        }
        if payload.callback_url:  # else the callback URL configured on Paytm's dashboard
            body["callbackUrl"] = payload.callback_url
        key = account.merchant_key.get_secret_value()
        url = base + INITIATE_PATH
        return signed_request(url, body, key, mid=account.mid, orderId=order_id)

    def classify_order(self, response: httpx.Response) -> Outcome:
        body, status, code, message = _answer(response)
        token = body.get("txnToken")
        if response.status_code == 200 and status == "S" and isinstance(token, str) and token:
            url = response.request.url
            order_id = url.params.get("orderId", "")
            page = url.copy_with(path=url.path.replace(INITIATE_PATH, PAYMENT_PAGE_PATH))
            return Delivered(
                order_id,
                200,
                {
                    "order_id": order_id,
                    "txn_token": token,
                    "payment_url": str(page),
                    # Real Paytm opens the page from a form POST of these three fields.
                    "payment_form": "POST mid, orderId, txnToken",
                },
            )
        if code == DUPLICATE_ORDER:
            reason = f"{message}: orderId already initiated; its token cannot be fetched again"
            return Rejected(reason, response.status_code, code)
        if response.status_code == 200 and status != "F":
            return Rejected(f"unexpected initiateTransaction answer: {status or 'no status'}", 200)
        return _refused(response, code, message)

    def fetch_status(
        self, command: ConnectorCommand, payload: FetchPaymentStatus, tenant: Tenant, base: str
    ) -> httpx.Request:
        account = self._account(tenant, command.account)
        body = {"mid": account.mid, "orderId": payload.order_id}
        return signed_request(base + STATUS_PATH, body, account.merchant_key.get_secret_value())

    def classify_status(self, response: httpx.Response) -> Outcome:
        body, status, code, message = _answer(response)
        if response.status_code != 200 or status not in ("TXN_SUCCESS", "TXN_FAILURE", "PENDING"):
            return _refused(response, code, message)
        try:
            sent_id = str(_sent(response).get("orderId") or "")
            snapshot = _snapshot(body, status, code, message, sent_id)
        except NormalizationError as exc:
            return Rejected(str(exc), 200, code or None)
        return Delivered(snapshot.order_id, 200, snapshot.to_details())

    def refund(
        self, command: ConnectorCommand, payload: RefundPayment, tenant: Tenant, base: str
    ) -> httpx.Request:
        account = self._account(tenant, command.account)
        body = {
            "mid": account.mid,
            "txnType": "REFUND",
            "orderId": payload.order_id,
            "txnId": payload.payment_id,
            # Paytm de-duplicates refunds by refId: the same command, the same refund.
            "refId": paytm_id(command.idempotency_key, prefix="hubrf_"),
            "refundAmount": rupees(payload.amount_minor),
        }
        return signed_request(base + REFUND_PATH, body, account.merchant_key.get_secret_value())

    def classify_refund(self, response: httpx.Response) -> Outcome:
        body, status, code, message = _answer(response)
        ref_id = str(body.get("refId") or _sent(response).get("refId") or "")
        accepted = status in ("PENDING", "TXN_SUCCESS")
        if response.status_code == 200 and (accepted or code == REFUND_ALREADY_RAISED):
            return Delivered(
                ref_id,
                200,
                {
                    "ref_id": ref_id,
                    "refund_id": str(body.get("refundId") or ""),
                    "refund_status": status if accepted else "ALREADY_RAISED",
                    "refund_amount": str(body.get("refundAmount") or ""),
                },
            )
        if response.status_code == 200 and code == REFUND_IN_PROGRESS:
            return RetryLater(message, 200, code)
        return _refused(response, code, message)

    # --- test connection ---------------------------------------------------------

    def probe_request(self, tenant: Tenant, label: str | None, base_url: str) -> httpx.Request:
        """The status of an order that does not exist: Paytm checks the checksum first."""
        account = self._account(tenant, label)
        body = {"mid": account.mid, "orderId": PROBE_ORDER_ID}
        key = account.merchant_key.get_secret_value()
        return signed_request(base_url.rstrip("/") + STATUS_PATH, body, key)

    def probe_answer(self, response: httpx.Response) -> ProbeResult | None:
        """Paytm refuses credentials with HTTP 200: read the resultCode (None: the usual rules)."""
        _, status, code, message = _answer(response)
        if response.status_code != 200 or status != "F":
            return None
        said = f"200 from paytm: {message} ({code})"
        if code in AUTH_CODES:
            return ProbeResult("auth_failed", said, 200)
        return ProbeResult("unreachable", f"provider unavailable: {said}", 200)


PROVIDER = Provider(
    name="paytm",
    title="Paytm Payment Gateway",
    category=Paytm.category,
    account_model=PaytmAccount,
    adapter=Paytm(),
    base_urls={API: "https://secure.paytmpayments.com"},
    simulator_paths={API: "/paytm"},
    summary="Payment gateway (India): initiateTransaction, order status, refunds; callbacks",
    docs_url="https://www.paytmpayments.com/docs/api/initiate-transaction-api",
    # The merchant key signs the callback's CHECKSUMHASH: there is no separate secret.
    webhooks=Webhooks(
        PaytmVerifier(),
        normalize_paytm,
        secret_field="merchant_key",  # noqa: S106 - a field name
        body_format="form",
        event_type=callback_event_type,
        event_id=callback_event_id,
    ),
)
