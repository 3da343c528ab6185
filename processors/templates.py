"""Message templates: a tenant's named texts, found by channel and locale, rendered safely. Pure.

A template is Jinja2 text (`Dear parent, {{ student_name }} was absent today.`) rendered
in a `SandboxedEnvironment` with `StrictUndefined`: a variable the caller did not give is an
error that names it, never an empty gap in a parent's SMS; attribute tricks
(`{{ x.__class__ }}`) are refused by the sandbox. Only the HTML part of an email is
autoescaped; SMS, WhatsApp and email text are sent as written.

Lookup (`TemplateBook.find`): the tenant's own templates first, then the ones every tenant
shares (scope "*"); in each, the locale as asked ("hi-IN"), then its language ("hi"), then
the default locale "en". So a tenant that overrides a template in English only still gets
its own (its DLT registration is its own) before the shared Hindi one.

SMS length (`sms_segments`): GSM 03.38 7-bit alphabet (basic table plus the extension
table, whose characters take two septets: ^ { } \\ [ ~ ] | € and form feed), 160 septets in
one message or 153 per part of a concatenated one (the user data header takes the rest);
any character outside it makes the whole message UCS-2: 70 UTF-16 code units in one
message, 67 per part. An escape pair, or a surrogate pair, is never split between parts
(as phones and Twilio's segment calculator do), so a part can hold one unit less.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

import jinja2
from jinja2 import StrictUndefined, meta
from jinja2.sandbox import SandboxedEnvironment

from schemas.events import Channel

DEFAULT_LOCALE = "en"
EVERY_TENANT = "*"

_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
_LOCALE = re.compile(r"[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{2,8})*")


class TemplateError(ValueError):
    """A template that cannot be found, parsed or rendered; the message says what to fix."""


class MissingVariablesError(TemplateError):
    """Rendering needs variables the caller did not give (`missing`, sorted)."""

    def __init__(self, template: str, missing: Iterable[str]) -> None:
        self.template = template
        self.missing = tuple(sorted(missing))
        names = ", ".join(f"'{m}'" for m in self.missing)
        plural = "s" if len(self.missing) > 1 else ""
        super().__init__(f"template '{template}' needs variable{plural} {names}")


# --- SMS segments -------------------------------------------------------------

# GSM 03.38 basic character set (0x1B, the escape to the extension table, left out).
GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
# The extension table: each is sent as ESC + a septet, so counts two.
GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")

_LIMITS: dict[str, tuple[int, int]] = {"GSM-7": (160, 153), "UCS-2": (70, 67)}


@dataclass(frozen=True)
class SmsSegments:
    encoding: Literal["GSM-7", "UCS-2"]
    characters: int  # septets (GSM-7, extension characters count 2) or UTF-16 code units
    segments: int  # messages the operator bills (an empty text is still one)
    per_segment: int  # capacity of each: 160/70 for one message, 153/67 for parts


def _pack(units: list[int], size: int) -> int:
    """Parts needed for `units` (each 1 or 2, never split) at `size` per part."""
    parts, used = 1, 0
    for unit in units:
        if used + unit > size:
            parts, used = parts + 1, 0
        used += unit
    return parts


def sms_segments(text: str) -> SmsSegments:
    encoding: Literal["GSM-7", "UCS-2"]
    if all(c in GSM7_BASIC or c in GSM7_EXTENSION for c in text):
        encoding = "GSM-7"
        units = [2 if c in GSM7_EXTENSION else 1 for c in text]
    else:
        encoding = "UCS-2"
        units = [2 if ord(c) > 0xFFFF else 1 for c in text]
    single, part = _LIMITS[encoding]
    total = sum(units)
    if total <= single:
        return SmsSegments(encoding, total, 1, single)
    return SmsSegments(encoding, total, _pack(units, part), part)


# --- templates -------------------------------------------------------------------


@dataclass(frozen=True)
class Template:
    name: str
    channel: Channel
    locale: str
    subject: str | None
    text: str
    html: str | None
    # The provider's own template for providers that send templates, not text:
    # {"msg91": "<MSG91 flow template id>", "whatsapp": "<approved template name>"}
    provider_templates: Mapping[str, str] = field(default_factory=dict)
    # India's DLT (TRAI) registration of this text, for SMS: content template id and the
    # principal entity (sender) id.
    dlt_template_id: str | None = None
    dlt_entity_id: str | None = None
    # WhatsApp body parameters in order ({{1}}, {{2}}...): variable names
    parameters: tuple[str, ...] = ()
    # Every variable the subject, text and html use (sorted); see `template()`.
    variables: tuple[str, ...] = ()

    def describe(self) -> str:
        return f"'{self.name}' ({self.channel.value}, {self.locale})"


_TEXT_ENV = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False)
_HTML_ENV = SandboxedEnvironment(undefined=StrictUndefined, autoescape=True)


def _variables_of(label: str, sources: Iterable[tuple[str, str]]) -> set[str]:
    found: set[str] = set()
    for part, source in sources:
        try:
            found |= meta.find_undeclared_variables(_TEXT_ENV.parse(source))
        except jinja2.TemplateSyntaxError as exc:
            raise TemplateError(
                f"template {label}: the {part} has a Jinja2 syntax error on line "
                f"{exc.lineno}: {exc.message}"
            ) from None
    return found


def template(
    name: str,
    channel: Channel,
    locale: str,
    *,
    text: str,
    subject: str | None = None,
    html: str | None = None,
    provider_templates: Mapping[str, str] | None = None,
    dlt_template_id: str | None = None,
    dlt_entity_id: str | None = None,
    parameters: Iterable[str] = (),
) -> Template:
    """A checked Template: its texts parsed (syntax errors named), `variables` found."""
    label = f"'{name}' ({channel.value}, {locale})"
    if not _NAME.fullmatch(name):
        raise TemplateError(
            f"template name {name!r}: use letters, digits, '_', '-' and '.' (no spaces)"
        )
    if not _LOCALE.fullmatch(locale):
        raise TemplateError(f"template {label}: locale {locale!r} is not like 'en' or 'hi-IN'")
    if not text.strip():
        raise TemplateError(f"template {label}: the text is empty")
    if channel is Channel.EMAIL and not (subject or "").strip():
        raise TemplateError(f"template {label}: an email template needs a subject")
    if channel is not Channel.EMAIL and (subject is not None or html is not None):
        raise TemplateError(
            f"template {label}: only email templates have a subject and html; remove them"
        )
    for what, value in (("dlt_template_id", dlt_template_id), ("dlt_entity_id", dlt_entity_id)):
        if value is not None and not value.isdigit():
            raise TemplateError(f"template {label}: {what} must be digits (got {value!r})")
    sources = [("text", text)]
    if subject is not None:
        sources.append(("subject", subject))
    if html is not None:
        sources.append(("html", html))
    variables = _variables_of(label, sources)
    params = tuple(parameters)
    unused = [p for p in params if p not in variables]
    if unused:
        raise TemplateError(
            f"template {label}: parameter(s) {', '.join(repr(u) for u in unused)} not used in "
            f"its texts (its variables: {', '.join(sorted(variables)) or 'none'})"
        )
    if len(set(params)) != len(params):
        raise TemplateError(f"template {label}: a parameter is listed twice")
    return Template(
        name=name,
        channel=channel,
        locale=locale,
        subject=subject,
        text=text,
        html=html,
        provider_templates=MappingProxyType(dict(provider_templates or {})),
        dlt_template_id=dlt_template_id,
        dlt_entity_id=dlt_entity_id,
        parameters=params,
        variables=tuple(sorted(variables)),
    )


@dataclass(frozen=True)
class Rendered:
    template: Template
    subject: str | None
    text: str
    html: str | None
    parameters: tuple[str, ...]  # values for WhatsApp, in order
    segments: SmsSegments | None  # for SMS


def _locale_key(locale: str) -> str:
    return locale.replace("_", "-").lower()


def _locales_to_try(locale: str | None) -> list[str]:
    tried: list[str] = []
    if locale:
        exact = _locale_key(locale)
        tried += [exact, exact.split("-")[0]]
    tried.append(DEFAULT_LOCALE)
    return list(dict.fromkeys(tried))


_Key = tuple[str, str, Channel, str]  # scope, name, channel, locale (lower-case)

# What a template can do wrong at render time, besides Jinja2's own errors: the sandbox
# answers a too-large range() with OverflowError, a bad filter argument with TypeError...
_RENDER_ERRORS = (jinja2.TemplateError, TypeError, ValueError, ArithmeticError, LookupError)


class TemplateBook:
    """Every tenant's templates: (tenant id or "*", template) pairs."""

    def __init__(self, templates: Iterable[tuple[str, Template]]) -> None:
        self._by_key: dict[_Key, Template] = {}
        for scope, t in templates:
            key = (scope, t.name, t.channel, _locale_key(t.locale))
            if key in self._by_key:
                raise TemplateError(f"template {t.describe()} of tenant '{scope}' is defined twice")
            self._by_key[key] = t
        self._compiled: dict[tuple[_Key, str], jinja2.Template] = {}

    def __len__(self) -> int:
        return len(self._by_key)

    def _resolve(
        self, tenant: str, name: str, channel: Channel, locale: str | None
    ) -> tuple[_Key, Template]:
        scopes = [tenant, EVERY_TENANT] if tenant != EVERY_TENANT else [EVERY_TENANT]
        for scope in scopes:
            for loc in _locales_to_try(locale):
                key = (scope, name, channel, loc)
                if key in self._by_key:
                    return key, self._by_key[key]
        known = sorted({t.name for t in self.list(tenant) if t.channel is channel})
        if name in known:
            locales = sorted(
                t.locale for t in self.list(tenant) if t.name == name and t.channel is channel
            )
            raise TemplateError(
                f"no template '{name}' for {channel.value} of tenant '{tenant}' in locale "
                f"'{locale}' nor '{DEFAULT_LOCALE}' (locales: {', '.join(locales)})"
            )
        raise TemplateError(
            f"no template '{name}' for {channel.value} of tenant '{tenant}' "
            f"(known: {', '.join(known) or 'none'})"
        )

    def find(self, tenant: str, name: str, channel: Channel, locale: str | None) -> Template:
        return self._resolve(tenant, name, channel, locale)[1]

    def _compile(self, key: _Key, part: str, source: str) -> jinja2.Template:
        cached = self._compiled.get((key, part))
        if cached is None:
            env = _HTML_ENV if part == "html" else _TEXT_ENV
            try:
                cached = env.from_string(source)
            except jinja2.TemplateSyntaxError as exc:
                raise TemplateError(
                    f"template '{key[1]}': the {part} has a Jinja2 syntax error on line "
                    f"{exc.lineno}: {exc.message}"
                ) from None
            self._compiled[(key, part)] = cached
        return cached

    def render(
        self,
        tenant: str,
        name: str,
        channel: Channel,
        variables: Mapping[str, str],
        locale: str | None = None,
    ) -> Rendered:
        key, t = self._resolve(tenant, name, channel, locale)
        missing = (set(t.variables) | set(t.parameters)) - set(variables)
        if missing:
            raise MissingVariablesError(t.name, missing)
        values = dict(variables)

        def run(part: str, source: str | None) -> str | None:
            if source is None:
                return None
            compiled = self._compile(key, part, source)
            try:
                return compiled.render(values)
            except jinja2.UndefinedError as exc:
                raise TemplateError(f"template '{t.name}', {part}: {exc.message}") from None
            except jinja2.exceptions.SecurityError as exc:
                raise TemplateError(
                    f"template '{t.name}', {part}: the sandbox refused it: {exc}"
                ) from None
            except _RENDER_ERRORS as exc:
                raise TemplateError(f"template '{t.name}', {part}: cannot render: {exc}") from None

        text = run("text", t.text) or ""
        return Rendered(
            template=t,
            subject=run("subject", t.subject),
            text=text,
            html=run("html", t.html),
            parameters=tuple(values[p] for p in t.parameters),
            segments=sms_segments(text) if channel is Channel.SMS else None,
        )

    def entries(self, tenant: str | None = None) -> list[tuple[str, Template]]:
        """(scope, template) pairs, sorted by name, channel, locale. For a tenant: the ones
        it would be given, its own and the shared ones it does not override."""
        if tenant is None:
            chosen = [(k[0], t) for k, t in self._by_key.items()]
        else:
            own = {k[1:] for k in self._by_key if k[0] == tenant}
            chosen = [
                (k[0], t)
                for k, t in self._by_key.items()
                if k[0] == tenant or (k[0] == EVERY_TENANT and k[1:] not in own)
            ]
        return sorted(chosen, key=lambda e: (e[1].name, e[1].channel.value, e[1].locale, e[0]))

    def list(self, tenant: str | None = None) -> list[Template]:
        return [t for _, t in self.entries(tenant)]
