"""Portal invitations end to end over HTTP with the real database: a staff member who sees the
patient makes a one-time code (shown once, only its hash kept), the patient redeems it at
/portal/join for their own account, and can then turn a second factor on. Wrong, expired, used
and revoked codes get the same answer, attempts are throttled, and nobody outside the
patient's care can invite them."""

from __future__ import annotations

import base64
import hashlib
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from litestar.testing import TestClient
from sqlmodel import Session, col, select

from appliance.audit.models import AuditEvent
from appliance.auth import invitations, totp
from appliance.auth.models import PortalInvitation
from appliance.clinic import service
from appliance.clinic.models import Patient, User
from appliance.clinic.schemas import PatientCreate, PatientPublic, UserPublic
from appliance.crypto.keystore import KeyStore
from tests.conftest import CLINIC_IT, Browser, signed_in, signed_in_admin

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
CODE = re.compile(r'id="invitation-code">([A-Z0-9-]+)<')
SECRET = re.compile(r'id="totp-secret" dir="ltr">([A-Z2-7= ]+)<')
NEW_PASSWORD = "erin's own long passphrase"


@pytest.fixture
def erin(session: Session, store: KeyStore, people: dict[str, UserPublic]) -> PatientPublic:
    """alice's patient without a portal account yet."""
    made = service.add_patient(
        session,
        store,
        CLINIC_IT,
        PatientCreate(name="Erin Okafor", therapist_email="alice@clinic.example"),
    )
    session.commit()
    return made


def csrf_of(client: TestClient[Any], path: str) -> str:
    page = client.get(path)
    assert page.status_code == 200, page.text
    found = CSRF.search(page.text)
    assert found
    return found.group(1)


def invite(client: TestClient[Any], patient: PatientPublic) -> str:
    path = f"/console/patients/{patient.id}/portal"
    made = client.post(path, data={"csrf_token": csrf_of(client, path)})
    assert made.status_code == 201, made.text
    found = CODE.search(made.text)
    assert found
    return found.group(1)


def join(
    client: TestClient[Any], code: str, email: str = "erin@portal.example", **extra: str
) -> Any:
    form = {
        "code": code,
        "email": email,
        "password": NEW_PASSWORD,
        "password_again": NEW_PASSWORD,
        **extra,
    }
    return client.post("/portal/join", data=form, follow_redirects=False)


def invitation_rows(session: Session) -> list[PortalInvitation]:
    session.expire_all()
    return list(session.exec(select(PortalInvitation)))


def audit_actions(session: Session, prefix: str) -> list[tuple[str, str]]:
    session.expire_all()
    rows = session.exec(
        select(AuditEvent)
        .where(col(AuditEvent.action).startswith(prefix))
        .order_by(col(AuditEvent.id))
    )
    return [(row.action, row.outcome) for row in rows]


def test_a_therapist_invites_their_patient_and_the_code_is_shown_once_and_kept_as_a_hash(
    browser: Browser, session: Session, erin: PatientPublic
) -> None:
    alice, _ = signed_in(browser, "alice@clinic.example")
    code = invite(alice, erin)
    assert re.fullmatch(r"[A-HJ-NP-Z2-9]{4}-[A-HJ-NP-Z2-9]{4}-[A-HJ-NP-Z2-9]{4}", code)
    [row] = invitation_rows(session)
    assert row.code_sha256 == hashlib.sha256(code.replace("-", "").encode()).hexdigest()
    assert timedelta(days=6, hours=23) < row.expires_at - datetime.now(UTC) <= timedelta(days=7)
    listing = alice.get(f"/console/patients/{erin.id}/portal").text
    assert code not in listing
    assert "Pending" in listing
    assert audit_actions(session, "portal.invitation.create") == [
        ("portal.invitation.create", "success")
    ]


def test_the_code_page_says_where_to_redeem_it_and_in_which_time_zone_it_ends(
    browser: Browser, erin: PatientPublic
) -> None:
    alice, _ = signed_in(browser, "alice@clinic.example")
    path = f"/console/patients/{erin.id}/portal"
    made = alice.post(path, data={"csrf_token": csrf_of(alice, path)})
    assert made.status_code == 201, made.text
    assert "://testserver.local/portal/join</code>" in made.text
    assert "(UTC)" in made.text


