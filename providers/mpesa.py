"""M-Pesa Daraja (Safaricom): STK Push (M-Pesa Express) out, STK callbacks and C2B in.

Every API call carries `Authorization: Bearer <token>` from the OAuth flow in
providers/mpesa_auth.py (client credentials, cached per account). STK calls also
carry `Password = base64(shortcode + passkey + timestamp)` with the Nairobi-time
timestamp of the same body.

- Create:  POST /mpesa/stkpush/v1/processrequest: the prompt on the parent's phone
  (notes["customer_phone"], any Kenyan form, sent as 2547XXXXXXXX). Amounts are whole
  shillings: an amount_minor that is not a multiple of 100 is rejected, never rounded.
  provider_ref = CheckoutRequestID.
- Status:  POST /mpesa/stkpushquery/v1/query. ResultCode "0" CAPTURED, 1032 / 1037 /
  1 / others FAILED, 500.001.1001 "being processed" PENDING, an unknown
  CheckoutRequestID NOT_FOUND. The query repeats no amount: the snapshot reports the
  FetchPaymentStatus's own (the push fixed it).
- Refund:  POST /mpesa/reversal/v1/request (asynchronous: refund_status PENDING; the
  result goes to the account's hub_callback_url with kind=reversal). M-Pesa reverses
  by receipt number: a payment_id that is a CheckoutRequestID is rejected.
- C2B:     `register_c2b_request` builds POST /mpesa/c2b/v1/registerurl naming the
  hub's ingress (kind=confirmation / kind=validation); send it once per shortcode with
  the adapter's auth(), e.g. from a shell: see `register_c2b_urls`.
- Test connection: an STK query for a CheckoutRequestID that does not exist:
  Daraja's 400 "Invalid CheckoutRequestID" proves the token, shortcode and password.

Idempotency: Daraja has none, and a push sent twice prompts the parent twice. The
connector ledger sends a command once per idempotency key; only an attempt whose
answer was lost (a read timeout) is in doubt, and Daraja cannot be asked about a
push it never named to us (no lookup by reference), so such an attempt is sent
again. Daraja itself refuses a second push to a phone whose prompt is still open
(500.001.1001 "Unable to lock subscriber": retried later), and a payment of a
CheckoutRequestID the hub never recorded stays unmatched in the order matcher.

The payer's page: in production the prompt is on the phone and there is no URL.
The simulator serves a stand-in "phone" at `<base>/phone/{CheckoutRequestID}`,
returned as `payment_url` when the base URL is not one of Safaricom's hosts.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, SecretStr, field_validator

import providers
from core.settings import Settings
from core.tenants import Tenant
from providers.base import Delivered, Outcome, Rejected, classify_failure, json_or_empty
from providers.mpesa_auth import DarajaAuths
from providers.mpesa_callbacks import (
    CURRENCY,
    NAIROBI,
    SAFARICOM_CALLBACK_IPS,
    MpesaVerifier,
    acknowledge,
    event_id,
    event_type,
    networks_of,
    normalize_mpesa,
)
from providers.payments import GatewayAdapter, PaymentSnapshot, UnsupportedOperationError
from providers.probe import ProbeResult
from providers.spec import API, Provider, Webhooks
from schemas.events import ConnectorCommand, CreatePaymentOrder, FetchPaymentStatus, RefundPayment

TOKEN = "token"  # noqa: S105 - the name of the OAuth base URL
STK_PUSH = "/mpesa/stkpush/v1/processrequest"
STK_QUERY = "/mpesa/stkpushquery/v1/query"
REVERSAL = "/mpesa/reversal/v1/request"
REGISTER_URL = "/mpesa/c2b/v1/registerurl"
SAFARICOM_HOSTS = ("safaricom.co.ke",)
PROBE_CHECKOUT_ID = "ws_CO_hub_probe"
CHECKOUT_PREFIX = "ws_CO_"
# 500.001.1001 is Daraja's catch-all; its message tells what happened.
CATCH_ALL = "500.001.1001"
PERMANENT_MESSAGES = ("wrong credentials", "merchant does not exist", "invalid")
BEING_PROCESSED = "being processed"
STILL_PROCESSING_RESULT = "4999"  # a query answered while the prompt is open
MAX_ACCOUNT_REFERENCE, MAX_DESCRIPTION = 12, 13
# The request extensions a status query carries to its classify (the answer repeats
# neither the amount nor, on errors, the id).
ASKED = "mpesa.asked"
PHONE = re.compile(r"^(?:\+?254|0)?([17]\d{8})$")


class MpesaAccount(BaseModel):
    """A Daraja app (consumer key/secret) on a paybill shortcode, and how it calls back."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    consumer_key: str
    consumer_secret: SecretStr
    shortcode: str  # the paybill (BusinessShortCode = PartyB)
    passkey: SecretStr  # the Lipa na M-Pesa Online passkey
    # Appended to every callback URL as ?token=...: M-Pesa signs nothing.
    callback_token: SecretStr
    # Networks callbacks may come from, comma-separated (a setting is one string).
    allowed_ips: str = ",".join(f"{a}/32" for a in SAFARICOM_CALLBACK_IPS)
    # The hub's ingress URL for this tenant, for calls without a per-order callback
    # URL (reversal results, C2B registration): https://hub.example/webhooks/mpesa/<t>.
    hub_callback_url: str = ""
    # The Reversal API's initiator and its encrypted password (from the M-Pesa portal).
    initiator_name: str = ""
    security_credential: SecretStr = SecretStr("")

    @field_validator("allowed_ips")
    @classmethod
    def _networks(cls, value: str) -> str:
        return ",".join(str(n) for n in networks_of(value))


