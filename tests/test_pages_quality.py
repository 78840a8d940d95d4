"""Every page every role can reach, held to the same bar, in a real Chromium against
`appliance web` as its own process: adam (admin, through the real second-factor pages),
alice (therapist), audrey (auditor) and bob (patient) sign in through the forms, then the
test follows their links breadth-first and checks each kind of page once over all roles (the
same page for another id or filter value, or reached again by the next role, is skipped; see
tests/page_crawl.py):
axe (WCAG 2.1 AA, color-contrast included), no console errors or CSP refusals, one h1, a
language, CSRF on POST forms, no PHI in the address, security headers; and the keyboard on
the sign-in page, a console list and the portal's chat.

All problems of all roles are collected and asserted once, so one run is the whole to-do
list. A screenshot of each role's landing page is kept in test-artifacts/screenshots/.

The second test sends every state-changing page route a signed-in request without the CSRF
token and expects 403 with nothing changed (the sign-in forms are the documented exception:
see tests/test_templates_lint.py)."""

from __future__ import annotations

import base64
import re
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
import pytest
from litestar import Litestar
from litestar.routes import HTTPRoute
from psycopg import sql
from sqlmodel import Session, col, func, select

from appliance.audit.models import AuditEvent
from appliance.auth import totp
from appliance.auth.guards import Principal
from appliance.clinic.models import Role
from appliance.clinic.schemas import PatientPublic, UserPublic
from appliance.crypto.keystore import KeyStore
from appliance.messages import service as inbox_messages
from appliance.messages.schemas import MessageCreate
from appliance.recordings.models import TherapySession
from appliance.settings import Settings
from appliance.web.security import SECURITY_HEADERS
from tests.axe_check import violations
from tests.conftest import PASSWORD, REPO, Browser, serve, signed_in
from tests.page_crawl import (
    Crawl,
    Visit,
    header_problems,
    keyboard_problems,
    page_kind,
    page_problems,
    url_problems,
)
from tests.test_browser import chromium  # noqa: F401  (the module-scoped browser fixture)
from tests.test_crisis_alerts import raise_alert  # noqa: F401  (a crisis question: an alert)
from tests.test_report_review import (  # noqa: F401  (bob's processed session; a cheap draft)
    clinic,
    drafted,
    recorded,
)

SCREENSHOTS = REPO / "test-artifacts" / "screenshots"
CONSOLE_VIEW = {"width": 1280, "height": 900}
PHONE_VIEW = {"width": 390, "height": 844}
# Pages whose keyboard use is checked (Tab order and focus indicator): one of each kind.
KEYBOARD_PAGES = {"/console/login", "/console/patients", "/portal/login", "/portal"}
PHI = [
    "Alice Moreno",
    "Moreno",
    "Bob Brennan",
    "Brennan",
    "Charlie",
    "Castellanos",
    "alice@clinic.example",
    "bob@home.example",
    "bob@portal.example",
    "charlie@home.example",
    "charlie@portal.example",
    "adam@clinic.example",
    "audrey@clinic.example",
]


SignIn = Callable[[Any, Counter[str]], list[str]]


@pytest.fixture
def messages(
    session: Session, store: KeyStore, people: dict[str, UserPublic], bob: PatientPublic
) -> None:
    """One message of alice's sent to bob (his inbox, the message page) and one waiting for
    approval (the console's approve and reject forms)."""
    alice = Principal(people["alice"].id, Role.therapist, "cli", "local", "pytest")
    for subject, send in (("Before next week", True), ("Waiting for approval", False)):
        made = inbox_messages.create(
            session, store, alice, MessageCreate(patient_id=bob.id, subject=subject, body="Hi")
        )
        inbox_messages.submit(session, store, alice, made.id)
        if send:
            inbox_messages.approve(session, store, alice, made.id, made.revision)
    session.commit()


