"""What someone sees who types only the server's address, or hits an error page: a way on,
never a dead end, and a patient never lands in the console's look."""

from __future__ import annotations

import uuid

from appliance.clinic.schemas import UserPublic
from tests.conftest import Browser, signed_in


def test_the_servers_address_shows_doors_to_the_portal_and_the_console(browser: Browser) -> None:
    client = browser()
    response = client.get("/")
    assert response.status_code == 200
    assert 'href="/portal"' in response.text
    assert 'href="/console"' in response.text
    assert response.headers["content-security-policy"].startswith("default-src 'self'")


def test_a_patients_error_page_is_the_portals_and_leads_back_to_the_portal(
    browser: Browser, people: dict[str, UserPublic]
) -> None:
    client, _csrf = signed_in(browser, "bob@portal.example")
    response = client.get(f"/portal/messages/{uuid.uuid4()}")
    assert response.status_code == 404
    assert "/static/portal.css" in response.text
    assert "/static/console.css" not in response.text
    assert 'href="/portal"' in response.text
    assert "Back to the console" not in response.text


def test_a_staff_error_page_leads_back_to_the_page_they_came_from(
    browser: Browser, people: dict[str, UserPublic]
) -> None:
    client, _csrf = signed_in(browser, "alice@clinic.example")
    came_from = "http://testserver.local/console/patients?x=1"
    response = client.get(f"/console/sessions/{uuid.uuid4()}", headers={"referer": came_from})
    assert response.status_code == 404
    assert 'href="/console/patients?x=1"' in response.text
    # The message starts with a capital letter, whatever the service wrote.
    assert '<p role="alert" class="error">' in response.text
    message = response.text.split('<p role="alert" class="error">', 1)[1][:1]
    assert message.isupper()


def test_an_error_page_never_links_back_to_another_site(
    browser: Browser, people: dict[str, UserPublic]
) -> None:
    client, _csrf = signed_in(browser, "alice@clinic.example")
    response = client.get(
        f"/console/sessions/{uuid.uuid4()}", headers={"referer": "https://evil.example/console/x"}
    )
    assert response.status_code == 404
    assert "evil.example" not in response.text
    assert 'href="/console"' in response.text
