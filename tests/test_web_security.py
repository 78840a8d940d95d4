"""Web security, systematically: headers on every kind of answer, cookie flags on every
cookie, CSRF and cross-site refusal on every state-changing route, session fixation and
server-side sign-out, sign-in throttling on every sign-in door, and idle/absolute timeouts.

One place SECURITY.md can cite; each test names its HIPAA 164.312 / OWASP ASVS 4.0.3 (L2)
requirement. Cases already covered elsewhere are not repeated: the API sign-in's planted
cookie and throttle (tests/test_auth.py), the page routes' missing-token sweep
(tests/test_pages_quality.py), the IDOR sweep (tests/test_idor_sweep.py).
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from litestar import Litestar
from litestar.testing import TestClient
from sqlalchemy import text
from sqlmodel import Session

from appliance.app import create_app
from appliance.auth.sessions import token_hash
from appliance.clinic.schemas import UserPublic
from appliance.db import Database
from appliance.settings import Settings, load_settings
from tests.conftest import PASSWORD, Browser, login, signed_in

COOKIE = "appliance_session"
HOST = "testserver.local"
PARAM = re.compile(r"\{(\w+)(?::\w+)?\}")
UNSAFE = ("POST", "PUT", "PATCH", "DELETE")
# Routes used before there is a session (no token to check): defended against login CSRF by
# refusing cross-site posts (tests/test_pages_quality.py, and below while signed in).
PRE_SESSION = {"/api/v1/auth/login", "/console/login", "/portal/login", "/portal/join", "/lang"}
UUIDISH = re.compile(r"[0-9a-f]{32}|[0-9a-f-]{36}")  # request ids differ per answer
CROSS_SITE = ({"Sec-Fetch-Site": "cross-site"}, {"Origin": "http://evil.example"})
CSRF_FORM = re.compile(r'name="csrf_token" value="([^"]+)"')


def routes(app: Litestar, methods: tuple[str, ...]) -> list[tuple[str, str]]:
    return sorted(
        {
            (method, route.path)
            for route in app.routes
            for handler in route.route_handlers
            for method in handler.http_methods
            if method in methods
        }
    )


def fill(path: str) -> str:
    """Made-up ids: the checks here come before anything is looked up."""
    return PARAM.sub(lambda m: "recording" if m.group(1) == "purpose" else str(uuid.uuid4()), path)


def header_problems(response: Any) -> list[str]:
    """ASVS V14.4: CSP with frame-ancestors, nosniff, X-Frame-Options, Referrer-Policy,
    Permissions-Policy, HSTS; V8.2.1: no-store on everything (pages and JSON carry PHI)."""
    headers, found = response.headers, []
    csp = headers.get("content-security-policy", "")
    for needle in ("default-src 'self'", "frame-ancestors 'none'", "object-src 'none'"):
        if needle not in csp:
            found.append(f"CSP without {needle}")
    if "http:" in csp or "https:" in csp:
        found.append("CSP names an outside source")
    expected = {
        "x-content-type-options": "nosniff",
        "x-frame-options": "DENY",
        "referrer-policy": "same-origin",
        "cache-control": "no-store",
    }
    found += [f"{k}: {headers.get(k)!r}" for k, v in expected.items() if headers.get(k) != v]
    if "camera=()" not in headers.get("permissions-policy", ""):
        found.append("Permissions-Policy missing or allowing the camera")
    if not headers.get("strict-transport-security", "").startswith("max-age=31536000"):
        found.append("HSTS missing or short")
    return found


def test_every_get_route_and_every_error_carries_the_security_headers(
    browser: Browser, people: dict[str, UserPublic]
) -> None:
    """HIPAA 164.312(e)(1); ASVS V14.4.1-7 and V8.2.1: each GET route without parameters as a
    stranger, a therapist and a patient, plus 404, 405, 401, 403, 422 and static files."""
    stranger = browser()
    staff, _ = signed_in(browser, "alice@clinic.example")
    patient, _ = signed_in(browser, "bob@portal.example")
    problems: list[str] = []
    answers = 0
    for _, path in routes(stranger.app, ("GET",)):
        if "{" in path or path.startswith("/static"):
            continue
        for who, client in (("stranger", stranger), ("alice", staff), ("bob", patient)):
            response = client.get(path, follow_redirects=False)
            answers += 1
            if response.status_code >= 500:
                problems.append(f"{who} GET {path}: {response.status_code}")
            problems += [f"{who} GET {path}: {p}" for p in header_problems(response)]
    extra = {
        "404": stranger.get("/nowhere"),
        "405": stranger.delete("/health"),
        "401": stranger.get("/api/v1/patients"),
        "403": patient.get("/api/v1/jobs"),
        "422": patient.get("/api/v1/consent/not-a-uuid/active"),
        "static": stranger.get("/static/portal.css"),
        "stream": staff.get("/console/jobs/live.json"),
    }
    for name, response in extra.items():
        problems += [f"{name}: {p}" for p in header_problems(response)]
    assert extra["static"].status_code == 200
    assert answers > 100
    assert problems == []


def cookies_of(response: Any) -> list[str]:
    return response.headers.get_list("set-cookie")


def cookie_problems(cookie: str, secure: bool) -> list[str]:
    """ASVS V3.4.1-5: Secure (over TLS), HttpOnly, SameSite, __Host- prefix, Path=/, no Domain."""
    name, attributes = cookie.split("=", 1)[0], cookie.lower()
    found = []
    if "httponly" not in attributes:
        found.append("not HttpOnly")
    if "samesite=lax" not in attributes and "samesite=strict" not in attributes:
        found.append("no SameSite")
    if "path=/;" not in attributes + ";":
        found.append("not Path=/")
    if "domain=" in attributes:
        found.append("has a Domain")
    if secure and ("secure" not in attributes.split(";")[1:] and "; secure" not in attributes):
        found.append("not Secure")
    if secure and name.endswith("session") and not name.startswith("__Host-"):
        found.append("no __Host- prefix")
    return [f"{name}: {problem}" for problem in found]


def test_every_cookie_from_every_sign_in_door_is_httponly_samesite_and_host_only(
    settings: Settings, database: Database, people: dict[str, UserPublic]
) -> None:
    """HIPAA 164.312(d); ASVS V3.4: the API, console and portal sign-ins and the language
    switcher, over plain HTTP and with TLS (`web.cookie_secure`), where the session cookie is
    `__Host-` and Secure."""
    problems: list[str] = []
    for secure in (False, True):
        config = load_settings(
            data_dir=settings.data_dir,
            database=settings.database.model_dump(),
            web={"cookie_secure": secure},
        )
        base = f"{'https' if secure else 'http'}://{HOST}"
        set_cookies: list[str] = []
        for door, email in (("/api/v1/auth/login", "audrey@clinic.example"), *DOORS):
            with TestClient(app=create_app(config, database), base_url=base) as client:
                response = sign_in(client, door, email, PASSWORD)
                assert response.status_code in (200, 303), response.text
                set_cookies += cookies_of(response)
                language = client.post(
                    "/lang", data={"lang": "he", "next": "/"}, follow_redirects=False
                )
                assert language.status_code == 303, language.text
                set_cookies += cookies_of(language)
        assert sum("session=" in cookie for cookie in set_cookies) == 3
        problems += [p for cookie in set_cookies for p in cookie_problems(cookie, secure)]
    assert problems == []


def test_every_state_changing_route_needs_the_csrf_token_and_refuses_cross_site_requests(
    browser: Browser, people: dict[str, UserPublic]
) -> None:
    """ASVS V4.2.2 / V13.2.3 / V3.5: a cookie session's unsafe API request needs X-CSRF-Token
    (page routes: tests/test_pages_quality.py); and, as defence in depth, a request a browser
    marks as cross-site is refused on the API, the console and the portal, token or not."""
    staff, staff_csrf = signed_in(browser, "alice@clinic.example")
    patient, patient_csrf = signed_in(browser, "bob@portal.example")
    unsafe = [(m, p) for m, p in routes(staff.app, UNSAFE) if not p.endswith("/logout")]
    assert len(unsafe) > 60  # sign-out is left out: tests/test_auth.py covers its token
    wrong = []
    for method, path in unsafe:
        if path.startswith("/api/") and path not in PRE_SESSION:
            response = staff.request(method, fill(path), json={})
            if response.status_code != 403 or "CSRF" not in response.json()["detail"]:
                wrong.append(f"no token: {method} {path}: {response.status_code}")
        client, csrf = (
            (patient, patient_csrf) if path.startswith("/portal") else (staff, staff_csrf)
        )
        for headers in CROSS_SITE:
            response = client.request(
                method,
                fill(path),
                data={"csrf_token": csrf, "email": "x@example.org", "password": "x", "lang": "en"},
                headers={**headers, "X-CSRF-Token": csrf},
                follow_redirects=False,
            )
            if response.status_code != 403:
                wrong.append(f"cross-site: {method} {path} {headers}: {response.status_code}")
    assert wrong == []
    assert staff.get("/api/v1/auth/me").status_code == 200


def configured(settings: Settings, database: Database, **auth: int) -> TestClient[Litestar]:
    """A browser on an app whose [auth] settings are shortened for the test."""
    config = load_settings(
        data_dir=settings.data_dir, database=settings.database.model_dump(), auth=auth
    )
    client = TestClient(app=create_app(config, database), base_url=f"http://{HOST}")
    client.__enter__()
    return client


def sign_in(client: TestClient[Litestar], door: str, email: str, password: str) -> Any:
    """A sign-in through `door`: the API's JSON or a sign-in form."""
    if door.startswith("/api/"):
        return login(client, email, password)
    form = {"email": email, "password": password}
    return client.post(door, data=form, follow_redirects=False)


