"""Shared fixtures: one real embedded PostgreSQL per run, a fresh database per test, and the
people a clinic has: alice (therapist), bob and charlie (her patients, whose data must never
cross), adam (administrator) and audrey (auditor)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest
from litestar import Litestar
from litestar.testing import TestClient
from psycopg import sql
from sqlmodel import Session

from appliance.app import create_app
from appliance.audit.service import Actor
from appliance.auth.service import set_password
from appliance.clinic import service
from appliance.clinic.models import Role
from appliance.clinic.schemas import PatientCreate, PatientPublic, UserCreate, UserPublic
from appliance.crypto.keystore import KeyStore
from appliance.crypto.service import keystore_for
from appliance.db import Database, make_engine, open_database, upgrade_to_head
from appliance.dbroles import ensure_login_role, grant_app_privileges
from appliance.instance import initialise
from appliance.pgserver import SUPERUSER, embedded_server, ensure_database, server_url
from appliance.settings import Settings, load_settings

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("PYANNOTE_METRICS_ENABLED", "0")

TEMPLATE = "appliance_template"
APP_ROLE = "appliance_app"
CLINIC_IT = Actor(role="cli", user_agent="pytest")
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test may read a developer's APPLIANCE_* settings or write into ./var."""
    for key in list(os.environ):
        if key.startswith("APPLIANCE_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    root = tmp_path_factory.mktemp("pg")
    with embedded_server(root / "pgdata") as server:
        ensure_database(server, TEMPLATE)
        engine = make_engine(server_url(server, TEMPLATE))
        upgrade_to_head(engine)
        ensure_login_role(engine, APP_ROLE)
        grant_app_privileges(engine, APP_ROLE)
        engine.dispose()
        yield server


@pytest.fixture
def admin_url(pg_server: Any) -> Iterator[str]:
    """A database of its own for each test, cloned from the migrated template (fast). This is
    the owner's URL; the appliance itself connects as APP_ROLE (see `database_url`)."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin_uri = pg_server.get_uri("postgres")
    with psycopg.connect(admin_uri, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(TEMPLATE)
            )
        )
    yield server_url(pg_server, name)
    with psycopg.connect(admin_uri, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def database_url(admin_url: str) -> str:
    return admin_url.replace(
        f"postgresql+psycopg://{SUPERUSER}:", f"postgresql+psycopg://{APP_ROLE}:"
    )


@pytest.fixture
def settings(tmp_path: Path, database_url: str, admin_url: str) -> Settings:
    """An initialised appliance on the shared server: keys, migrations, clinic."""
    settings = load_settings(
        data_dir=tmp_path / "var",
        database={"url": database_url, "admin_url": admin_url},
        models_dir=REPO / "models",
    )
    initialise(settings)
    return settings


@pytest.fixture
def database(settings: Settings) -> Iterator[Database]:
    with open_database(settings) as database:
        yield database


@pytest.fixture
def session(database: Database) -> Iterator[Session]:
    with database.session() as session:
        yield session


@pytest.fixture
def store(settings: Settings) -> KeyStore:
    return keystore_for(settings)


def _user(session: Session, email: str, name: str, role: Role) -> UserPublic:
    user = service.add_user(session, CLINIC_IT, UserCreate(email=email, name=name, role=role))
    session.commit()
    return user


@pytest.fixture
def alice(session: Session) -> UserPublic:
    return _user(session, "alice@clinic.example", "Dr. Alice Moreno", Role.therapist)


@pytest.fixture
def adam(session: Session) -> UserPublic:
    return _user(session, "adam@clinic.example", "Adam Admin", Role.admin)


@pytest.fixture
def audrey(session: Session) -> UserPublic:
    return _user(session, "audrey@clinic.example", "Audrey Auditor", Role.auditor)


def _patient(
    session: Session, store: KeyStore, name: str, email: str, therapist: UserPublic
) -> PatientPublic:
    patient = service.add_patient(
        session,
        store,
        CLINIC_IT,
        PatientCreate(name=name, email=email, therapist_email=therapist.email),
    )
    session.commit()
    return patient


@pytest.fixture
def bob(session: Session, store: KeyStore, alice: UserPublic) -> PatientPublic:
    return _patient(session, store, "Bob Brennan", "bob@home.example", alice)


@pytest.fixture
def charlie(session: Session, store: KeyStore, alice: UserPublic) -> PatientPublic:
    return _patient(session, store, "Charlie Castellanos", "charlie@home.example", alice)


def run_cli(
    *args: str, env: dict[str, str] | None = None, stdin: str | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """The CLI as clinic IT runs it: a separate process, real exit code, real stdout/stderr."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("APPLIANCE_")}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "appliance", *args],
        capture_output=True,
        text=True,
        input=stdin,
        env=full_env,
        cwd=cwd,
        timeout=240,
        check=False,
    )


# Signing in over HTTP ----------------------------------------------------------------

PASSWORD = "a long and memorable passphrase"


def with_password(session: Session, email: str, role: Role) -> UserPublic:
    user = service.add_user(
        session,
        CLINIC_IT,
        UserCreate(email=email, name=email.split("@")[0], role=role, password=PASSWORD),
    )
    session.commit()
    return user