def test_codes_are_random_and_carry_sixty_bits() -> None:
    codes = {invitations.new_code() for _ in range(200)}
    assert len(codes) == 200
    assert len(invitations.ALPHABET) ** invitations.LENGTH >= 2**60


def test_a_therapist_without_the_patient_cannot_invite_them_and_the_attempt_is_audited(
    browser: Browser, session: Session, erin: PatientPublic
) -> None:
    dora, _ = signed_in(browser, "dora@clinic.example")
    token = csrf_of(dora, "/console/patients")
    path = f"/console/patients/{erin.id}/portal"
    assert dora.get(path).status_code == 404
    assert dora.post(path, data={"csrf_token": token}).status_code == 404
    assert invitation_rows(session) == []
    assert ("portal.invitation.create", "denied") in audit_actions(session, "portal.invitation")


def test_an_auditor_or_a_patient_cannot_open_invitations(
    browser: Browser, erin: PatientPublic
) -> None:
    for email in ("audrey@clinic.example", "bob@portal.example"):
        client, _ = signed_in(browser, email)
        assert client.get(f"/console/patients/{erin.id}/portal").status_code == 403


def test_a_patient_with_a_portal_account_gets_no_new_invitation(
    browser: Browser, session: Session, people: dict[str, UserPublic], bob: PatientPublic
) -> None:
    admin, _ = signed_in_admin(browser)
    path = f"/console/patients/{bob.id}/portal"
    assert "has a portal account" in admin.get(path).text
    refused = admin.post(path, data={"csrf_token": csrf_of(admin, path)})
    assert refused.status_code == 409
    assert invitation_rows(session) == []


def test_the_patient_joins_with_the_code_is_signed_in_and_the_code_is_used_up(
    browser: Browser, session: Session, erin: PatientPublic
) -> None:
    alice, _ = signed_in(browser, "alice@clinic.example")
    code = invite(alice, erin)
    patient = browser()
    assert patient.get("/portal/join").status_code == 200
    joined = join(patient, code.lower().replace("-", " "), email="Erin@Portal.example")
    assert joined.status_code == 303, joined.text
    assert joined.headers["location"] == "/portal/security?welcome=1"
    welcome = patient.get("/portal/security?welcome=1")
    assert welcome.status_code == 200
    assert "Your account is ready" in welcome.text
    session.expire_all()
    user = session.exec(select(User).where(User.email == "erin@portal.example")).one()
    assert user.role == "patient"
    assert session.get(Patient, erin.id).user_id == user.id  # type: ignore[union-attr]
    [row] = invitation_rows(session)
    assert row.used_at is not None
    assert ("portal.join", "success") in audit_actions(session, "portal.join")
    assert "Used" in alice.get(f"/console/patients/{erin.id}/portal").text
    again = join(browser(), code, email="someone@else.example")
    assert again.status_code == 400
    assert "not valid" in again.text


@pytest.mark.parametrize("spoil", ["wrong", "expired", "revoked"])
def test_a_wrong_expired_or_revoked_code_gets_the_same_answer_and_makes_no_account(
    browser: Browser, session: Session, erin: PatientPublic, spoil: str
) -> None:
    alice, _ = signed_in(browser, "alice@clinic.example")
    code = invite(alice, erin)
    [row] = invitation_rows(session)
    if spoil == "wrong":
        code = "ABCD-EFGH-JKLM" if code != "ABCD-EFGH-JKLM" else "MLKJ-HGFE-DCBA"
    elif spoil == "expired":
        row.expires_at = datetime.now(UTC) - timedelta(minutes=1)
        session.add(row)
        session.commit()
    else:
        path = f"/console/patients/{erin.id}/portal/{row.id}/revoke"
        token = csrf_of(alice, f"/console/patients/{erin.id}/portal")
        assert alice.post(path, data={"csrf_token": token}).status_code == 200
        assert "Revoked" in alice.get(f"/console/patients/{erin.id}/portal").text
    refused = join(browser(), code)
    assert refused.status_code == 400
    assert invitations.REFUSED in refused.text
    session.expire_all()
    assert session.exec(select(User).where(User.email == "erin@portal.example")).first() is None
    assert ("portal.join", "failure") in audit_actions(session, "portal.join")


