"""processors.messages: what parents read."""

from __future__ import annotations

import re

import pytest

from processors.messages import (
    Email,
    format_money,
    group_indian,
    payment_failed_sms,
    payment_success_sms,
    receipt_email,
    receipt_number,
)


@pytest.mark.parametrize(
    ("whole", "text"),
    [
        (0, "0"),
        (7, "7"),
        (999, "999"),
        (1000, "1,000"),
        (9999, "9,999"),
        (50000, "50,000"),
        (99999, "99,999"),
        (100000, "1,00,000"),
        (150000, "1,50,000"),
        (1234567, "12,34,567"),
        (10000000, "1,00,00,000"),
        (123456789, "12,34,56,789"),
        (1000000000, "1,00,00,00,000"),
    ],
)
def test_group_indian(whole: int, text: str) -> None:
    assert group_indian(whole) == text


@pytest.mark.parametrize(
    ("amount_minor", "text"),
    [
        (50_000_00, "₹50,000"),
        (1_50_000_00, "₹1,50,000"),
        (0, "₹0"),
        (1, "₹0.01"),
        (99, "₹0.99"),
        (50_000_50, "₹50,000.50"),
        (1_00_00_000_05, "₹1,00,00,000.05"),
        (-50_000_00, "-₹50,000"),
        (-12_345_67, "-₹12,345.67"),
    ],
)
def test_format_money_inr(amount_minor: int, text: str) -> None:
    assert format_money(amount_minor, "INR") == text


@pytest.mark.parametrize(
    ("amount_minor", "currency", "text"),
    [
        (1_234_50, "USD", "USD 1,234.50"),
        (1_000_000_00, "USD", "USD 1,000,000.00"),
        (5, "EUR", "EUR 0.05"),
        (-2_00, "GBP", "-GBP 2.00"),
    ],
)
def test_format_money_other_currencies_use_the_iso_code_and_two_decimals(
    amount_minor: int, currency: str, text: str
) -> None:
    assert format_money(amount_minor, currency) == text


def test_receipt_number_is_deterministic() -> None:
    first = receipt_number("greenwood", "pay_A1b2C3d4E5f6G7", 2026)

    assert first == receipt_number("greenwood", "pay_A1b2C3d4E5f6G7", 2026)
    assert re.fullmatch(r"REC-2026-[0-9A-F]{8}", first)


def test_receipt_number_differs_by_tenant_payment_and_year() -> None:
    base = receipt_number("greenwood", "pay_A1b2C3d4E5f6G7", 2026)

    assert receipt_number("riverside", "pay_A1b2C3d4E5f6G7", 2026) != base
    assert receipt_number("greenwood", "pay_Z9y8X7w6V5u4T3", 2026) != base
    assert receipt_number("greenwood", "pay_A1b2C3d4E5f6G7", 2027).startswith("REC-2027-")


def test_receipt_numbers_of_many_payments_are_distinct() -> None:
    numbers = {receipt_number("greenwood", f"pay_{i:014d}", 2026) for i in range(2000)}

    assert len(numbers) == 2000


def test_payment_success_sms() -> None:
    text = payment_success_sms(
        "₹50,000", "Term 2 tuition fee", "Aarav Sharma", "https://erp.example/r/REC-1"
    )

    assert text == (
        "Payment successful: ₹50,000 for Term 2 tuition fee (Aarav Sharma). "
        "Receipt: https://erp.example/r/REC-1"
    )


def test_payment_failed_sms_with_and_without_a_reason() -> None:
    url = "https://checkout.example/pay/order_1"

    assert (
        payment_failed_sms("Card declined", url) == f"Payment failed: Card declined. Retry: {url}"
    )
    assert payment_failed_sms(None, url) == (
        f"Payment failed: the payment did not go through. Retry: {url}"
    )
    assert payment_failed_sms("", url).startswith("Payment failed: the payment did not go through.")


def email(**overrides: str) -> Email:
    fields = {
        "parent": "Priya Sharma",
        "student": "Aarav Sharma",
        "description": "Term 2 tuition fee",
        "amount": "₹50,000",
        "receipt_no": "REC-2026-0A1B2C3D",
        "receipt_url": "https://erp.school.example/receipts/REC-2026-0A1B2C3D",
        "payment_id": "pay_A1b2C3d4E5f6G7",
        "school": "Greenwood High School",
    }
    return receipt_email(**{**fields, **overrides})


def test_receipt_email_subject_text_and_html() -> None:
    mail = email()

    assert mail.subject == "Payment receipt REC-2026-0A1B2C3D: Term 2 tuition fee"
    assert mail.text.startswith("Dear Priya Sharma,\n")
    assert "Receipt number: REC-2026-0A1B2C3D" in mail.text
    assert "Payment reference: pay_A1b2C3d4E5f6G7" in mail.text
    assert "<td>Receipt number</td><td>REC-2026-0A1B2C3D</td>" in mail.html
    assert "<td>Payment reference</td><td>pay_A1b2C3d4E5f6G7</td>" in mail.html
    for part in (
        "₹50,000",
        "Term 2 tuition fee",
        "(Aarav Sharma)",
        "https://erp.school.example/receipts/REC-2026-0A1B2C3D",
        "Greenwood High School",
    ):
        assert part in mail.text
        assert part in mail.html
    assert '<a href="https://erp.school.example/receipts/REC-2026-0A1B2C3D">' in mail.html


def test_receipt_email_escapes_html_in_names() -> None:
    mail = email(
        parent="<script>alert(1)</script>",
        student='Tom & "Jerry"',
        description="Fees <b>Term 2</b>",
        school="O'Neil & Sons <School>",
    )

    assert "<script>" not in mail.html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in mail.html
    assert "Tom &amp; &quot;Jerry&quot;" in mail.html
    assert "Fees &lt;b&gt;Term 2&lt;/b&gt;" in mail.html
    assert "O&#x27;Neil &amp; Sons &lt;School&gt;" in mail.html
    assert "<b>" not in mail.html
    # The plain-text part is not HTML: names appear as written.
    assert "Dear <script>alert(1)</script>," in mail.text
    assert 'Tom & "Jerry"' in mail.text


def test_receipt_email_escapes_the_link() -> None:
    mail = email(receipt_url='https://erp.example/r?a=1&b="x"')

    assert 'href="https://erp.example/r?a=1&amp;b=&quot;x&quot;"' in mail.html
