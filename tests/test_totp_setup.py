"""Setting up an authenticator app on /console/totp and /portal/security, over HTTP with a
real database: a QR code of the exact otpauth:// URI (drawn on the server), the key grouped
for reading, the same pending key on every reload until it is confirmed (a key already typed
into a phone must keep working), a new one only when asked, the reason an administrator is
sent here, and a confirmation once it is on."""

from __future__ import annotations

import base64
import html
import io
import re
from typing import Any

import segno
from litestar import Litestar
from litestar.testing import TestClient

from appliance.auth import totp
from appliance.clinic.schemas import UserPublic
from tests.conftest import PASSWORD, Browser

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
KEY = re.compile(r'id="totp-secret" dir="ltr">([A-Z2-7 ]+)</code>')
URI = re.compile(r'<code class="uri" dir="ltr">([^<]+)</code>')
QR = re.compile(r'<img src="data:image/svg\+xml;base64,([A-Za-z0-9+/=]+)"[^>]* alt="([^"]+)"')
REQUIRED = "Administrators must set up an authenticator app before using the console."


def csrf_of(page: Any) -> str:
    found = CSRF.search(page.text)
    assert found, page.text
    return found.group(1)


def shown_key(page: Any) -> tuple[str, str]:
    """(the key as shown, in groups, and the otpauth URI) of a page that shows a key."""
    key, uri = KEY.search(page.text), URI.search(page.text)
    assert key, page.text
    assert uri, page.text
    return key.group(1), html.unescape(uri.group(1))


def admin_console(browser: Browser) -> TestClient[Litestar]:
    """adam signed in to the console, his second factor not set up yet."""
    client = browser()
    signed = client.post(
        "/console/login",
        data={"email": "adam@clinic.example", "password": PASSWORD},
        follow_redirects=False,
    )
    assert signed.headers["location"] == "/console/totp"
    return client


def test_an_administrator_sent_to_set_up_is_told_why(
    browser: Browser, people: dict[str, UserPublic]
) -> None:
    adam = admin_console(browser)
    bounced = adam.get("/console/jobs")  # any console page, followed to where it sends him
    assert bounced.url.path == "/console/totp"
    assert REQUIRED in bounced.text
    assert 'role="status"' in bounced.text


def test_the_key_is_shown_as_a_qr_code_of_the_exact_uri_and_grouped_in_fours(
    browser: Browser, people: dict[str, UserPublic]
) -> None:
    adam = admin_console(browser)
    shown = adam.post("/console/totp", data={"csrf_token": csrf_of(adam.get("/console/totp"))})
    assert shown.status_code == 200
    grouped, uri = shown_key(shown)
    secret = grouped.replace(" ", "")
    assert re.fullmatch(r"([A-Z2-7]{4} )*[A-Z2-7]{1,4}", grouped)
    assert uri.startswith("otpauth://totp/")
    assert f"secret={secret}" in uri
    qr = QR.search(shown.text)
    assert qr, shown.text
    svg = base64.b64decode(qr.group(1))
    assert svg.startswith(b"<svg")
    assert b"<path" in svg
    expected = io.BytesIO()  # the same drawing of this exact URI, made independently
    segno.make(uri, error="m").save(
        expected, kind="svg", scale=5, border=4, dark="#000", light="#fff", xmldecl=False
    )
    assert svg == expected.getvalue()
    assert "QR code" in qr.group(2)
    assert 'style="' not in shown.text  # the CSP blocks inline styles


def test_reloading_shows_the_same_pending_key_until_a_new_one_is_asked_for(
    browser: Browser, people: dict[str, UserPublic]
) -> None:
    adam = admin_console(browser)
    token = csrf_of(adam.get("/console/totp"))
    first = shown_key(adam.post("/console/totp", data={"csrf_token": token}))
    reloaded = adam.get("/console/totp")
    assert shown_key(reloaded) == first  # shown without pressing anything
    assert shown_key(adam.post("/console/totp", data={"csrf_token": token})) == first
    fresh = shown_key(adam.post("/console/totp", data={"csrf_token": token, "fresh": "true"}))
    assert fresh[0] != first[0]
    assert shown_key(adam.get("/console/totp")) == fresh


def test_turning_it_on_lands_on_a_page_that_says_so(
    browser: Browser, people: dict[str, UserPublic]
) -> None:
    adam = admin_console(browser)
    token = csrf_of(adam.get("/console/totp"))
    grouped, _ = shown_key(adam.post("/console/totp", data={"csrf_token": token}))
    code = totp.code_for(base64.b32decode(grouped.replace(" ", "")))
    on = adam.post("/console/totp/confirm", data={"csrf_token": token, "code": code})
    assert on.url.path == "/console/patients"
    assert "Your authenticator is on" in on.text
    again = adam.get("/console/totp")
    assert REQUIRED not in again.text
    assert "Your authenticator app is on" in again.text
    assert KEY.search(again.text) is None  # an active key is never shown again
    replaced = adam.post("/console/totp", data={"csrf_token": token, "fresh": "true"})
    assert replaced.status_code == 409  # a session alone cannot swap the second factor


def test_the_portal_keeps_the_pending_key_and_shows_its_qr_code(
    browser: Browser, people: dict[str, UserPublic]
) -> None:
    bob = browser()
    signed = bob.post(
        "/portal/login",
        data={"email": "bob@portal.example", "password": PASSWORD},
        follow_redirects=False,
    )
    assert signed.status_code == 303, signed.text
    token = csrf_of(bob.get("/portal/security"))
    started = bob.post("/portal/security/totp", data={"csrf_token": token})
    first = shown_key(started)
    assert QR.search(started.text)
    assert shown_key(bob.get("/portal/security")) == first
    assert shown_key(bob.post("/portal/security/totp", data={"csrf_token": token})) == first
    fresh = bob.post("/portal/security/totp", data={"csrf_token": token, "fresh": "true"})
    assert shown_key(fresh)[0] != first[0]
