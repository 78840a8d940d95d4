"""adam sets up his authenticator in real Chromium: told why he is there, the QR code drawn
(an <img> of a data: SVG the CSP allows), the key grouped for reading and the same after a
reload, then the confirmation on the patients page. axe finds nothing serious, the console
stays free of errors, and each step leaves a screenshot."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from appliance.auth import totp
from tests.test_browser import chromium  # noqa: F401  (the module-scoped browser fixture)
from tests.test_ops_browser import checked, sign_in, watched, web  # noqa: F401  (fixture)

pytestmark = pytest.mark.slow


def test_adam_scans_the_qr_code_reloads_and_turns_his_authenticator_on_in_chromium(
    chromium: Any,  # noqa: F811
    web: str,  # noqa: F811
) -> None:
    context, page, problems = watched(chromium, web)
    sign_in(page, "adam@clinic.example")
    page.wait_for_url("**/console/totp")
    assert "must set up an authenticator app" in page.get_by_role("status").inner_text()
    page.get_by_role("button", name="Show my key").click()
    qr = page.get_by_role("img", name="QR code of your authenticator key: scan it with the app")
    assert qr.evaluate("img => img.complete && img.naturalWidth > 0")  # drawn, not blocked
    grouped = page.locator("#totp-secret").inner_text()
    assert len(grouped.split(" ")[0]) == 4
    checked(page, "admin-totp-key")

    page.reload()  # resends "Show my key": the pending key again, not a new one
    assert page.locator("#totp-secret").inner_text() == grouped
    page.goto("/console/totp")  # and a plain visit shows it too
    assert page.locator("#totp-secret").inner_text() == grouped
    secret = base64.b32decode(grouped.replace(" ", ""))
    page.get_by_label("The code the app shows now").fill(totp.code_for(secret))
    page.get_by_role("button", name="Turn on").click()
    page.wait_for_url("**/console/patients?done=totp")
    assert "Your authenticator is on" in page.get_by_role("status").inner_text()
    checked(page, "admin-totp-on")
    assert problems == []
    context.close()
