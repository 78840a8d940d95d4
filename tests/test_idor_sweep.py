"""The IDOR sweep: every route of the app that names an object in its path, asked by a patient
for another patient's objects and by a therapist for patients who are not hers, must answer
404 exactly as for an object that does not exist, and leave a `denied` audit row.

Maps to HIPAA 164.312(a)(1) access control and 164.312(b) audit controls; OWASP ASVS 4.0.3
V4.1.1/V4.2.1 (no insecure direct object references) and V7.1.3 (security events logged).
The route list comes from the router itself, so a new route cannot escape the sweep: one
whose parameter the sweep cannot fill fails
`test_every_route_with_a_path_parameter_is_known_to_the_sweep`.
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient
from sqlalchemy import text
from sqlmodel import Session

from appliance.app import create_app
from appliance.clinic.schemas import PatientPublic, UserPublic
from appliance.crypto.keystore import KeyStore
from appliance.db import Database
from appliance.settings import Settings, load_settings
from tests.audio import make_audio
from tests.chat_fakes import FakeChatModel
from tests.conftest import Browser, signed_in
from tests.retrieval_fixtures import Clinic
from tests.security_routes import (
    BODIES,
    MULTIPART,
    PATIENT_OWNED,
    PDF,
    QUERIES,
    Owned,
    Route,
    clinic_of_two,
    patient_routes,
    unknown_routes,
)
from tests.speech_fakes import FakeSpeech

WAV = make_audio("wav", 1.0)
UNREACHABLE = "postgresql+psycopg://nobody:x@127.0.0.1:9/none"
EMAILS = {"bob": "bob@portal.example", "dora": "dora@clinic.example"}
UUIDS = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
# A role that may never use a route is refused before any object is looked up: 403 on the
# API and console, 303 to the portal/console home for the wrong door. Accepted only when a
# made-up id gets the very same answer (checked in `probe`), so it tells nothing.
ROLE_REFUSALS = (303, 403)
# Who probes whose objects: a patient reaching for another patient's, and a therapist with no
# patients reaching for alice's patient bob (charlie's objects are of the same kinds).
PROBES = (("bob", "charlie"), ("dora", "bob"))


@pytest.fixture
def owned(
    session: Session,
    settings: Settings,
    store: KeyStore,
    database: Database,
    people: dict[str, UserPublic],
    bob: PatientPublic,
    charlie: PatientPublic,
) -> dict[str, Owned]:
    clinic = Clinic(session, settings, store, database, FakeSpeech())
    return clinic_of_two(clinic, people, bob, charlie)


def send(client: TestClient[Litestar], csrf: str, route: Route, path: str) -> Any:
    """The request a curious user would make: a valid CSRF token and a well-formed body."""
    headers = {"X-CSRF-Token": csrf, "Accept": "application/json"}
    path += QUERIES.get(route.path, "")
    body = BODIES.get((route.method, route.path), {})
    common: dict[str, Any] = {"headers": headers, "follow_redirects": False}
    if route.method == "GET":
        return client.get(path, **common)
    if route.path in MULTIPART:
        field, fields = MULTIPART[route.path]
        upload = {field: ("scan.pdf" if field == "evidence" else "s.wav", PDF if field ==
                          "evidence" else WAV, "application/octet-stream")}  # fmt: skip
        data = {"csrf_token": csrf, **fields}
        return client.request(route.method, path, data=data, files=upload, **common)
    if route.path.endswith("/recording"):  # the API streams the raw file
        return client.request(route.method, path + "?filename=s.wav", content=WAV, **common)
    if path.startswith("/api/"):
        return client.request(route.method, path, json=body, **common)
    return client.request(route.method, path, data={"csrf_token": csrf, **body}, **common)


def denied_rows(session: Session, actor: uuid.UUID) -> list[Any]:
    session.expire_all()
    return list(
        session.execute(
            text(
                "SELECT id, action, object_type, object_id, patient_id, details FROM audit_events "
                "WHERE actor_id = :a AND outcome = 'denied' ORDER BY id"
            ),
            {"a": actor},
        )
    )


@pytest.fixture
def bare_settings(tmp_path: Path) -> Settings:
    """Enough to build the app and read its routes; nothing is started or connected."""
    bare = load_settings(data_dir=tmp_path / "var", database={"url": UNREACHABLE})
    bare.queue_path.parent.mkdir(parents=True, exist_ok=True)
    return bare


def test_every_route_with_a_path_parameter_is_known_to_the_sweep(bare_settings: Settings) -> None:
    app = create_app(bare_settings)
    assert unknown_routes(app) == []
    assert len(patient_routes(app)) > 40  # the sweep is not vacuous


def test_the_sweep_refuses_a_new_route_it_cannot_fill(bare_settings: Settings) -> None:
    """Coverage cannot rot: a route with an unmapped parameter is reported."""
    from litestar import get
    from litestar.params import FromPath

    @get("/api/v1/diaries/{diary_id:uuid}", sync_to_thread=False)
    def diary(diary_id: FromPath[uuid.UUID]) -> str:
        return "dear diary"

    app = create_app(bare_settings)
    app.register(diary)
    assert unknown_routes(app) == ["GET /api/v1/diaries/{diary_id:uuid}"]
    assert "diary_id" not in PATIENT_OWNED


def nobodys(owned: Owned) -> dict[str, uuid.UUID]:
    """Ids of the same kinds that name nothing at all."""
    return {kind: uuid.uuid4() for kind in owned.ids}


def names_probed(row: Any, path: str, victim: Owned) -> bool:
    """The denied audit row names what was asked for: the object (as the row's object or in
    its details) or the patient it belongs to."""
    named = [row.object_id, *(str(value) for value in (row.details or {}).values())]
    return row.patient_id == victim.ids["patient"] or any(
        UUIDS.fullmatch(str(value)) and str(value) in path for value in named
    )


def detail(response: Any) -> tuple[int, str]:
    """Status and problem detail (JSON) or status and redirect target (pages), ids removed."""
    if response.headers.get("content-type", "").startswith("application/problem+json"):
        return response.status_code, UUIDS.sub("<id>", str(response.json().get("detail")))
    return response.status_code, UUIDS.sub("<id>", response.headers.get("location", ""))


def probe(
    client: TestClient[Litestar], csrf: str, route: Route, victim: Owned, rows: Any
) -> list[str]:
    """One route, one victim: what the prober learns must equal what nothing would tell."""
    path = route.fill(victim.ids)
    before = len(rows())
    response = send(client, csrf, route, path)
    new_rows = rows()[before:]
    nothing = send(client, csrf, route, route.fill(nobodys(victim)))
    where = f"{route.method} {route.path}"
    if response.status_code >= 500 or response.status_code < 300:
        return [f"{where}: {response.status_code} for another patient's object"]
    if detail(response) != detail(nothing):
        return [f"{where}: {detail(response)} differs from nothing's {detail(nothing)}"]
    if response.status_code in ROLE_REFUSALS:
        return []  # refused for the prober's role before any lookup (the same for any id)
    if response.status_code != 404:
        return [f"{where}: {response.status_code}, not 404"]
    if not any(names_probed(row, path, victim) for row in new_rows):
        return [f"{where}: 404 without a denied audit row naming it ({new_rows})"]
    return []


def test_another_patients_ids_on_every_route_are_a_404_that_is_audited(
    browser: Browser,
    session: Session,
    people: dict[str, UserPublic],
    owned: dict[str, Owned],
) -> None:
    """bob asks for charlie's objects, dora (no patients) for bob's, on every
    route that names a patient-owned object: each answer is what a made-up id gets, a 404
    unless the role may not use the route at all, and each 404 leaves a denied audit row."""
    problems: list[str] = []
    swept = 0
    for prober, victim in PROBES:
        client, csrf = signed_in(browser, EMAILS[prober])
        client.app.state.chat_model = FakeChatModel()

        def rows(actor: uuid.UUID = people[prober].id) -> list[Any]:
            return denied_rows(session, actor)

        for route in patient_routes(client.app):
            found = probe(client, csrf, route, owned[victim], rows)
            problems += [f"{prober} -> {victim}: {problem}" for problem in found]
            swept += 1
    assert problems == []
    assert swept == len(PROBES) * len(patient_routes(client.app))