@pytest.fixture
def base_url(
    settings: Settings,
    recorded: TherapySession,  # noqa: F811
    messages: None,
    raise_alert: Any,  # noqa: F811
    bob: PatientPublic,
    tmp_path: Path,
) -> Iterator[str]:
    """The clinic every page is seen with: bob's processed session (transcript, drafted
    report), messages, and a crisis alert from a question in his chat (so lists have rows and
    their forms)."""
    raise_alert(bob, "bob")
    with serve(settings, tmp_path / "web.log") as base:
        yield base


def keyboard_on_key_pages(page: Any, url: str) -> list[str]:
    return keyboard_problems(page) if urlsplit(url).path in KEYBOARD_PAGES else []


def check_here(page: Any, response: Any, visit: Visit, kinds: Counter[str]) -> list[str]:
    """The checks a crawled page gets, for the pages before the crawl (sign-in, enrolment);
    once per kind of page, like the crawl (the console's sign-in page serves three roles)."""
    where, found = urlsplit(page.url).path, []
    if not kinds[page_kind(page.url)]:
        kinds[page_kind(page.url)] += 1
        found = header_problems(response) + page_problems(page)
        found += keyboard_on_key_pages(page, page.url)
    return [f"{where}: {line}" for line in found + visit.take()]


def sign_in_form(page: Any, path: str, email: str, kinds: Counter[str]) -> list[str]:
    visit = Visit()
    visit.attach(page)
    found = check_here(page, page.goto(path), visit, kinds)
    page.get_by_label("E-mail address").fill(email)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.locator(f"form[action='{path}'] button[type=submit]").click()
    page.wait_for_load_state()
    return found + visit.take()


def sign_in_staff(email: str) -> SignIn:
    def sign_in(page: Any, kinds: Counter[str]) -> list[str]:
        found = sign_in_form(page, "/console/login", email, kinds)
        page.wait_for_url("**/console/**")
        return found

    return sign_in


def sign_in_admin(page: Any, kinds: Counter[str]) -> list[str]:
    """adam enrols his second factor through the pages, as a new administrator does."""
    found = sign_in_form(page, "/console/login", "adam@clinic.example", kinds)
    page.wait_for_url("**/console/totp")
    visit = Visit()
    visit.attach(page)
    found += check_here(page, page.goto("/console/totp"), visit, kinds)
    with page.expect_navigation() as shown:
        page.locator("form[action='/console/totp'] button").click()
    found += check_here(page, shown.value, visit, Counter())  # the key shown: another page
    secret = page.locator("code.secret").inner_text().replace(" ", "")
    page.locator("#code").fill(totp.code_for(base64.b32decode(secret)))
    page.locator("form[action='/console/totp/confirm'] button").click()
    page.wait_for_url("**/console/patients?done=totp")
    return found


def sign_in_patient(page: Any, kinds: Counter[str]) -> list[str]:
    visit = Visit()
    visit.attach(page)
    found = check_here(page, page.goto("/portal/join"), visit, kinds)  # before an account
    found += sign_in_form(page, "/portal/login", "bob@portal.example", kinds)
    page.wait_for_url("**/portal")
    return found


def in_hebrew(page: Any, landing: str) -> list[str]:
    """The landing page again after the header's language switch: right-to-left, the same
    bar (contrast, focus, Tab order run the other way round on screen)."""
    page.goto(landing)
    visit = Visit()
    visit.attach(page)
    with page.expect_navigation() as switched:
        page.locator("form[action='/lang'] button[value='he']").click()
    found = check_here(page, switched.value, visit, Counter())
    if page.locator("html").get_attribute("lang") != "he":
        found.append(f"{page.url}: the switch to Hebrew did not change <html lang>")
    return [f"(he) {line}" for line in found]


# The therapist first: most of the console's pages (and their forms) are hers; a page kind
# the next role reaches again is not checked twice.
ROLES: dict[str, tuple[SignIn, dict[str, int], tuple[str, ...]]] = {
    "therapist": (sign_in_staff("alice@clinic.example"), CONSOLE_VIEW, ()),
    "admin": (sign_in_admin, CONSOLE_VIEW, ()),
    # The audit chain's check is the answer to a GET form, not a link.
    "auditor": (sign_in_staff("audrey@clinic.example"), CONSOLE_VIEW, ("/console/audit/verify",)),
    "patient": (sign_in_patient, PHONE_VIEW, ()),
}


