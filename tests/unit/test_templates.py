"""processors.templates: SMS segment counts, template checks, lookup and sandboxed rendering."""

from __future__ import annotations

import pytest

from processors import templates
from processors.templates import (
    MissingVariablesError,
    SmsSegments,
    Template,
    TemplateBook,
    TemplateError,
    sms_segments,
    template,
)
from schemas.events import Channel

# --- sms_segments ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a" * 160, SmsSegments("GSM-7", 160, 1, 160)),
        ("a" * 161, SmsSegments("GSM-7", 161, 2, 153)),
        ("a" * 306, SmsSegments("GSM-7", 306, 2, 153)),
        ("a" * 307, SmsSegments("GSM-7", 307, 3, 153)),
        ("€", SmsSegments("GSM-7", 2, 1, 160)),
        ("a" * 158 + "€", SmsSegments("GSM-7", 160, 1, 160)),
        ("a" * 159 + "€", SmsSegments("GSM-7", 161, 2, 153)),
        ("{[~]}|^\\\f", SmsSegments("GSM-7", 18, 1, 160)),
        ("@£$¥èéùìòÇ\nØøÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ¤¡ÄÖÑÜ§¿äöñüà", SmsSegments("GSM-7", 43, 1, 160)),
        ("₹" * 70, SmsSegments("UCS-2", 70, 1, 70)),
        ("₹" * 71, SmsSegments("UCS-2", 71, 2, 67)),
        ("a" * 69 + "₹", SmsSegments("UCS-2", 70, 1, 70)),
        ("a" * 70 + "₹", SmsSegments("UCS-2", 71, 2, 67)),
        ("नमस्ते", SmsSegments("UCS-2", 6, 1, 70)),
        ("😀", SmsSegments("UCS-2", 2, 1, 70)),
        ("a" * 134, SmsSegments("GSM-7", 134, 1, 160)),
        ("", SmsSegments("GSM-7", 0, 1, 160)),
    ],
)
def test_sms_segments(text: str, expected: SmsSegments) -> None:
    assert sms_segments(text) == expected


def test_an_escape_pair_is_not_split_between_parts() -> None:
    # 152 + 2 + 152 = 306 septets: 2 parts if split anywhere, but the euro's two septets
    # cannot straddle the first part's end, so the parts hold 152, 153 and 1.
    assert sms_segments("a" * 152 + "€" + "a" * 152) == SmsSegments("GSM-7", 306, 3, 153)


def test_a_surrogate_pair_is_not_split_between_parts() -> None:
    # 66 + 2 + 66 = 134 code units: the emoji does not fit in the first part's last unit.
    assert sms_segments("₹" * 66 + "😀" + "₹" * 66) == SmsSegments("UCS-2", 134, 3, 67)


def test_one_character_outside_gsm7_makes_the_whole_text_ucs2() -> None:
    assert sms_segments("a" * 100 + "₹") == SmsSegments("UCS-2", 101, 2, 67)
    assert sms_segments("a" * 100 + "ç") == SmsSegments("UCS-2", 101, 2, 67)  # only Ç is GSM


# --- template(): checks and variables ------------------------------------------------


def test_variables_are_found_in_subject_text_and_html_sorted() -> None:
    t = template(
        "receipt",
        Channel.EMAIL,
        "en",
        subject="Receipt {{ receipt_no }}",
        text="Paid {{ amount }}",
        html="<p>{{ amount }} for {{ student_name }}{% if note %} {{ note }}{% endif %}</p>",
    )
    assert t.variables == ("amount", "note", "receipt_no", "student_name")
    assert t.parameters == ()


def test_loop_variables_are_not_counted_as_needed() -> None:
    t = template("list", Channel.SMS, "en", text="{% for x in items %}{{ x }}{% endfor %}")
    assert t.variables == ("items",)


def test_a_syntax_error_names_the_part_and_line() -> None:
    with pytest.raises(TemplateError) as err:
        template("bad", Channel.EMAIL, "en", subject="ok", text="line 1\n{{ name }")
    assert str(err.value).startswith("template 'bad' (EMAIL, en): the text has a Jinja2 syntax")
    assert "on line 2" in str(err.value)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"name": "a", "channel": Channel.EMAIL, "text": "hi"},
            "template 'a' (EMAIL, en): an email template needs a subject",
        ),
        (
            {"name": "a", "channel": Channel.SMS, "text": "hi", "html": "<p>hi</p>"},
            "template 'a' (SMS, en): only email templates have a subject and html; remove them",
        ),
        (
            {"name": "a", "channel": Channel.SMS, "text": "  "},
            "template 'a' (SMS, en): the text is empty",
        ),
        (
            {"name": "a", "channel": Channel.SMS, "text": "hi", "dlt_template_id": "11O7"},
            "template 'a' (SMS, en): dlt_template_id must be digits (got '11O7')",
        ),
        (
            {"name": "a b", "channel": Channel.SMS, "text": "hi"},
            "template name 'a b': use letters, digits, '_', '-' and '.' (no spaces)",
        ),
        (
            {
                "name": "a",
                "channel": Channel.WHATSAPP,
                "text": "Hi {{ student_name }}",
                "parameters": ["student_name", "date"],
            },
            "template 'a' (WHATSAPP, en): parameter(s) 'date' not used in its texts "
            "(its variables: student_name)",
        ),
    ],
)
def test_template_checks(kwargs: dict[str, object], message: str) -> None:
    name = str(kwargs.pop("name"))
    channel = kwargs.pop("channel")
    assert isinstance(channel, Channel)
    with pytest.raises(TemplateError) as err:
        template(name, channel, "en", **kwargs)  # type: ignore[arg-type]
    assert str(err.value) == message


