"""A scratch appliance for the web fault soak (`appliance soak web-faults`) and its CI tests:
an embedded PostgreSQL of its own, a therapist, a patient with a portal account, a session to
upload to and a released one to ask about.

Kept apart from the fault scenarios (`soak.web_faults`) because it is set-up, not a fault: the
CI tests build a `Site` on the test suite's own database instead, and the scenarios take any
`Site`. It needs the test suite's fixtures and scripted speech, so it runs from a checkout.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from appliance.settings import Settings


@dataclass(frozen=True)
class Site:
    """An initialised appliance with a consented therapy session (staff uploads to it) and a
    patient whose released sessions answer `QUESTION`."""

    settings: Settings
    session_id: uuid.UUID
    staff_email: str
    patient_email: str
    password: str
    logs: Path


@contextmanager
def scratch_site(root: Path) -> Iterator[Site]:
    """A throwaway appliance: its own embedded PostgreSQL, a therapist, a patient with a portal
    account, a consented session to upload to and a released one to ask about, recorded
    through the real stages with the test suite's scripted speech (so: run from a checkout)."""
    from datetime import date

    from appliance.audit.service import Actor
    from appliance.clinic import service
    from appliance.clinic.models import Role
    from appliance.clinic.schemas import PatientCreate, UserCreate
    from appliance.crypto.service import keystore_for
    from appliance.db import open_database
    from appliance.instance import initialise
    from tests.conftest import consented_session
    from tests.retrieval_fixtures import ALL, SLEEP, Clinic
    from tests.speech_fakes import FakeSpeech

    actor, password = Actor(role="cli", user_agent="appliance soak web-faults"), secrets_token()
    with own_database(root / "pgdata", root / "var") as (_, settings):
        initialise(settings)
        with open_database(settings) as database, database.session() as session:
            store = keystore_for(settings)
            staff = UserCreate(
                email="alice@clinic.example", name="Alice", role=Role.therapist, password=password
            )
            alice = service.add_user(session, actor, staff)
            bob = service.add_patient(
                session, store, actor, PatientCreate(name="Bob", therapist_email=alice.email)
            )
            portal = UserCreate(
                email="bob@portal.example", name="bob", role=Role.patient, password=password
            )
            service.add_user(session, actor, portal)
            service.link_portal_user(session, actor, bob.id, portal.email)
            session.commit()
            clinic = Clinic(session, settings, store, database, FakeSpeech())
            clinic.consent(bob, *ALL)
            clinic.recorded(bob, alice, date(2026, 11, 12), SLEEP)
            therapy = consented_session(session, bob.id, alice.id)
        logs = root / "logs"
        logs.mkdir()
        yield Site(settings, therapy.id, staff.email, portal.email, password, logs)


@contextmanager
def own_database(pgdata: Path, data_dir: Path, **more: Any) -> Iterator[tuple[Any, Settings]]:
    """An embedded PostgreSQL of the soak's own (a scenario may stop it; the test suite's
    shared server must never stop), with the appliance database and its login role, and the
    settings of an appliance in `data_dir` on it (`more`: other settings, e.g. models_dir).
    Not initialised: the caller runs `initialise` when it wants to."""
    from appliance.db import make_engine
    from appliance.dbroles import ensure_login_role
    from appliance.pgserver import embedded_server, ensure_database, server_url
    from appliance.settings import load_settings

    with embedded_server(pgdata) as server:
        ensure_database(server, "appliance")
        admin_url = server_url(server, "appliance")
        engine = make_engine(admin_url)
        ensure_login_role(engine, "appliance_app")
        engine.dispose()
        database = {"url": server_url(server, "appliance", "appliance_app"), "admin_url": admin_url}
        yield server, load_settings(data_dir=data_dir, database=database, **more)


def secrets_token() -> str:
    import secrets

    return secrets.token_urlsafe(24)