@pytest.mark.slow
def test_every_page_each_role_reaches_meets_the_accessibility_and_security_bar(
    chromium: Any,  # noqa: F811
    base_url: str,
    people: dict[str, UserPublic],
    bob: PatientPublic,
    recorded: TherapySession,  # noqa: F811
    session: Session,
) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    failures: dict[str, list[str]] = {}
    report: list[str] = []
    kinds: Counter[str] = Counter()  # kinds of page checked, over all roles
    for role, (sign_in, viewport, unlinked) in ROLES.items():
        started = time.monotonic()
        context = chromium.new_context(base_url=base_url, viewport=viewport)
        page = context.new_page()
        found = sign_in(page, kinds)
        landing = page.url
        page.screenshot(path=str(SCREENSHOTS / f"quality-{role}.png"), full_page=True)
        if not report:  # once: contrast is among the rules axe runs, not merely unreported
            violations(page)  # loads axe into the page
            rules = page.evaluate("() => axe.getRules(['wcag2aa']).map(rule => rule.ruleId)")
            assert "color-contrast" in rules
        crawl = Crawl(page, base_url, PHI, more_checks=keyboard_on_key_pages, kinds=kinds)
        crawl.run(landing, *unlinked)
        found += in_hebrew(page, landing)
        failures[role] = found + crawl.problems
        report.append(
            f"{role}: {len(crawl.visited)} pages in {time.monotonic() - started:.1f}s: "
            + " ".join(f"{path} {seconds}s" for path, seconds in crawl.seconds.items())
        )
        context.close()
    print("\n".join(report))
    problems = [f"[{role}] {line}" for role, lines in failures.items() for line in lines]
    assert not problems, f"{len(problems)} problems:\n" + "\n".join(problems)


# --- the crawl's own checks, without a browser ---------------------------------------------------


class Answer:
    """Stands in for Playwright's response: only its headers are read."""

    def __init__(self, headers: dict[str, str]) -> None:
        self.headers = headers

    def all_headers(self) -> dict[str, str]:
        return self.headers


def test_the_address_check_finds_names_e_mail_addresses_and_unknown_parameters() -> None:
    assert url_problems("http://h/console/jobs?state=dead&page=2", PHI) == []
    assert url_problems("http://h/console/sessions?q=Bob+Brennan", PHI) == [
        "query parameter 'q' is not a known filter",
        "PHI 'Bob Brennan' in the address",
        "PHI 'Brennan' in the address",
    ]
    assert url_problems("http://h/portal/x?next=bob%40portal.example", PHI) == [
        "PHI 'bob@portal.example' in the address"
    ]


def test_the_header_check_wants_every_security_header_the_pages_send() -> None:
    assert header_problems(Answer(dict(SECURITY_HEADERS))) == []
    missing = {k: v for k, v in SECURITY_HEADERS.items() if k != "referrer-policy"}
    assert header_problems(Answer(missing)) == ["header referrer-policy missing or without ''"]
    cached = {**SECURITY_HEADERS, "cache-control": "private"}
    assert header_problems(Answer(cached)) == ["header cache-control missing or without 'no-store'"]


def test_a_page_kind_ignores_ids_and_filter_values() -> None:
    one = page_kind(f"http://h/console/patients/{uuid.uuid4()}/consent?state=a")
    assert one == page_kind(f"http://h/console/patients/{uuid.uuid4()}/consent?state=b")
    assert one == page_kind(f"http://h/console/patients/{uuid.uuid4()}/consent?page=2")
    assert one == "/console/patients/{id}/consent?…"


# --- CSRF on every state-changing page route ---------------------------------------------------