class MpesaCommandError(UnsupportedOperationError):
    """A command M-Pesa cannot take as given: rejected before anything is sent."""


def nairobi_now() -> datetime:
    return datetime.now(NAIROBI)


def stk_password(shortcode: str, passkey: str, timestamp: str) -> str:
    return base64.b64encode(f"{shortcode}{passkey}{timestamp}".encode()).decode()


def kenyan_msisdn(phone: str) -> str:
    """07XX..., 7XX..., +2547XX..., 2541XX... as 254XXXXXXXXX; MpesaCommandError otherwise."""
    found = PHONE.match(re.sub(r"[\s\-()]", "", phone))
    if found is None:
        raise MpesaCommandError(f"{phone!r} is not a Kenyan mobile number for an STK push")
    return "254" + found.group(1)


def whole_shillings(amount_minor: int, currency: str) -> int:
    if currency != CURRENCY:
        raise MpesaCommandError(f"M-Pesa takes KES, not {currency!r}")
    if amount_minor <= 0 or amount_minor % 100:
        raise MpesaCommandError(
            f"M-Pesa takes whole shillings: {amount_minor} cents is not a multiple of 100"
        )
    return amount_minor // 100


def with_token(url: str, account: MpesaAccount, kind: str | None = None) -> str:
    if not url:
        raise MpesaCommandError("no callback URL: neither the command nor the account has one")
    params = {"token": account.callback_token.get_secret_value()}
    if kind:
        params["kind"] = kind
    return str(httpx.URL(url).copy_merge_params(params))


def _account_reference(payload: CreatePaymentOrder) -> str:
    # Shown on the parent's phone; the hub matches on CheckoutRequestID, not on this.
    return (payload.notes.get("student_id") or payload.receipt)[:MAX_ACCOUNT_REFERENCE]


def _message(body: dict[str, object], response: httpx.Response) -> tuple[str, str | None]:
    message = body.get("errorMessage") or body.get("ResponseDescription") or response.reason_phrase
    code = body.get("errorCode") or body.get("ResponseCode")
    return str(message or "error"), (str(code) if code not in (None, "") else None)


def failure(response: httpx.Response) -> Outcome:
    """A Daraja error: 5xx/429 retried, except the catch-all's permanent messages."""
    body = json_or_empty(response)
    message, code = _message(body, response)
    if code == CATCH_ALL and any(m in message.lower() for m in PERMANENT_MESSAGES):
        return Rejected(message, response.status_code, code)
    if response.is_success:  # a 200 whose ResponseCode is not "0"
        return Rejected(message, response.status_code, code)
    return classify_failure(response, message, code)


def _phone_page(response: httpx.Response, checkout_id: str) -> str | None:
    url = response.request.url
    if any(url.host == h or url.host.endswith("." + h) for h in SAFARICOM_HOSTS):
        return None
    base = str(url.copy_with(query=None)).removesuffix(STK_PUSH)
    return f"{base}/phone/{checkout_id}"