def test_a_bad_locale_is_refused() -> None:
    with pytest.raises(TemplateError) as err:
        template("a", Channel.SMS, "hindi language", text="x")
    assert str(err.value) == "template 'a' (SMS, hindi language): locale 'hindi language' " + (
        "is not like 'en' or 'hi-IN'"
    )


# --- TemplateBook.find ------------------------------------------------------------------


def sms(name: str, locale: str, text: str, **kwargs: object) -> Template:
    return template(name, Channel.SMS, locale, text=text, **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def book() -> TemplateBook:
    return TemplateBook(
        [
            ("*", sms("alert", "en", "Shared EN {{ student_name }}")),
            ("*", sms("alert", "hi", "Shared HI {{ student_name }}")),
            ("*", sms("alert", "hi-IN", "Shared HI-IN {{ student_name }}")),
            ("*", sms("reminder", "en", "Reminder {{ amount }}")),
            ("greenwood", sms("alert", "en", "Greenwood EN {{ student_name }}")),
            ("greenwood", sms("greet", "ta", "Vanakkam {{ student_name }}")),
            (
                "*",
                template(
                    "alert",
                    Channel.WHATSAPP,
                    "en",
                    text="WA {{ student_name }} on {{ date }}",
                    provider_templates={"whatsapp": "attendance_alert"},
                    parameters=["student_name", "date"],
                ),
            ),
            (
                "*",
                template(
                    "alert",
                    Channel.EMAIL,
                    "en",
                    subject="Absent: {{ student_name }}",
                    text="{{ student_name }} & co",
                    html="<b>{{ student_name }}</b> & co",
                ),
            ),
        ]
    )


@pytest.mark.parametrize(
    ("tenant", "locale", "text"),
    [
        ("riverside", "hi-IN", "Shared HI-IN {{ student_name }}"),
        ("riverside", "hi-in", "Shared HI-IN {{ student_name }}"),
        ("riverside", "hi_IN", "Shared HI-IN {{ student_name }}"),
        ("riverside", "hi-XX", "Shared HI {{ student_name }}"),
        ("riverside", "hi", "Shared HI {{ student_name }}"),
        ("riverside", "fr-FR", "Shared EN {{ student_name }}"),
        ("riverside", None, "Shared EN {{ student_name }}"),
        ("greenwood", None, "Greenwood EN {{ student_name }}"),
        # The tenant's own template comes before any shared one, its locale falling back
        # to its own English: a tenant's DLT registration is its own.
        ("greenwood", "hi", "Greenwood EN {{ student_name }}"),
    ],
)
def test_find_tenant_then_shared_and_locale_fallback(
    book: TemplateBook, tenant: str, locale: str | None, text: str
) -> None:
    assert book.find(tenant, "alert", Channel.SMS, locale).text == text


def test_find_falls_back_to_shared_for_a_channel_the_tenant_does_not_override(
    book: TemplateBook,
) -> None:
    found = book.find("greenwood", "alert", Channel.WHATSAPP, "en")
    assert found.text == "WA {{ student_name }} on {{ date }}"


def test_find_unknown_name_lists_the_known_ones(book: TemplateBook) -> None:
    with pytest.raises(TemplateError) as err:
        book.find("greenwood", "exam", Channel.SMS, None)
    assert str(err.value) == (
        "no template 'exam' for SMS of tenant 'greenwood' (known: alert, greet, reminder)"
    )
    with pytest.raises(TemplateError) as err:
        book.find("riverside", "greet", Channel.SMS, None)
    assert str(err.value) == (
        "no template 'greet' for SMS of tenant 'riverside' (known: alert, reminder)"
    )


def test_find_without_a_fitting_locale_lists_the_locales(book: TemplateBook) -> None:
    with pytest.raises(TemplateError) as err:
        book.find("greenwood", "greet", Channel.SMS, "hi")
    assert str(err.value) == (
        "no template 'greet' for SMS of tenant 'greenwood' in locale 'hi' nor 'en' (locales: ta)"
    )


def test_the_same_template_twice_is_refused() -> None:
    with pytest.raises(TemplateError) as err:
        TemplateBook([("*", sms("a", "hi-IN", "one")), ("*", sms("a", "hi-in", "two"))])
    assert str(err.value) == "template 'a' (SMS, hi-in) of tenant '*' is defined twice"


def test_list_for_a_tenant_hides_the_shared_ones_it_overrides(book: TemplateBook) -> None:
    assert [(s, t.name, t.channel, t.locale) for s, t in book.entries("greenwood")] == [
        ("*", "alert", Channel.EMAIL, "en"),
        ("greenwood", "alert", Channel.SMS, "en"),
        ("*", "alert", Channel.SMS, "hi"),
        ("*", "alert", Channel.SMS, "hi-IN"),
        ("*", "alert", Channel.WHATSAPP, "en"),
        ("greenwood", "greet", Channel.SMS, "ta"),
        ("*", "reminder", Channel.SMS, "en"),
    ]
    assert len(book.list()) == 8
    assert len(book.list("riverside")) == 6
    assert [t.text for t in book.list("greenwood") if t.name == "alert"][1] == (
        "Greenwood EN {{ student_name }}"
    )


# --- TemplateBook.render -----------------------------------------------------------------


def test_render_sms_with_segments(book: TemplateBook) -> None:
    r = book.render("riverside", "alert", Channel.SMS, {"student_name": "Asha"}, "hi")
    assert r.text == "Shared HI Asha"
    assert r.subject is None
    assert r.html is None
    assert r.segments == SmsSegments("GSM-7", 14, 1, 160)
    assert r.template.locale == "hi"
    assert r.parameters == ()


def test_render_whatsapp_gives_parameters_in_order(book: TemplateBook) -> None:
    r = book.render(
        "greenwood",
        "alert",
        Channel.WHATSAPP,
        {"date": "2026-12-02", "student_name": "Asha", "unused": "x"},
        None,
    )
    assert r.text == "WA Asha on 2026-12-02"
    assert r.parameters == ("Asha", "2026-12-02")
    assert r.segments is None
    assert r.template.provider_templates == {"whatsapp": "attendance_alert"}


def test_render_email_escapes_only_the_html(book: TemplateBook) -> None:
    r = book.render("riverside", "alert", Channel.EMAIL, {"student_name": "<Asha>"}, "en")
    assert r.subject == "Absent: <Asha>"
    assert r.text == "<Asha> & co"
    assert r.html == "<b>&lt;Asha&gt;</b> & co"
    assert r.segments is None


def test_render_names_the_missing_variable(book: TemplateBook) -> None:
    with pytest.raises(MissingVariablesError) as err:
        book.render("riverside", "alert", Channel.SMS, {"name": "Asha"}, "en")
    assert str(err.value) == "template 'alert' needs variable 'student_name'"
    assert err.value.missing == ("student_name",)
    with pytest.raises(TemplateError) as err2:
        book.render("riverside", "alert", Channel.WHATSAPP, {}, "en")
    assert str(err2.value) == "template 'alert' needs variables 'date', 'student_name'"


def test_render_refuses_sandbox_escapes() -> None:
    book = TemplateBook([("*", sms("evil", "en", "{{ name.__class__.__mro__ }}"))])
    with pytest.raises(TemplateError) as err:
        book.render("t", "evil", Channel.SMS, {"name": "x"}, None)
    assert str(err.value).startswith("template 'evil', text: the sandbox refused it: ")
    assert "__class__" in str(err.value)


def test_render_turns_runaway_ranges_into_template_errors() -> None:
    book = TemplateBook([("*", sms("big", "en", "{% for i in range(n|int) %}x{% endfor %}"))])
    with pytest.raises(TemplateError) as err:
        book.render("t", "big", Channel.SMS, {"n": "100000000"}, None)
    assert str(err.value).startswith("template 'big', text: cannot render: ")


def test_render_strictly_undefined_attributes() -> None:
    book = TemplateBook([("*", sms("attr", "en", "{{ student.name }}"))])
    with pytest.raises(TemplateError) as err:
        book.render("t", "attr", Channel.SMS, {"student": "Asha"}, None)
    assert str(err.value) == "template 'attr', text: 'str object' has no attribute 'name'"


def test_each_template_is_compiled_once(
    book: TemplateBook, monkeypatch: pytest.MonkeyPatch
) -> None:
    compiled: list[str] = []
    real = templates._TEXT_ENV.from_string

    def counting(source: str) -> object:
        compiled.append(source)
        return real(source)

    monkeypatch.setattr(templates._TEXT_ENV, "from_string", counting)
    for name in ["Asha", "Ravi", "Meera"]:
        book.render("riverside", "alert", Channel.SMS, {"student_name": name}, "en")
    assert compiled == ["Shared EN {{ student_name }}"]