DOORS = (("/console/login", "alice@clinic.example"), ("/portal/login", "bob@portal.example"))


def test_form_sign_in_replaces_any_earlier_cookie_and_sign_out_ends_it_on_the_server(
    browser: Browser, session: Session, people: dict[str, UserPublic]
) -> None:
    """HIPAA 164.312(d); ASVS V3.2.1 (new token at sign-in), V3.3.1 (sign-out invalidates
    the session on the server): console and portal forms; the API is in tests/test_auth.py."""
    attacker, _ = signed_in(browser, "charlie@portal.example")
    attackers = attacker.cookies[COOKIE]
    for door, email in DOORS:
        victim = browser()
        victim.cookies.set(COOKIE, attackers, domain=HOST)  # the attacker's own live session
        assert sign_in(victim, door, email, PASSWORD).status_code == 303
        issued = victim.cookies.get(COOKIE, domain=HOST)
        assert issued
        assert issued != attackers
        assert attacker.get("/api/v1/auth/me").status_code == 401  # the planted one is dead
        thief = browser()
        thief.cookies.set(COOKIE, issued, domain=HOST)
        assert thief.get("/api/v1/auth/me").status_code == 200
        home = victim.get("/console" if door.startswith("/console") else "/portal/security")
        found = CSRF_FORM.search(home.text)
        assert found, home.text
        logout = door.replace("login", "logout")
        assert victim.post(logout, data={"csrf_token": found.group(1)},
                           follow_redirects=False).status_code == 303  # fmt: skip
        assert thief.get("/api/v1/auth/me").status_code == 401  # a copied cookie fails too
        revoked = session.execute(
            text("SELECT revoked_at FROM auth_sessions WHERE token_hash = :h"),
            {"h": token_hash(issued)},
        ).scalar_one()
        assert revoked is not None
        attacker, _ = signed_in(browser, "charlie@portal.example")
        attackers = attacker.cookies[COOKIE]