@pytest.mark.parametrize(
    ("extra", "reason"),
    [
        ({"password_again": "something else entirely"}, "passwords differ"),
        ({"password": "short", "password_again": "short"}, "password"),
        ({"email": "not-an-address"}, "email"),
    ],
)
def test_a_refused_form_keeps_the_code_pending_and_writes_nothing(
    browser: Browser, session: Session, erin: PatientPublic, extra: dict[str, str], reason: str
) -> None:
    alice, _ = signed_in(browser, "alice@clinic.example")
    code = invite(alice, erin)
    page = join(browser(), code, **extra)
    assert page.status_code == 422
    assert reason in page.text
    assert code not in page.text  # never echoed
    [row] = invitation_rows(session)
    assert row.used_at is None
    assert session.get(Patient, erin.id).user_id is None  # type: ignore[union-attr]


def test_an_address_that_has_an_account_is_refused_and_the_code_stays_usable(
    browser: Browser, session: Session, erin: PatientPublic
) -> None:
    alice, _ = signed_in(browser, "alice@clinic.example")
    code = invite(alice, erin)
    taken = join(browser(), code, email="bob@portal.example")
    assert taken.status_code == 409
    assert join(browser(), code).status_code == 303


def test_guessing_codes_is_throttled_even_a_right_one_after_too_many_wrong(
    browser: Browser, session: Session, erin: PatientPublic
) -> None:
    alice, _ = signed_in(browser, "alice@clinic.example")
    code = invite(alice, erin)
    guesser = browser()
    for n in range(5):  # auth.max_failures_per_account_and_ip
        assert join(guesser, f"AAAA-AAAA-AAA{n + 2}").status_code == 400
    blocked = join(guesser, code)
    assert blocked.status_code == 429
    assert int(blocked.headers["retry-after"]) > 0
    assert invitation_rows(session)[0].used_at is None
    assert ("portal.join", "denied") in audit_actions(session, "portal.join")


def test_the_joined_patient_turns_on_a_second_factor_which_sign_in_then_asks_for(
    browser: Browser, session: Session, erin: PatientPublic
) -> None:
    alice, _ = signed_in(browser, "alice@clinic.example")
    patient = browser()
    join(patient, invite(alice, erin))
    token = csrf_of(patient, "/portal/security")
    shown = patient.post("/portal/security/totp", data={"csrf_token": token})
    found = SECRET.search(shown.text)
    assert found
    secret = base64.b32decode(found.group(1).replace(" ", ""))
    wrong = patient.post("/portal/security/totp/confirm", data={"csrf_token": token, "code": "1"})
    assert wrong.status_code == 422
    now = datetime.now(UTC).timestamp()
    confirm = patient.post(
        "/portal/security/totp/confirm",
        data={"csrf_token": token, "code": totp.code_for(secret, now - 30)},
    )
    assert confirm.status_code == 200
    assert "Your authenticator is on" in confirm.text
    fresh = browser()
    form = {"email": "erin@portal.example", "password": NEW_PASSWORD}
    assert fresh.post("/portal/login", data=form, follow_redirects=False).status_code == 401
    with_code = {**form, "totp_code": totp.code_for(secret, now)}
    assert fresh.post("/portal/login", data=with_code, follow_redirects=False).status_code == 303
    # And off again, with a current code.
    off = fresh.post(
        "/portal/security/totp/off",
        data={
            "csrf_token": csrf_of(fresh, "/portal/security"),
            "code": totp.code_for(secret, now + 30),
        },
    )
    assert off.status_code == 200
    assert "Your authenticator is off" in off.text
    assert ("auth.totp.disable", "success") in audit_actions(session, "auth.totp")