class Mpesa(GatewayAdapter):
    name = "mpesa"
    # M-Pesa captures as the parent approves: no capture call.
    payload_type = (CreatePaymentOrder, FetchPaymentStatus, RefundPayment)

    def __init__(self, clock: Callable[[], datetime] = nairobi_now) -> None:
        self.clock = clock
        self._auths = DarajaAuths()

    def _account(self, tenant: Tenant, label: str | None) -> MpesaAccount:
        return tenant.account(self.name, MpesaAccount, label)

    def _stk_credentials(self, account: MpesaAccount) -> dict[str, str]:
        timestamp = self.clock().astimezone(NAIROBI).strftime("%Y%m%d%H%M%S")
        passkey = account.passkey.get_secret_value()
        return {
            "BusinessShortCode": account.shortcode,
            "Password": stk_password(account.shortcode, passkey, timestamp),
            "Timestamp": timestamp,
        }

    def auth(
        self, tenant: Tenant, settings: Settings, label: str | None = None
    ) -> httpx.Auth | None:
        account = self._account(tenant, label)
        token_url = providers.base_url(settings, self.name, TOKEN)
        secret = account.consumer_secret.get_secret_value()
        return self._auths.get(tenant.id, account.consumer_key, secret, token_url)

    # --- create: the STK push -------------------------------------------------

    def create_order(
        self, command: ConnectorCommand, payload: CreatePaymentOrder, tenant: Tenant, base: str
    ) -> httpx.Request:
        account = self._account(tenant, command.account)
        amount = whole_shillings(payload.amount_minor, payload.currency)
        phone = kenyan_msisdn(payload.notes.get("customer_phone", ""))
        body: dict[str, Any] = {
            **self._stk_credentials(account),
            "TransactionType": "CustomerPayBillOnline",
            "Amount": amount,
            "PartyA": phone,
            "PartyB": account.shortcode,
            "PhoneNumber": phone,
            "CallBackURL": with_token(payload.callback_url or account.hub_callback_url, account),
            "AccountReference": _account_reference(payload),
            "TransactionDesc": "School fees"[:MAX_DESCRIPTION],
        }
        return httpx.Request("POST", f"{base}{STK_PUSH}", json=body)

    def classify_order(self, response: httpx.Response) -> Outcome:
        body = json_or_empty(response)
        checkout_id = body.get("CheckoutRequestID")
        accepted = response.status_code == 200 and str(body.get("ResponseCode")) == "0"
        if not accepted or not isinstance(checkout_id, str) or not checkout_id:
            return failure(response)
        details = {
            "order_id": checkout_id,
            "checkout_request_id": checkout_id,
            "merchant_request_id": str(body.get("MerchantRequestID") or ""),
            "customer_message": str(body.get("CustomerMessage") or ""),
        }
        page = _phone_page(response, checkout_id)
        if page is not None:
            details["payment_url"] = page
        return Delivered(checkout_id, 200, details)

    # --- status: the STK push query ---------------------------------------------

    def fetch_status(
        self, command: ConnectorCommand, payload: FetchPaymentStatus, tenant: Tenant, base: str
    ) -> httpx.Request:
        account = self._account(tenant, command.account)
        body = {**self._stk_credentials(account), "CheckoutRequestID": payload.order_id}
        request = httpx.Request("POST", f"{base}{STK_QUERY}", json=body)
        asked = (payload.order_id, payload.amount_minor, payload.currency or CURRENCY)
        request.extensions = {**request.extensions, ASKED: asked}
        return request

    def classify_status(self, response: httpx.Response) -> Outcome:
        order_id, amount_minor, currency = response.request.extensions.get(ASKED, ("", 0, ""))
        body = json_or_empty(response)
        message, code = _message(body, response)
        if code == CATCH_ALL and BEING_PROCESSED in message.lower():
            return Delivered(order_id, 200, PaymentSnapshot("PENDING", order_id).to_details())
        if response.status_code == 400 and "checkoutrequestid" in message.lower():
            return Delivered(None, 400, PaymentSnapshot("NOT_FOUND", order_id).to_details())
        result = body.get("ResultCode")
        if response.status_code != 200 or str(body.get("ResponseCode")) != "0" or result is None:
            return failure(response)
        result_code = str(result)
        if result_code == STILL_PROCESSING_RESULT:
            return Delivered(order_id, 200, PaymentSnapshot("PENDING", order_id).to_details())
        snapshot = PaymentSnapshot(
            status="CAPTURED" if result_code == "0" else "FAILED",
            order_id=order_id,
            payment_id=order_id,  # the callback's payment_id too: one payment, one id
            amount_minor=amount_minor,
            currency=currency,
            method="mpesa",
            error_code="" if result_code == "0" else result_code,
            error_description="" if result_code == "0" else str(body.get("ResultDesc") or ""),
        )
        return Delivered(order_id, 200, snapshot.to_details())

    # --- refund: the reversal ----------------------------------------------------

    def refund(
        self, command: ConnectorCommand, payload: RefundPayment, tenant: Tenant, base: str
    ) -> httpx.Request:
        account = self._account(tenant, command.account)
        # An STK payment's id is its CheckoutRequestID; its receipt came with the callback.
        transaction = payload.gateway_reference or payload.payment_id
        if transaction.startswith(CHECKOUT_PREFIX):
            raise MpesaCommandError(
                "M-Pesa reverses by receipt number (MpesaReceiptNumber / TransID), "
                f"not by CheckoutRequestID {transaction!r}"
            )
        if not account.initiator_name or not account.security_credential.get_secret_value():
            raise MpesaCommandError("the mpesa account has no reversal initiator configured")
        result_url = with_token(account.hub_callback_url, account, "reversal")
        body = {
            "Initiator": account.initiator_name,
            "SecurityCredential": account.security_credential.get_secret_value(),
            "CommandID": "TransactionReversal",
            "TransactionID": transaction,
            "Amount": whole_shillings(payload.amount_minor, payload.currency),
            "ReceiverParty": account.shortcode,
            "RecieverIdentifierType": "11",  # sic: Daraja's spelling; 11 = a paybill
            "ResultURL": result_url,
            "QueueTimeOutURL": result_url,
            "Remarks": (payload.reason or "Fee refund")[:100],
            "Occasion": payload.order_id[:100],
        }
        return httpx.Request("POST", f"{base}{REVERSAL}", json=body)

    def classify_refund(self, response: httpx.Response) -> Outcome:
        body = json_or_empty(response)
        conversation = body.get("ConversationID")
        accepted = response.status_code == 200 and str(body.get("ResponseCode")) == "0"
        if not accepted or not isinstance(conversation, str) or not conversation:
            return failure(response)
        details = {
            "refund_id": conversation,
            "refund_status": "PENDING",  # the outcome arrives at the ResultURL
            "originator_conversation_id": str(body.get("OriginatorConversationID") or ""),
        }
        return Delivered(conversation, 200, details)

    # --- test connection and C2B registration --------------------------------------

    def probe_request(self, tenant: Tenant, label: str | None, base_url: str) -> httpx.Request:
        account = self._account(tenant, label)
        body = {**self._stk_credentials(account), "CheckoutRequestID": PROBE_CHECKOUT_ID}
        return httpx.Request("POST", f"{base_url.rstrip('/')}{STK_QUERY}", json=body)

    def probe_answer(self, response: httpx.Response) -> ProbeResult | None:
        """Daraja's 400 for the made-up CheckoutRequestID: everything before it passed."""
        message, code = _message(json_or_empty(response), response)
        if response.status_code == 400 and "checkoutrequestid" in message.lower():
            detail = f"{self.name} answered 400 ({code}: {message}) to the probe query"
            return ProbeResult("ok", detail, 400)
        return None

    def register_c2b_request(
        self, tenant: Tenant, label: str | None, base_url: str
    ) -> httpx.Request:
        """Tell M-Pesa where paybill payments are confirmed (once per shortcode)."""
        account = self._account(tenant, label)
        body = {
            "ShortCode": account.shortcode,
            # What M-Pesa does when the validation URL does not answer: complete it.
            "ResponseType": "Completed",
            "ConfirmationURL": with_token(account.hub_callback_url, account, "confirmation"),
            "ValidationURL": with_token(account.hub_callback_url, account, "validation"),
        }
        return httpx.Request("POST", f"{base_url.rstrip('/')}{REGISTER_URL}", json=body)

    def classify_register(self, response: httpx.Response) -> Outcome:
        body = json_or_empty(response)
        if response.status_code == 200 and str(body.get("ResponseCode")) == "0":
            return Delivered(None, 200, {"response": str(body.get("ResponseDescription") or "")})
        return failure(response)


