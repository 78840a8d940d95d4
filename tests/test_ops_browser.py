"""The operations side of the console in real Chromium against `appliance web` as its own
process: audrey the auditor filters, verifies and exports the audit log; adam the admin
(second factor enrolled on the way) records bob's paper consent with the scanned form,
watches a job's progress bar move on the jobs dashboard, checks the models and rotates the
key-encryption key. axe finds nothing serious on any page, the console stays free of errors
(a blocked inline script would show there), and each page leaves a screenshot."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update
from sqlmodel import Session, col

from appliance.audit.chain import verify_bundle
from appliance.auth import totp
from appliance.clinic.schemas import PatientPublic, UserPublic
from appliance.crypto.keystore import KeyStore
from appliance.jobs.models import Job
from appliance.settings import Settings
from tests.audio import make_audio
from tests.axe_check import violations
from tests.conftest import PASSWORD, REPO, add_recording, consented_session, serve
from tests.test_browser import chromium  # noqa: F401  (the module-scoped browser fixture)

pytestmark = pytest.mark.slow

SCREENSHOTS = REPO / "test-artifacts" / "screenshots"


@pytest.fixture
def web(settings: Settings, people: dict[str, UserPublic], tmp_path: Path) -> Iterator[str]:
    with serve(settings, tmp_path / "web.log") as base:
        yield base


def watched(chromium: Any, base: str) -> tuple[Any, Any, list[str]]:  # noqa: F811
    context = chromium.new_context(base_url=base, viewport={"width": 1440, "height": 900})
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(str(error)))
    return context, page, problems


def sign_in(page: Any, email: str) -> None:
    page.goto("/console/login")
    page.get_by_label("E-mail address").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()


def checked(page: Any, name: str) -> None:
    """axe on the page as it is, then its screenshot."""
    assert violations(page) == [], page.url
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def test_audrey_the_auditor_filters_verifies_and_exports_the_audit_log_in_chromium(
    chromium: Any,  # noqa: F811
    web: str,
    tmp_path: Path,
) -> None:
    context, page, problems = watched(chromium, web)
    sign_in(page, "audrey@clinic.example")
    page.wait_for_url("**/console/audit")
    nav = page.get_by_role("navigation", name="Main")
    assert nav.get_by_role("link").all_inner_texts() == ["Audit"]
    checked(page, "auditor-audit")

    page.get_by_label("Action starts with").fill("auth.")
    page.get_by_label("Outcome").select_option("success")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url("**/console/audit?action=auth.*")
    actions = page.locator("table.audit tbody td:nth-child(3)").all_inner_texts()
    assert actions
    assert all(a.startswith("auth.") for a in actions)
    assert page.get_by_label("Action starts with").input_value() == "auth."
    checked(page, "auditor-audit-filtered")

    page.get_by_role("button", name="Verify now").click()
    page.wait_for_url("**/console/audit/verify*")
    assert page.get_by_role("status").inner_text().startswith("Verified: the chain of")
    checked(page, "auditor-audit-verified")

    page.get_by_role("link", name="Back to the audit log").click()
    with page.expect_download() as downloading:
        page.get_by_role("button", name="Export bundle").click()
    saved = tmp_path / "bundle.json"
    downloading.value.save_as(saved)
    bundle = json.loads(saved.read_bytes())
    verdict = verify_bundle(bundle)
    assert verdict.ok
    assert verdict.checkpoints >= 1
    assert bundle["entries"][-1]["action"] == "audit.export"
    assert {e["action"] for e in bundle["entries"]} >= {"audit.view", "audit.verify"}
    assert problems == []
    context.close()


def enrol_second_factor(page: Any) -> None:
    page.wait_for_url("**/console/totp")
    page.get_by_role("button", name="Show my key").click()
    secret = page.locator("code.secret").inner_text().replace(" ", "")  # shown in groups of 4
    page.get_by_label("The code the app shows now").fill(totp.code_for(base64.b32decode(secret)))
    page.get_by_role("button", name="Turn on").click()
    page.wait_for_url("**/console/patients?done=totp")


def test_adam_records_paper_consent_watches_jobs_checks_models_and_rotates_keys_in_chromium(
    chromium: Any,  # noqa: F811
    web: str,
    session: Session,
    settings: Settings,
    store: KeyStore,
    people: dict[str, UserPublic],
    bob: PatientPublic,
    tmp_path: Path,
) -> None:
    made = consented_session(session, bob.id, people["alice"].id)
    recording = add_recording(session, settings, store, made, make_audio())
    scan = tmp_path / "bob-consent-form.pdf"
    scan.write_bytes(b"%PDF-1.4\n% Bob Brennan's signed consent form\n" * 20)

    context, page, problems = watched(chromium, web)
    sign_in(page, "adam@clinic.example")
    enrol_second_factor(page)
    nav = page.get_by_role("navigation", name="Main")
    for name in ("Jobs", "Models", "Keys", "Audit"):
        assert nav.get_by_role("link", name=name, exact=True).count() == 1

    page.goto(f"/console/patients/{bob.id}/consent")
    form = page.locator("form.paper")
    form.get_by_label("transcription").check()
    form.get_by_label("Scanned form").set_input_files(str(scan))
    form.get_by_role("button", name="Record paper consent").click()
    page.wait_for_url("**/consent?done=paper")
    assert (
        page.get_by_role("status").inner_text() == "Paper consent recorded with its scanned form."
    )
    link = page.get_by_role("link", name="Download scanned form")
    assert link.count() == 1
    with page.expect_download() as downloading:
        link.click()
    copy = tmp_path / "copy.pdf"
    downloading.value.save_as(copy)
    assert copy.read_bytes() == scan.read_bytes()
    assert downloading.value.suggested_filename == scan.name
    checked(page, "admin-consent-evidence")

    nav.get_by_role("link", name="Jobs").click()
    page.wait_for_url("**/console/jobs")
    probe = page.locator(f"#job-{recording.jobs[0][0]}")
    assert probe.locator("progress").get_attribute("value") == "0"
    session.execute(update(Job).where(col(Job.id) == recording.jobs[0][0]).values(progress=40))
    session.commit()  # a worker's progress report, as the dashboard's poll will see it
    page.wait_for_function(
        "id => document.querySelector('#job-' + id + ' progress').value === 40",
        arg=str(recording.jobs[0][0]),
        timeout=15_000,
    )
    assert probe.locator('[data-field="progress"]').inner_text() == "40%"
    checked(page, "admin-jobs")

    nav.get_by_role("link", name="Models").click()
    page.wait_for_url("**/console/models")
    page.get_by_role("button", name="Verify all files now (sha256)").click()
    page.wait_for_url("**/console/models?done=verified", timeout=60_000)
    assert page.locator("table.models").inner_text().count("matches the manifest") >= 3
    checked(page, "admin-models")

    before = store.current_kek().id
    nav.get_by_role("link", name="Keys").click()
    page.wait_for_url("**/console/keys")
    page.get_by_label("I want to rotate the key-encryption key now").check()
    page.get_by_role("button", name="Rotate key").click()
    page.wait_for_url("**/console/keys?done=rotated")
    after = store.current_kek().id
    assert after != before
    assert store.wrapped_by() == {after}
    assert page.locator("tr.kek-retired").inner_text().startswith(before)
    checked(page, "admin-keys")
    assert problems == []
    context.close()