def test_every_sign_in_door_locks_out_known_and_unknown_accounts_alike_with_retry_after(
    settings: Settings, database: Database, session: Session, people: dict[str, UserPublic]
) -> None:
    """ASVS V2.2.1 (anti-automation) and V2.5.2/V3.2 (no account enumeration): failures per
    account and address (shortened to 2), then 429 with Retry-After on the API (RFC 7807), the
    console and the portal, for an account that exists exactly as for one that does not, even
    with the right password; then the per-address limit stops spraying over other accounts."""
    client = configured(settings, database, max_failures_per_account_and_ip=2)
    doors = (("/api/v1/auth/login", "audrey@clinic.example"), *DOORS)
    try:
        for number, (door, email) in enumerate(doors):
            unknown = f"nobody{number}@" + email.split("@")[1]
            answers = {}
            for who in (email, unknown):
                answers[who] = [sign_in(client, door, who, "wrong") for _ in range(2)]
                answers[who].append(sign_in(client, door, who, PASSWORD))
                assert [a.status_code for a in answers[who]] == [401, 401, 429], (door, who)
                assert 0 < int(answers[who][-1].headers["retry-after"]) <= 15 * 60
            if door.startswith("/api/"):
                problem = answers[email][-1]
                assert problem.headers["content-type"].startswith("application/problem+json")
                assert problem.headers["retry-after"] == str(problem.json()["retry_after"])
            known, stranger = (answers[who][0].text.replace(who, "") for who in (email, unknown))
            assert UUIDISH.sub("", known) == UUIDISH.sub("", stranger), door
    finally:
        client.__exit__(None, None, None)
    failures = session.execute(text("SELECT count(*) FROM login_attempts")).scalar_one()
    sprayed = configured(settings, database, max_failures_per_ip=int(failures))
    try:  # dora has never been tried, but this address has failed enough
        assert (
            sign_in(sprayed, "/api/v1/auth/login", "dora@clinic.example", PASSWORD).status_code
            == 429
        )
    finally:
        sprayed.__exit__(None, None, None)