async def register_c2b_urls(
    tenant: Tenant, label: str | None, settings: Settings, http: httpx.AsyncClient
) -> Outcome:
    """Register the hub's C2B URLs for the tenant's account, e.g. from `python -c`."""
    adapter = providers.get("mpesa").adapter
    assert isinstance(adapter, Mpesa)
    request = adapter.register_c2b_request(tenant, label, providers.base_url(settings, "mpesa"))
    auth = adapter.auth(tenant, settings, label)
    response = await http.send(request, auth=auth or httpx.USE_CLIENT_DEFAULT)
    return adapter.classify_register(response)


PROVIDER = Provider(
    name="mpesa",
    title="M-Pesa Daraja (Safaricom)",
    category="payment",
    account_model=MpesaAccount,
    adapter=Mpesa(),
    base_urls={
        API: "https://api.safaricom.co.ke",
        TOKEN: "https://api.safaricom.co.ke/oauth/v1/generate",
    },
    simulator_paths={API: "/mpesa", TOKEN: "/mpesa/oauth/v1/generate"},
    summary="Payment gateway (Kenya): STK Push, STK query, reversal; STK callbacks and C2B paybill",
    docs_url="https://developer.safaricom.co.ke/APIs/MpesaExpressSimulate",
    webhooks=Webhooks(
        MpesaVerifier(),
        normalize_mpesa,
        secret_field="callback_token",  # noqa: S106 - a field name
        event_type=event_type,
        event_id=event_id,
        acknowledge=acknowledge,
        query_fields=("kind",),
    ),
)
