"""The administrator's journey and a new patient's first visit, in real Chromium against
`appliance web` as its own process: adam signs in with his authenticator, changes the crisis
text and time zone, adds a therapist, creates and revokes an API key, adds a patient and makes
her an invitation code; then, in a fresh browser, the patient joins with the code, lands in
the portal and turns on her own second factor. axe-core finds nothing serious on any page and
the browser logs no error (a CSP violation would be one). Screenshots: admin-*.png and
patient-join*.png in test-artifacts/screenshots/."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session, select

from appliance.audit.service import Actor
from appliance.auth import service, totp
from appliance.clinic.models import Clinic, User
from appliance.clinic.schemas import UserPublic
from appliance.settings import Settings, read_secret_file
from tests.axe_check import violations
from tests.conftest import PASSWORD, REPO, serve
from tests.test_browser import chromium  # noqa: F401  (the module-scoped browser fixture)

pytestmark = pytest.mark.slow

SCREENSHOTS = REPO / "test-artifacts" / "screenshots"
CRISIS_TEXT = "Call the Harbour crisis line now: 555-0100. Your therapist has been told."
PATIENT_PASSWORD = "erin's own long passphrase"


@pytest.fixture
def console(settings: Settings, tmp_path: Path) -> Iterator[str]:
    with serve(settings, tmp_path / "web.log") as base:
        yield base


def enrolled_secret(session: Session, settings: Settings, admin: UserPublic) -> bytes:
    """adam's authenticator, set up as he would on /console/totp (confirmed with the previous
    step's code, so the current one is still unused for his sign-in)."""
    server_secret = read_secret_file(settings.secret_key_path)
    actor = Actor(role="admin", user_id=admin.id)
    shown, _ = service.begin_totp(session, server_secret, actor, issuer="test")
    secret = base64.b32decode(shown)
    code = totp.code_for(secret, time.time() - totp.STEP)
    service.confirm_totp(session, server_secret, actor, code, None)
    return secret


def checked(page: Any, problems: list[str], shot: str | None = None) -> None:
    assert violations(page) == [], page.url
    assert problems == [], page.url
    if shot:
        page.screenshot(path=str(SCREENSHOTS / shot), full_page=True)


def watch(page: Any) -> list[str]:
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(str(error)))
    return problems


def test_an_admin_sets_up_the_clinic_and_a_new_patient_joins_the_portal_with_her_code(
    chromium: Any,  # noqa: F811
    console: str,
    session: Session,
    settings: Settings,
    people: dict[str, UserPublic],
) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    secret = enrolled_secret(session, settings, people["adam"])
    context = chromium.new_context(base_url=console)
    page = context.new_page()
    problems = watch(page)

    page.goto("/console/login")
    page.fill("#email", "adam@clinic.example")
    page.fill("#password", PASSWORD)
    page.fill("#totp_code", totp.code_for(secret))
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/console/patients")

    page.get_by_role("link", name="Admin", exact=True).click()
    page.wait_for_url("**/console/admin")
    checked(page, problems, "admin-index.png")

    page.get_by_role("link", name="Clinic settings").click()
    page.fill("#crisis_text", CRISIS_TEXT)
    page.select_option("#timezone", "Asia/Jerusalem")
    page.get_by_role("button", name="Save").click()
    page.wait_for_url("**/console/admin/clinic?done=saved")
    assert page.get_by_role("status").inner_text() == "The clinic settings were saved."
    assert page.locator("#timezone").input_value() == "Asia/Jerusalem"
    checked(page, problems, "admin-clinic.png")
    session.expire_all()
    stored = session.exec(select(Clinic)).one().preferences
    assert stored == {"timezone": "Asia/Jerusalem", "crisis_text": CRISIS_TEXT}

    page.goto("/console/admin/users")
    page.fill("#new-name", "Dr. Tomas Reyes")
    page.fill("#new-email", "tomas@clinic.example")
    page.select_option("#new-role", "therapist")
    page.fill("#new-password", "tomas's initial passphrase")
    page.fill("#new-password-again", "tomas's initial passphrase")
    page.get_by_role("button", name="Add", exact=True).click()
    page.wait_for_url("**/console/admin/users?done=added")
    assert page.get_by_role("row", name="Dr. Tomas Reyes").is_visible()
    checked(page, problems, "admin-users.png")

    page.goto("/console/admin/api-keys")
    page.fill("#key-name", "Scheduling sync")
    page.get_by_role("button", name="Create").click()
    key = page.locator("#issued-key").inner_text()
    assert key.startswith("apl_")
    checked(page, problems, "admin-api-key-shown-once.png")
    page.get_by_role("button", name="Revoke the key Scheduling sync").click()
    page.wait_for_url("**/console/admin/api-keys?done=revoked")
    assert key not in page.content()
    checked(page, problems, "admin-api-key-revoked.png")

    page.goto("/console/admin/patients")
    page.fill("#patient-name", "Erin Okafor")
    page.select_option("#patient-therapist", label="Dr. Tomas Reyes")
    page.get_by_role("button", name="Add the patient").click()
    page.wait_for_url("**/console/admin/patients?done=added")
    checked(page, problems, "admin-patients.png")

    page.get_by_role("link", name="Patients", exact=True).click()
    page.get_by_role("link", name="Portal access of Erin Okafor").click()
    checked(page, problems)
    page.get_by_role("button", name="Create an invitation code").click()
    code = page.locator("#invitation-code").inner_text()
    assert len(code) == 14
    assert code not in page.url
    checked(page, problems, "admin-invitation-code.png")
    context.close()

    # The patient, on her phone, in a browser that has never seen the console.
    phone = chromium.new_context(base_url=console, viewport={"width": 390, "height": 844})
    page = phone.new_page()
    problems = watch(page)
    page.goto("/portal/login")
    page.get_by_role("link", name="I have an invitation code from my clinic").click()
    page.wait_for_url("**/portal/join")
    checked(page, problems, "patient-join.png")
    page.fill("#code", code.lower())
    page.fill("#email", "erin@portal.example")
    page.fill("#password", PATIENT_PASSWORD)
    page.fill("#password_again", PATIENT_PASSWORD)
    page.get_by_role("button", name="Create my account").click()
    page.wait_for_url("**/portal/security?welcome=1")
    assert "Your account is ready" in page.get_by_role("status").inner_text()
    checked(page, problems, "patient-join-welcome.png")

    page.get_by_role("link", name="Continue to the portal").click()
    page.wait_for_url("**/portal")
    assert "Harbour Street" not in page.content()  # the name was left as the file says
    checked(page, problems, "patient-join-portal.png")

    page.goto("/portal/security")
    page.get_by_role("button", name="Set up an authenticator app").click()
    shown = page.locator("#totp-secret").inner_text().replace(" ", "")  # shown in groups of 4
    page.fill("#code", totp.code_for(base64.b32decode(shown)))
    page.get_by_role("button", name="Turn on").click()
    page.wait_for_url("**/portal/security?done=on")
    assert "Your authenticator is on" in page.get_by_role("status").inner_text()
    checked(page, problems, "patient-join-totp-on.png")
    phone.close()

    session.expire_all()
    erin = session.exec(select(User).where(User.email == "erin@portal.example")).one()
    assert erin.totp_enabled