@pytest.fixture
def people(
    session: Session,
    alice: UserPublic,
    adam: UserPublic,
    audrey: UserPublic,
    bob: PatientPublic,
    charlie: PatientPublic,
) -> dict[str, UserPublic]:
    """alice is the therapist of bob and charlie, who have portal accounts; dora is a
    therapist with no patients; audrey audits; adam administers. All can sign in."""
    for user in (alice, adam, audrey):
        set_password(session, CLINIC_IT, user.email, PASSWORD)
    found = {"alice": alice, "adam": adam, "audrey": audrey}
    for name, patient in (("bob", bob), ("charlie", charlie)):
        found[name] = with_password(session, f"{name}@portal.example", Role.patient)
        service.link_portal_user(session, CLINIC_IT, patient.id, f"{name}@portal.example")
    found["dora"] = with_password(session, "dora@clinic.example", Role.therapist)
    session.commit()
    return found


@pytest.fixture
def app(settings: Settings, database: Database) -> Litestar:
    return create_app(settings, database)


@pytest.fixture
def client(app: Litestar) -> Iterator[TestClient[Litestar]]:
    with TestClient(app=app) as client:
        yield client


def login(client: TestClient[Litestar], email: str, password: str = PASSWORD, **extra: Any) -> Any:
    return client.post("/api/v1/auth/login", json={"email": email, "password": password, **extra})


Browser = Callable[[], TestClient[Litestar]]


@pytest.fixture
def browser(settings: Settings, database: Database) -> Iterator[Browser]:
    """Opens browsers: each its own cookie jar (and app instance, as a real process would be)."""
    opened: list[TestClient[Litestar]] = []

    def open_one() -> TestClient[Litestar]:
        client = TestClient(app=create_app(settings, database))
        client.__enter__()
        opened.append(client)
        return client

    yield open_one
    for client in opened:
        client.__exit__(None, None, None)


def signed_in(browser: Browser, email: str) -> tuple[TestClient[Litestar], str]:
    client = browser()
    response = login(client, email)
    assert response.status_code == 200, response.text
    return client, response.json()["csrf_token"]


def signed_in_admin(browser: Browser) -> tuple[TestClient[Litestar], str]:
    """adam, signed in with his second factor enrolled (admins can do nothing before that)."""
    import base64

    from appliance.auth import totp

    client, csrf = signed_in(browser, "adam@clinic.example")
    setup = client.post("/api/v1/auth/totp/setup", headers={"X-CSRF-Token": csrf}).json()
    code = totp.code_for(base64.b32decode(setup["secret"]))
    confirmed = client.post(
        "/api/v1/auth/totp/confirm", json={"code": code}, headers={"X-CSRF-Token": csrf}
    )
    assert confirmed.status_code == 204, confirmed.text
    return client, csrf


def add_recording(
    session: Session,
    settings: Settings,
    store: KeyStore,
    therapy_session: Any,
    audio: bytes,
    name: str = "session.wav",
) -> Any:
    """A recording through the upload path (consent, encryption, probe decode, job rows)."""
    from appliance.recordings import ingest

    prepared = ingest.prepare(session, settings, store, CLINIC_IT, therapy_session, name, None)
    assert not isinstance(prepared, ingest.Accepted)
    prepared.write(audio)
    return prepared.finish(session)


@contextmanager
def serve(settings: Settings, log_path: Path, **extra_env: str) -> Iterator[str]:
    """`appliance web` as a real process on a free loopback port; yields its base URL.
    `extra_env`: more APPLIANCE_* settings for that process (e.g. the LLM service's port)."""
    import httpx

    from appliance.demo_chat import appliance_process

    env = {k: v for k, v in os.environ.items() if not k.startswith("APPLIANCE_")}
    env.update(
        APPLIANCE_DATA_DIR=str(settings.data_dir),
        APPLIANCE_DATABASE__URL=settings.database.url or "",
        **extra_env,
    )
    if settings.models_dir is not None:
        env["APPLIANCE_MODELS_DIR"] = str(settings.resolved_models_dir)

    def live(base: str) -> bool:
        return httpx.get(f"{base}/health/live").status_code == 200

    with appliance_process("web", env, log_path, live, wait_seconds=60) as base:
        yield base


def consented_session(
    session: Session, patient_id: uuid.UUID, therapist_id: uuid.UUID, *purposes: Any
) -> Any:
    """A therapy session of the patient's with consent to `purposes` (default: recording)."""
    from datetime import date

    from appliance.consent import service as consent
    from appliance.consent.models import ConsentMethod, ConsentStatus, Purpose
    from appliance.recordings import service as sessions
    from appliance.recordings.models import TherapySession
    from appliance.recordings.schemas import SessionCreate

    consent.change(
        session,
        CLINIC_IT,
        patient_id,
        list(purposes or (Purpose.recording,)),
        ConsentStatus.granted,
        ConsentMethod.paper,
    )
    made = sessions.add_session(
        session,
        CLINIC_IT,
        SessionCreate(
            patient_id=patient_id, session_date=date(2026, 11, 14), therapist_id=therapist_id
        ),
    )
    session.commit()
    return session.get(TherapySession, made.id)
