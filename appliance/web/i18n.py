"""Interface translations. Every user-visible string in Python goes through `_()` (and in
templates through `{{ _("...") }}` or `{% trans %}`), so a clinic can read the appliance in its
own language.

The catalogs are the translators' `.po` files under `appliance/locales/<lang>/LC_MESSAGES/`,
compiled in memory once per process: there is no build step that could be forgotten, and the
wheel carries them like any other package file. The language of the current request lives in a
ContextVar that `LocaleMiddleware` sets (the `lang` cookie, then the browser's Accept-Language,
then English); `_()` reads it when called, so module-level strings must use `lazy_gettext`.
The cookie is written when someone picks a language (`/lang`) and, from their saved choice
(`User.locale`), when they sign in: that keeps the choice without a database lookup per request.
"""

from __future__ import annotations

import gettext as gettext_module
from collections.abc import Callable
from contextvars import ContextVar
from datetime import date
from functools import cache
from io import BytesIO
from pathlib import Path
from typing import Any

from babel import Locale, UnknownLocaleError
from babel.dates import format_date
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import LazyProxy, Translations

LOCALES_DIR = Path(__file__).resolve().parent.parent / "locales"
DEFAULT_LOCALE = "en"
SUPPORTED_LOCALES = ("en", "he")
# What the switcher shows: each language in its own name, so anyone can find theirs.
LANGUAGE_NAMES = {"en": "English", "he": "עברית"}
COOKIE = "lang"
COOKIE_MAX_AGE = 365 * 24 * 3600

_current: ContextVar[str] = ContextVar("appliance_locale", default=DEFAULT_LOCALE)


def current_locale() -> str:
    return _current.get()


def set_locale(lang: str) -> Any:
    """Make `lang` the current language (for this task/thread context); returns the token that
    `reset_locale` takes. Unsupported values fall back to the default."""
    return _current.set(lang if lang in SUPPORTED_LOCALES else DEFAULT_LOCALE)


def reset_locale(token: Any) -> None:
    _current.reset(token)


def text_direction(lang: str | None = None) -> str:
    """ "rtl" or "ltr", from the CLDR data of the language (Hebrew, Arabic, ... are rtl)."""
    return _direction(lang or current_locale())


@cache
def _direction(lang: str) -> str:
    try:
        order = Locale.parse(lang).character_order
    except (ValueError, UnknownLocaleError):
        return "ltr"
    return "rtl" if order == "right-to-left" else "ltr"


def supported(lang: str | None) -> str | None:
    """`lang` if it names a supported language (any region: "he-IL" -> "he"), else None."""
    if not lang:
        return None
    base = lang.strip().replace("_", "-").split("-")[0].lower()
    return base if base in SUPPORTED_LOCALES else None


def negotiate(cookie: str | None, accept_language: str | None) -> str:
    """The request's language: the `lang` cookie (the person's own choice), else the best
    match of the browser's Accept-Language, else English."""
    chosen = supported(cookie)
    if chosen:
        return chosen
    preferred = []
    for part in (accept_language or "").split(","):
        tag, _sep, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        if tag and tag != "*" and quality > 0:
            preferred.append((quality, tag.strip()))
    preferred.sort(key=lambda pair: -pair[0])  # stable: equal weights keep the browser's order
    for _quality, tag in preferred:
        found = supported(tag)
        if found:
            return found
    return DEFAULT_LOCALE


@cache
def translations(lang: str) -> gettext_module.NullTranslations:
    """The compiled catalog of `lang` (fuzzy entries left out: a guess is not a translation).
    English is the source language: its strings are the msgids themselves."""
    po = LOCALES_DIR / lang / "LC_MESSAGES" / "messages.po"
    if lang == DEFAULT_LOCALE or not po.is_file():
        return gettext_module.NullTranslations()
    with po.open("rb") as source:
        catalog = read_po(source, locale=lang)
    compiled = BytesIO()
    write_mo(compiled, catalog, use_fuzzy=False)
    compiled.seek(0)
    return Translations(compiled, domain="messages")


def gettext(message: str) -> str:
    if not message:  # the empty msgid is the catalog's header, never a translation
        return message
    # str(): a lazy string (`lazy_gettext`) handed on is looked up by its text.
    return translations(current_locale()).gettext(str(message))


def ngettext(singular: str, plural: str, n: int) -> str:
    return translations(current_locale()).ngettext(singular, plural, n)


def pgettext(context: str, message: str) -> str:
    return translations(current_locale()).pgettext(context, message)


def npgettext(context: str, singular: str, plural: str, n: int) -> str:
    return translations(current_locale()).npgettext(context, singular, plural, n)


_ = gettext


def lazy_gettext(message: str) -> str:
    """For strings defined at import time (module constants, labels): translated each time
    it is turned into text, in the language of the request that reads it."""
    proxy: Any = LazyProxy(gettext, message, enable_cache=False)
    return proxy  # type: ignore[no-any-return]


lazy = lazy_gettext


def gettext_noop(message: str) -> str:
    """Marks a string for extraction without translating it here (it is translated where it
    is shown, e.g. a service's error message turned into a page)."""
    return message


N_ = gettext_noop

_DATE_PATTERNS = {"en": "d MMMM y"}  # "12 November 2026"; other languages: their CLDR long form


def long_date(day: date) -> str:
    """The date in words in the current language ("12 November 2026", "12 בנובמבר 2026"):
    unambiguous in every locale (no 11/12 vs 12/11)."""
    lang = current_locale()
    return format_date(day, _DATE_PATTERNS.get(lang, "long"), locale=lang)


class _Current:
    """A template global that prints the current value of `read()` (the language, the
    direction) at render time, since Jinja globals are fixed when the engine is built."""

    def __init__(self, read: Callable[[], str]) -> None:
        self._read = read

    def __str__(self) -> str:
        return self._read()

    def __html__(self) -> str:
        return self._read()

    def __eq__(self, other: object) -> bool:
        return self._read() == (str(other) if isinstance(other, _Current) else other)

    def __hash__(self) -> int:
        return hash(self._read())


def template_globals() -> dict[str, Any]:
    """What every template sees: the current `lang` and `dir`, the switcher's choices, the
    date helper and `translate`."""
    return {
        "lang": _Current(current_locale),
        "dir": _Current(text_direction),
        "languages": LANGUAGE_NAMES,
        "format_long_date": long_date,
        # For text that arrives in a variable (a label, a title): looked up, never %-formatted,
        # so a "%" in it cannot break the page the way `_(variable)` would.
        "translate": gettext,
    }
