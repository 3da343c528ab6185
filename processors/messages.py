"""What parents read: SMS and email texts for payment outcomes. Pure.

Amounts use the Indian numbering system for INR (₹1,50,000), as the seed's
messages do; other currencies get their ISO code and two decimals.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from html import escape


def group_indian(whole: int) -> str:
    digits = str(whole)
    if len(digits) <= 3:
        return digits
    head, tail = digits[:-3], digits[-3:]
    pairs: list[str] = []
    while len(head) > 2:
        pairs.insert(0, head[-2:])
        head = head[:-2]
    return ",".join([head, *pairs, tail])


def format_money(amount_minor: int, currency: str) -> str:
    whole, minor = divmod(abs(amount_minor), 100)
    sign = "-" if amount_minor < 0 else ""
    if currency == "INR":
        text = f"₹{group_indian(whole)}" + (f".{minor:02d}" if minor else "")
    else:
        text = f"{currency} {whole:,}.{minor:02d}"
    return sign + text


def receipt_number(tenant: str, payment_id: str, year: int) -> str:
    """Deterministic, so a reprocessed payment gets the same receipt, never a second one."""
    digest = hashlib.sha256(f"{tenant}:{payment_id}".encode()).hexdigest()[:8].upper()
    return f"REC-{year}-{digest}"


@dataclass(frozen=True)
class Email:
    subject: str
    text: str
    html: str


def payment_success_sms(amount: str, description: str, student: str, receipt_url: str) -> str:
    return f"Payment successful: {amount} for {description} ({student}). Receipt: {receipt_url}"


def partial_payment_sms(
    amount: str, due: str, description: str, student: str, receipt_url: str
) -> str:
    # Never "Payment successful" for the whole fee: the parent must see what is left.
    return (
        f"Part payment received: {amount} for {description} ({student}); "
        f"{due} still due. Receipt: {receipt_url}"
    )


def payment_failed_sms(reason: str | None, payment_url: str) -> str:
    return f"Payment failed: {reason or 'the payment did not go through'}. Retry: {payment_url}"


def receipt_email(
    *,
    parent: str,
    student: str,
    description: str,
    amount: str,
    receipt_no: str,
    receipt_url: str,
    payment_id: str,
    school: str,
) -> Email:
    subject = f"Payment receipt {receipt_no}: {description}"
    text = (
        f"Dear {parent},\n\n"
        f"We received your payment of {amount} for {description} ({student}).\n"
        f"Receipt number: {receipt_no}\nPayment reference: {payment_id}\n"
        f"Download your receipt: {receipt_url}\n\nThank you,\n{school}\n"
    )
    html = (
        f"<p>Dear {escape(parent)},</p>"
        f"<p>We received your payment of <strong>{escape(amount)}</strong> for "
        f"{escape(description)} ({escape(student)}).</p>"
        f"<table><tr><td>Receipt number</td><td>{escape(receipt_no)}</td></tr>"
        f"<tr><td>Payment reference</td><td>{escape(payment_id)}</td></tr></table>"
        f'<p><a href="{escape(receipt_url)}">Download your receipt</a></p>'
        f"<p>Thank you,<br>{escape(school)}</p>"
    )
    return Email(subject, text, html)