def test_sessions_end_on_the_server_after_the_configured_idle_time_and_absolute_lifetime(
    settings: Settings, database: Database, session: Session, people: dict[str, UserPublic]
) -> None:
    """HIPAA 164.312(a)(2)(iii) automatic logoff; ASVS V3.3.2: idle shortened to 1 minute and
    the absolute lifetime to 1 hour in settings; time moved in the real database."""
    client = configured(settings, database, session_idle_minutes=1, session_absolute_hours=1)
    try:
        assert login(client, "alice@clinic.example").status_code == 200
        hashed = token_hash(client.cookies[COOKIE])
        created, expires = session.execute(
            text("SELECT created_at, expires_at FROM auth_sessions WHERE token_hash = :h"),
            {"h": hashed},
        ).one()
        assert expires - created == timedelta(hours=1)

        def move(column: str, ago: timedelta) -> int:
            session.execute(
                text(f"UPDATE auth_sessions SET {column} = :t WHERE token_hash = :h"),  # noqa: S608
                {"t": datetime.now(UTC) - ago, "h": hashed},
            )
            session.commit()
            return int(client.get("/api/v1/auth/me").status_code)

        assert move("last_seen_at", timedelta(seconds=50)) == 200  # in use: still alive
        assert move("last_seen_at", timedelta(seconds=61)) == 401  # idle for over a minute
        revoked = session.execute(
            text("SELECT revoked_at FROM auth_sessions WHERE token_hash = :h"), {"h": hashed}
        ).scalar_one()
        assert revoked is not None  # ended on the server, not just refused once

        assert login(client, "alice@clinic.example").status_code == 200
        hashed = token_hash(client.cookies[COOKIE])
        assert move("expires_at", timedelta(seconds=1)) == 401  # busy, but past its lifetime
    finally:
        client.__exit__(None, None, None)
