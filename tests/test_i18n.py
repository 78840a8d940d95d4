"""The interface in the reader's language: English by default, Hebrew (right to left) when the
browser asks for it or the person chose it; the switcher on every page; and a catalog that
translates every string the code and templates mark (so a new untranslated string fails here,
with a list, instead of showing English to a Hebrew reader)."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from babel.messages.catalog import Catalog
from babel.messages.pofile import read_po
from sqlmodel import Session

from appliance.clinic.models import User
from appliance.clinic.schemas import UserPublic
from appliance.web import i18n
from appliance.web.language import FALLBACK_NEXT, local_path
from tests.conftest import PASSWORD, REPO, Browser

HEBREW = re.compile(r"[\u0590-\u05FF]")
PLACEHOLDER = re.compile(r"%\((\w+)\)[sd]|%[sd]")
HE_PO = REPO / "appliance/locales/he/LC_MESSAGES/messages.po"


def portal_sign_in(client: Any, email: str = "bob@portal.example") -> str:
    """Signs in through the portal's form; returns the page's CSRF token."""
    response = client.post("/portal/login", data={"email": email, "password": PASSWORD})
    assert response.status_code == 200, response.text
    match = re.search(r'name="csrf_token" value="([^"]+)"', response.text)
    assert match
    return match.group(1)


def html_root(html: str) -> str:
    match = re.search(r"<html[^>]*>", html)
    assert match
    return match.group(0)


# --- which language a request gets -----------------------------------------------------------


def test_pages_are_in_english_left_to_right_when_nothing_says_otherwise(browser: Browser) -> None:
    page = browser().get("/portal/login")
    assert html_root(page.text) == '<html lang="en" dir="ltr">'
    assert "<h1>Sign in</h1>" in page.text
    assert page.headers["content-language"] == "en"


def test_a_browser_that_prefers_hebrew_gets_the_sign_in_page_in_hebrew_right_to_left(
    browser: Browser,
) -> None:
    page = browser().get("/console/login", headers={"Accept-Language": "he-IL,he;q=0.9,en;q=0.8"})
    assert html_root(page.text) == '<html lang="he" dir="rtl">'
    assert "<h1>התחברות</h1>" in page.text
    assert page.headers["content-language"] == "he"


def test_the_lang_cookie_wins_over_the_browsers_accept_language(browser: Browser) -> None:
    client = browser()
    client.cookies.set("lang", "en")
    page = client.get("/portal/login", headers={"Accept-Language": "he"})
    assert 'lang="en"' in html_root(page.text)


@pytest.mark.parametrize(
    ("cookie", "accept", "expected"),
    [
        (None, None, "en"),
        (None, "fr-FR,he;q=0.5", "he"),  # the best supported one, not the first
        (None, "he;q=0.2,en;q=0.9", "en"),  # weights count, not the order
        (None, "de, fr", "en"),
        ("he", "en", "he"),
        ("xx", "he", "he"),  # an unknown cookie value is ignored
        (None, "he;q=0", "en"),  # q=0 means "not this one"
    ],
)
def test_negotiation_takes_the_cookie_then_accept_language_then_english(
    cookie: str | None, accept: str | None, expected: str
) -> None:
    assert i18n.negotiate(cookie, accept) == expected


def test_a_lazy_string_is_translated_when_read_in_the_readers_language() -> None:
    label = i18n.lazy_gettext("Sign out")  # as a module constant would be, before any request
    token = i18n.set_locale("he")
    try:
        assert str(label) == "התנתקות"
        assert i18n.long_date(date(2026, 10, 8)) == "8 באוקטובר 2026"
    finally:
        i18n.reset_locale(token)
    assert str(label) == "Sign out"
    assert i18n.long_date(date(2026, 10, 8)) == "8 October 2026"


def test_hebrew_is_right_to_left_and_english_left_to_right() -> None:
    assert i18n.text_direction("he") == "rtl"
    assert i18n.text_direction("en") == "ltr"


# --- the switcher ----------------------------------------------------------------------------


def test_the_switcher_sets_the_language_and_returns_to_the_same_page(browser: Browser) -> None:
    client = browser()
    page = client.get("/portal/login")
    assert 'action="/lang"' in page.text
    assert 'lang="he"' in page.text  # the Hebrew button is named in Hebrew, marked as such
    moved = client.post(
        "/lang", data={"lang": "he", "next": "/portal/login"}, follow_redirects=False
    )
    assert moved.status_code == 303
    assert moved.headers["location"] == "/portal/login"
    again = client.get("/portal/login")
    assert html_root(again.text) == '<html lang="he" dir="rtl">'


@pytest.mark.parametrize(
    "target",
    [
        "https://evil.example/",
        "//evil.example/portal",
        "/\\evil.example",
        "javascript:alert(1)",
        "portal",
        "/portal\r\nSet-Cookie: x=1",
        "",
    ],
)
def test_the_switcher_never_sends_anyone_off_site(browser: Browser, target: str) -> None:
    assert local_path(target) is None
    moved = browser().post("/lang", data={"lang": "he", "next": target}, follow_redirects=False)
    assert moved.status_code == 303
    assert moved.headers["location"] == FALLBACK_NEXT


def test_a_local_path_with_its_query_is_kept() -> None:
    assert local_path("/portal?fresh=true") == "/portal?fresh=true"


def test_a_language_change_from_another_site_is_refused(browser: Browser) -> None:
    refused = browser().post(
        "/lang",
        data={"lang": "he", "next": "/portal"},
        headers={"Sec-Fetch-Site": "cross-site"},
        follow_redirects=False,
    )
    assert refused.status_code == 403
    assert "lang=" not in refused.headers.get("set-cookie", "")


def test_an_unknown_language_is_refused(browser: Browser) -> None:
    refused = browser().post("/lang", data={"lang": "xx", "next": "/portal"})
    assert refused.status_code == 422


def test_a_signed_in_patients_choice_is_saved_and_follows_them_to_the_next_sign_in(
    browser: Browser, people: dict[str, UserPublic], session: Session
) -> None:
    client = browser()
    csrf = portal_sign_in(client)
    client.post("/lang", data={"lang": "he", "next": "/portal", "csrf_token": csrf})
    session.expire_all()
    bob = session.get(User, people["bob"].id)
    assert bob is not None
    assert bob.locale == "he"

    elsewhere = browser()  # another device: no cookie, an English browser
    page = elsewhere.post(
        "/portal/login",
        data={"email": "bob@portal.example", "password": PASSWORD},
        headers={"Accept-Language": "en"},
    )
    assert html_root(page.text) == '<html lang="he" dir="rtl">'


def test_a_switch_without_the_csrf_token_changes_the_cookie_but_not_the_account(
    browser: Browser, people: dict[str, UserPublic], session: Session
) -> None:
    client = browser()
    portal_sign_in(client)
    client.post("/lang", data={"lang": "he", "next": "/portal"})
    session.expire_all()
    bob = session.get(User, people["bob"].id)
    assert bob is not None
    assert bob.locale is None


# --- the catalog -----------------------------------------------------------------------------


def extracted(tmp_path: Path) -> Catalog:
    """Every message the code and templates mark, extracted exactly as `make translations`
    does (babel.cfg and the Makefile's I18N_KEYWORDS)."""
    makefile = (REPO / "Makefile").read_text()
    keywords = re.search(r"^I18N_KEYWORDS\s*:=\s*(.+)$", makefile, re.MULTILINE)
    assert keywords
    pot = tmp_path / "messages.pot"
    subprocess.run(
        [
            str(Path(sys.executable).with_name("pybabel")),
            "-q",
            "extract",
            "-F",
            "babel.cfg",
            *shlex.split(keywords.group(1)),
            "-o",
            str(pot),
            ".",
        ],
        cwd=REPO,
        check=True,
    )
    with pot.open("rb") as source:
        return read_po(source)


def placeholders(text: str) -> set[str]:
    return set(PLACEHOLDER.findall(text))


def catalog_problems(extracted: Catalog, hebrew: Catalog) -> list[str]:
    """Each extracted message missing from the Hebrew catalog, fuzzy, empty, or with other
    placeholders (a plural's singular may leave out the count: "one message")."""
    problems = []
    for message in extracted:
        if not message.id:
            continue
        ids = message.id if isinstance(message.id, tuple) else (message.id,)
        where = ", ".join(f"{path}:{line}" for path, line in message.locations[:2])
        found = hebrew.get(ids[0], context=message.context)
        forms = found.string if found is not None else ""
        forms = forms if isinstance(forms, tuple) else (forms,)
        if found is None or found.fuzzy or not all(forms):
            problems.append(f"untranslated: {ids[0]!r} ({where})")
            continue
        wanted = placeholders(ids[-1])
        for number, text in enumerate(forms):
            got = placeholders(str(text))
            plural_singular = len(forms) > 1 and number == 0
            if got != wanted and not (plural_singular and got <= wanted):
                problems.append(f"placeholders differ: {ids[0]!r} -> {text!r} ({where})")
    return problems


def test_every_marked_string_has_a_hebrew_translation_with_the_same_placeholders(
    tmp_path: Path,
) -> None:
    with HE_PO.open("rb") as source:
        hebrew = read_po(source, locale="he")
    problems = catalog_problems(extracted(tmp_path), hebrew)
    assert problems == [], "run `make translations`, then translate:\n" + "\n".join(problems)


def test_a_string_nobody_translated_yet_is_listed_by_the_catalog_check() -> None:
    source, hebrew = Catalog(), Catalog(locale="he")
    source.add("Hello %(name)s", locations=[("x.html", 3)])
    source.add("Goodbye")
    hebrew.add("Hello %(name)s", "שלום %(who)s")
    assert catalog_problems(source, hebrew) == [
        "placeholders differ: 'Hello %(name)s' -> 'שלום %(who)s' (x.html:3)",
        "untranslated: 'Goodbye' ()",
    ]


# --- what a Hebrew reader sees -----------------------------------------------------------------


def visible_text(html: str) -> str:
    """The page's text as a reader sees it: no scripts, tags or entities."""
    html = re.sub(r"<script\b.*?</script>", " ", html, flags=re.S)
    html = re.sub(r"<[^>]+>", " ", html)
    return html.replace("&#34;", '"').replace("&quot;", '"').replace("&amp;", "&")


def test_the_hebrew_portal_shows_no_untranslated_english(
    browser: Browser, people: dict[str, UserPublic], settings: Any
) -> None:
    client = browser()
    client.cookies.set("lang", "he")
    portal_sign_in(client)
    # The switcher names English in English; the clinic's name is its own; acronyms and file
    # formats (ZIP, README, PDF) are the same in Hebrew text.
    allowed = {"English", *settings.clinic.name.split()}
    for path in ("/portal", "/portal/homework", "/portal/consents", "/portal/my-data"):
        page = client.get(path)
        assert page.status_code == 200, path
        assert html_root(page.text) == '<html lang="he" dir="rtl">'
        english = [
            w
            for w in re.findall(r"[A-Za-z]{3,}", visible_text(page.text))
            if w not in allowed and not w.isupper()
        ]
        assert english == [], f"{path}: {english}"
        assert HEBREW.search(visible_text(page.text))