# Posted before a session (and its token) exists; defended by `refuse_cross_site` instead.
PRE_SIGN_IN_ROUTES = {"/console/login", "/portal/login", "/portal/join"}
UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}
# Named like the upload form's file field: the streamed upload checks the token when the file
# part begins (appliance/recordings/form_upload.py); a post with no file at all is a 422 there.
ATTACHMENT = {"recording": ("note.txt", b"not a recording", "text/plain")}
PATH_PARAMETER = re.compile(r"\{(\w+)(?::\w+)?\}")
# Tables a refused request may still touch: the session's last use, throttles, the audit log
# (checked on its own below), workers' heartbeats.
VOLATILE = {
    "auth_sessions",
    "rate_limit_counters",
    "login_attempts",
    "audit_events",
    "audit_checkpoints",
    "job_workers",
    "alembic_version",
}


def unsafe_page_routes(app: Litestar) -> list[tuple[str, str]]:
    """(method, path template) of every console and portal route that changes something."""
    found = set()
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        if not route.path.startswith(("/console", "/portal")):
            continue
        for handler in route.route_handlers:
            for method in sorted(set(handler.http_methods) & UNSAFE):
                found.add((method, route.path))
    return sorted(found)


def database_state(admin_url: str) -> dict[str, tuple[int, str]]:
    """Each table's row count and a digest of its rows (owner's connection: sees all)."""
    url = admin_url.replace("postgresql+psycopg://", "postgresql://")
    state = {}
    with psycopg.connect(url) as conn:
        tables = conn.execute(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = 'public' AND table_type = 'BASE TABLE'"
        ).fetchall()
        for (table,) in tables:
            if table in VOLATILE:
                continue
            row = conn.execute(
                sql.SQL(
                    "SELECT count(*), md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), ''))"
                    " FROM {} t"
                ).format(sql.Identifier(table))
            ).fetchone()
            assert row is not None
            state[table] = (row[0], row[1])
    return state


def audit_since(session: Session, after: int) -> list[str]:
    session.expire_all()
    rows = session.exec(select(AuditEvent).where(col(AuditEvent.id) > after)).all()
    return [f"{row.action}:{row.outcome}" for row in rows]


def test_every_state_changing_page_route_refuses_a_request_without_the_csrf_token(
    app: Litestar,
    browser: Browser,
    people: dict[str, UserPublic],
    bob: PatientPublic,
    drafted: TherapySession,  # noqa: F811
    session: Session,
    admin_url: str,
) -> None:
    routes = unsafe_page_routes(app)
    assert len(routes) > 20  # the console and the portal, not an empty list by mistake
    real_ids = {  # the rest get random ids: the token is checked before anything is looked up
        "patient_id": str(bob.id),
        "session_id": str(drafted.id),
        "therapist_id": str(people["alice"].id),
        "user_id": str(people["dora"].id),
        "purpose": "patient_chat",
    }
    staff, _ = signed_in(browser, "alice@clinic.example")
    patient, _ = signed_in(browser, "bob@portal.example")
    before = database_state(admin_url)
    last_audit = session.exec(select(func.max(AuditEvent.id))).one() or 0
    wrong = []
    for method, template in routes:
        if template.rstrip("/") in PRE_SIGN_IN_ROUTES:
            continue
        path = PATH_PARAMETER.sub(lambda m: real_ids.get(m.group(1), str(uuid.uuid4())), template)
        client = patient if path.startswith("/portal") else staff
        # A form as a browser sends it (multipart, as the upload forms are), minus the token.
        response = client.request(
            method, path, data={"note": "x"}, files=ATTACHMENT, follow_redirects=False
        )
        if response.status_code != 403:
            wrong.append(f"{method} {template}: {response.status_code}")
    # The exceptions refuse what a cross-site form would send (login CSRF), token or not.
    for path in sorted(PRE_SIGN_IN_ROUTES | {"/lang"}):
        response = staff.post(
            path,
            data={"email": "x@example.org", "password": "x", "lang": "en"},
            headers={"Sec-Fetch-Site": "cross-site"},
            follow_redirects=False,
        )
        if response.status_code != 403:
            wrong.append(f"cross-site POST {path}: {response.status_code}")
    assert not wrong, "\n".join(wrong)
    assert database_state(admin_url) == before
    assert [row for row in audit_since(session, last_audit) if not row.endswith(":denied")] == []
