"""The therapist's console over HTTP on a real database: sessions filtered and paged (filters
kept, the cursor a position only), a new session from the form, the no-script upload form on
the same ingest path as the API (refusals leave nothing behind), the recording served by byte
range for the transcript's player (206, audited once per play, 404 for others), the talk-time
computation, and the release button."""

from __future__ import annotations

import base64
import json
import re
import uuid
from collections.abc import Iterator
from datetime import date, timedelta
from html import unescape
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
from litestar import Litestar
from litestar.testing import TestClient
from sqlalchemy import text
from sqlmodel import Session, col, select

from appliance.app import create_app
from appliance.audit.models import AuditEvent
from appliance.audit.service import Actor
from appliance.clinic.schemas import PatientPublic, UserPublic
from appliance.consent.models import Purpose
from appliance.crypto.keystore import KeyStore
from appliance.db import Database
from appliance.jobs import runner
from appliance.pipeline import talktime
from appliance.recordings import playback
from appliance.recordings import service as sessions
from appliance.recordings.models import TherapySession
from appliance.recordings.schemas import SessionCreate, SessionUpdate
from appliance.settings import Settings, load_settings
from tests.audio import make_audio
from tests.conftest import (
    CLINIC_IT,
    Browser,
    add_recording,
    consented_session,
    login,
    signed_in,
)
from tests.speech_fakes import FakeSpeech

ROW_DATE = re.compile(
    r'<th scope="row"><a href="/console/sessions/[^"]+"[^>]*><time datetime="([^"]+)"'
)
OLDER = re.compile(r'<a href="\?([^"]*)" rel="next">')


@pytest.fixture
def as_alice(browser: Browser, people: dict[str, UserPublic]) -> tuple[TestClient[Litestar], str]:
    return signed_in(browser, "alice@clinic.example")


def audit_rows(session: Session, action: str, outcome: str | None = None) -> list[AuditEvent]:
    session.expire_all()
    query = select(AuditEvent).where(AuditEvent.action == action)
    if outcome:
        query = query.where(AuditEvent.outcome == outcome)
    return list(session.exec(query.order_by(col(AuditEvent.id))))


def recording_files(settings: Settings, patient: PatientPublic) -> list[Path]:
    folder = settings.files_dir / str(patient.id) / "recordings"
    return sorted(folder.iterdir()) if folder.is_dir() else []


COUNTS = {
    table: text(f"SELECT count(*) FROM {table}")  # noqa: S608  (fixed table names)
    for table in ("recordings", "jobs", "therapy_sessions")
}


def count(session: Session, table: str) -> int:
    return int(session.execute(COUNTS[table]).scalar_one())


# --- sessions list ------------------------------------------------------------------------------


@pytest.fixture
def many_sessions(session: Session, alice: UserPublic, bob: PatientPublic) -> list[date]:
    """60 of bob's sessions, one a day from 1 January 2026; every third cancelled, three
    released. Returns the dates of the scheduled, unreleased ones from 5 January on."""
    alice_actor = Actor(role="therapist", user_id=alice.id)
    expected = []
    for day in range(60):
        when = date(2026, 1, 1) + timedelta(days=day)
        made = sessions.add_session(
            session,
            CLINIC_IT,
            SessionCreate(patient_id=bob.id, session_date=when, therapist_id=alice.id),
        )
        row = session.get(TherapySession, made.id)
        assert row is not None
        if day % 3 == 0:
            sessions.update_session(session, CLINIC_IT, row, SessionUpdate(status="cancelled"))
        elif day in (10, 20, 40):
            sessions.release(session, alice_actor, row)
        elif when >= date(2026, 1, 5):
            expected.append(when)
    session.commit()
    return sorted(expected, reverse=True)


def test_filters_narrow_the_sessions_and_survive_every_page(
    as_alice: Any, many_sessions: list[date], bob: PatientPublic
) -> None:
    client, _ = as_alice
    url = f"/console/patients/{bob.id}/sessions"
    query = "status=scheduled&released=no&date_from=2026-01-05&date_to="
    first = client.get(f"{url}?{query}")
    assert first.status_code == 200, first.text
    dates = ROW_DATE.findall(first.text)
    assert len(dates) == 25
    link = OLDER.search(first.text)
    assert link
    params = parse_qs(unescape(link.group(1)))
    assert params["status"] == ["scheduled"]
    assert params["released"] == ["no"]
    assert params["date_from"] == ["2026-01-05"]
    assert "date_to" not in params  # empty filters are left out
    # The cursor is a position (date, id) and nothing else: no name, no filter.
    padded = params["cursor"][0] + "=" * (-len(params["cursor"][0]) % 4)
    day, row_id = json.loads(base64.urlsafe_b64decode(padded))
    assert (day, str(uuid.UUID(row_id))) == (dates[-1], row_id)
    assert "Brennan" not in link.group(1)

    second = client.get(f"{url}?{unescape(link.group(1))}")
    dates += ROW_DATE.findall(second.text)
    assert OLDER.search(second.text) is None
    assert "Newest sessions" in second.text
    assert [date.fromisoformat(d) for d in dates] == many_sessions

    released = client.get(f"{url}?released=yes")
    assert ROW_DATE.findall(released.text) == ["2026-02-10", "2026-01-21", "2026-01-11"]
    assert client.get(f"{url}?date_from=13-01-2026").status_code == 422


def test_all_my_sessions_lists_every_patient_and_filters_by_one(
    as_alice: Any,
    browser: Browser,
    session: Session,
    people: dict[str, UserPublic],
    bob: PatientPublic,
    charlie: PatientPublic,
) -> None:
    consented_session(session, bob.id, people["alice"].id)
    consented_session(session, charlie.id, people["alice"].id)
    client, _ = as_alice
    everyone = client.get("/console/sessions")
    assert everyone.status_code == 200
    assert "Bob Brennan" in everyone.text
    assert "Charlie" in everyone.text
    assert len(ROW_DATE.findall(everyone.text)) == 2
    only = client.get(f"/console/sessions?patient={charlie.id}")
    assert len(ROW_DATE.findall(only.text)) == 1
    assert f'value="{charlie.id}" selected' in only.text

    dora, _ = signed_in(browser, "dora@clinic.example")
    assert ROW_DATE.findall(dora.get("/console/sessions").text) == []
    assert dora.get(f"/console/sessions?patient={bob.id}").status_code == 404
    denied = audit_rows(session, "session.list", "denied")
    assert [row.patient_id for row in denied] == [bob.id]


def test_a_therapist_adds_a_session_from_the_form_as_herself(
    as_alice: Any, browser: Browser, session: Session, alice: UserPublic, bob: PatientPublic
) -> None:
    client, csrf = as_alice
    listing = client.get(f"/console/patients/{bob.id}/sessions")
    assert 'name="session_date"' in listing.text
    made = client.post(
        f"/console/patients/{bob.id}/sessions",
        data={"csrf_token": csrf, "session_date": "2026-11-20"},
        follow_redirects=False,
    )
    assert made.status_code == 303
    location = made.headers["location"]
    assert location.endswith("?done=created")
    row = session.get(TherapySession, uuid.UUID(location.split("/")[3].split("?")[0]))
    assert row is not None
    assert (row.therapist_id, row.session_date, row.status) == (
        alice.id,
        date(2026, 11, 20),
        "scheduled",
    )
    assert "Session added." in client.get(location).text
    assert len(audit_rows(session, "session.create")) == 1

    dora, dora_csrf = signed_in(browser, "dora@clinic.example")
    refused = dora.post(
        f"/console/patients/{bob.id}/sessions",
        data={"csrf_token": dora_csrf, "session_date": "2026-11-21"},
        follow_redirects=False,
    )
    assert refused.status_code == 404
    assert count(session, "therapy_sessions") == 1


# --- the upload form ------------------------------------------------------------------------------


def post_form(client: TestClient[Litestar], row: Any, csrf: str, audio: bytes) -> Any:
    return client.post(
        f"/console/sessions/{row.id}/recording",
        data={"csrf_token": csrf},
        files={"recording": ("bob-brennan-session.wav", audio, "audio/wav")},
        follow_redirects=False,
    )


def test_the_upload_form_stores_the_recording_on_the_api_path(
    as_alice: Any,
    session: Session,
    settings: Settings,
    people: dict[str, UserPublic],
    bob: PatientPublic,
) -> None:
    row = consented_session(session, bob.id, people["alice"].id)
    client, csrf = as_alice
    audio = make_audio("wav", 2.0)
    response = post_form(client, row, csrf, audio)
    assert response.status_code == 303, response.text
    assert response.headers["location"] == f"/console/sessions/{row.id}?done=uploaded"
    [stored] = recording_files(settings, bob)
    assert audio[:64] not in stored.read_bytes()
    assert count(session, "recordings") == 1
    assert count(session, "jobs") > 0
    sealed = session.execute(text("SELECT original_name_enc FROM recordings")).scalar_one()
    assert b"brennan" not in bytes(sealed)
    page = client.get(response.headers["location"])
    assert "Recording received." in page.text
    assert "Checking the audio" in page.text  # the stage in words, not "probe"


@pytest.mark.parametrize(
    ("consented", "body", "status", "says"),
    [
        (False, make_audio("wav", 1.0), 403, "has not consented to recording"),
        (True, b"Dear diary, today we talked about homework.\n" * 50, 415, "not an audio"),
        (True, b"", 400, "empty"),
    ],
    ids=["no-consent", "not-audio", "empty"],
)
def test_a_refused_upload_shows_why_on_the_page_and_leaves_nothing(
    as_alice: Any,
    session: Session,
    settings: Settings,
    people: dict[str, UserPublic],
    bob: PatientPublic,
    consented: bool,
    body: bytes,
    status: int,
    says: str,
) -> None:
    if consented:
        row = consented_session(session, bob.id, people["alice"].id)
    else:
        made = sessions.add_session(
            session,
            CLINIC_IT,
            SessionCreate(
                patient_id=bob.id, session_date=date(2026, 11, 3), therapist_id=people["alice"].id
            ),
        )
        session.commit()
        row = session.get(TherapySession, made.id)
    client, csrf = as_alice
    response = post_form(client, row, csrf, body)
    assert response.status_code == status
    assert response.headers["content-type"].startswith("text/html")
    assert 'role="alert"' in response.text
    assert says in response.text
    assert "Add a recording" in response.text  # the session page again, form and all
    assert recording_files(settings, bob) == []
    assert count(session, "recordings") == 0
    assert count(session, "jobs") == 0


def test_the_upload_form_needs_its_csrf_token(
    as_alice: Any,
    session: Session,
    settings: Settings,
    people: dict[str, UserPublic],
    bob: PatientPublic,
) -> None:
    row = consented_session(session, bob.id, people["alice"].id)
    client, _ = as_alice
    assert post_form(client, row, "forged", make_audio("wav", 1.0)).status_code == 403
    assert recording_files(settings, bob) == []
    assert count(session, "recordings") == 0


@pytest.fixture
def capped(
    settings: Settings, database: Database, people: dict[str, UserPublic]
) -> Iterator[tuple[TestClient[Litestar], str]]:
    small = load_settings(
        data_dir=settings.data_dir,
        database=settings.database.model_dump(),
        recordings={"max_upload_mb": 1},
    )
    with TestClient(app=create_app(small, database)) as client:
        yield client, login(client, "alice@clinic.example").json()["csrf_token"]


def test_a_too_large_file_from_the_form_is_refused_with_a_413_page(
    capped: Any,
    session: Session,
    settings: Settings,
    people: dict[str, UserPublic],
    bob: PatientPublic,
) -> None:
    row = consented_session(session, bob.id, people["alice"].id)
    client, csrf = capped
    response = post_form(client, row, csrf, make_audio("wav", 40.0))  # 1.28 MB of WAV
    assert response.status_code == 413
    assert "limited to 1 MB" in response.text
    assert recording_files(settings, bob) == []
    assert count(session, "recordings") == 0


# --- the audio route ------------------------------------------------------------------------------


@pytest.fixture
def recorded(
    session: Session,
    settings: Settings,
    store: KeyStore,
    people: dict[str, UserPublic],
    bob: PatientPublic,
) -> tuple[Any, Any, bytes]:
    row = consented_session(session, bob.id, people["alice"].id)
    audio = make_audio("wav", 2.0)
    accepted = add_recording(session, settings, store, row, audio)
    return row, accepted, audio


def test_the_recording_plays_by_byte_range_and_each_play_is_audited_once(
    as_alice: Any, session: Session, recorded: tuple[Any, Any, bytes]
) -> None:
    row, accepted, audio = recorded
    client, _ = as_alice
    url = f"/console/sessions/{row.id}/recordings/{accepted.recording_id}/audio"
    whole = client.get(url)
    assert whole.status_code == 200
    assert whole.content == audio
    assert whole.headers["content-type"].startswith("audio/wav")
    assert whole.headers["accept-ranges"] == "bytes"
    assert whole.headers["cache-control"] == "no-store"

    start = client.get(url, headers={"Range": "bytes=0-"})
    assert start.status_code == 206
    assert start.headers["content-range"] == f"bytes 0-{len(audio) - 1}/{len(audio)}"
    middle = client.get(url, headers={"Range": "bytes=1000-1999"})
    assert middle.status_code == 206
    assert middle.headers["content-range"] == f"bytes 1000-1999/{len(audio)}"
    assert middle.headers["content-length"] == "1000"
    assert middle.content == audio[1000:2000]
    tail = client.get(url, headers={"Range": "bytes=-10"})
    assert (tail.status_code, tail.content) == (206, audio[-10:])
    past = client.get(url, headers={"Range": f"bytes={len(audio)}-"})
    assert past.status_code == 416
    assert past.headers["content-range"] == f"bytes */{len(audio)}"

    plays = audit_rows(session, "recording.play", "success")
    assert len(plays) == 2  # the whole file and the range from byte 0; not the seeks
    assert {p.object_id for p in plays} == {str(accepted.recording_id)}


def test_no_one_else_hears_the_recording_and_each_attempt_is_audited(
    browser: Browser,
    session: Session,
    settings: Settings,
    store: KeyStore,
    people: dict[str, UserPublic],
    charlie: PatientPublic,
    recorded: tuple[Any, Any, bytes],
) -> None:
    row, accepted, _ = recorded
    url = f"/console/sessions/{row.id}/recordings/{accepted.recording_id}/audio"
    dora, _ = signed_in(browser, "dora@clinic.example")
    assert dora.get(url).status_code == 404

    charlies = consented_session(session, charlie.id, people["alice"].id)
    theirs = add_recording(session, settings, store, charlies, make_audio("wav", 1.0))
    alice, _ = signed_in(browser, "alice@clinic.example")
    mixed = f"/console/sessions/{row.id}/recordings/{theirs.recording_id}/audio"
    assert alice.get(mixed).status_code == 404  # charlie's recording under bob's session

    charlie_client, _ = signed_in(browser, "charlie@portal.example")
    assert charlie_client.get(url).status_code in (403, 404)
    denied = audit_rows(session, "recording.play", "denied")
    assert [d.object_id for d in denied] == [
        str(accepted.recording_id),
        str(theirs.recording_id),
    ]
    assert audit_rows(session, "recording.play", "success") == []


def test_a_byte_range_header_is_read_as_the_rfc_says() -> None:
    assert playback.parse_range(None, 100) is None
    assert playback.parse_range("bytes=0-", 100) == (0, 99)
    assert playback.parse_range("bytes=10-19", 100) == (10, 19)
    assert playback.parse_range("bytes=90-500", 100) == (90, 99)
    assert playback.parse_range("bytes=-5", 100) == (95, 99)
    assert playback.parse_range("bytes=0-1,5-6", 100) is None  # several: the whole file
    assert playback.parse_range("items=0-1", 100) is None
    with pytest.raises(playback.RangeNotSatisfiable):
        playback.parse_range("bytes=100-", 100)
    assert playback.starts_a_play(None)
    assert playback.starts_a_play((0, 99))
    assert not playback.starts_a_play((10, 19))


# --- talk time ------------------------------------------------------------------------------------


class Seg:
    def __init__(self, start: float, end: float, role: str | None) -> None:
        self.start, self.end, self.role = start, end, role


def test_talk_time_adds_up_each_role_and_splits_segments_across_minutes() -> None:
    found = talktime.talk_time(
        [
            Seg(0, 30, "therapist"),
            Seg(30, 90, "patient"),  # half in the first minute, half in the second
            Seg(100, 110, "therapist"),
            Seg(110, 115, "other"),
            Seg(115, 118, None),  # no voice: counted for no one
        ],
        duration=150.0,
        bin_seconds=60,
    )
    assert (found.therapist, found.patient, found.other) == (40.0, 60.0, 5.0)
    assert (found.therapist_share, found.patient_share) == (40, 60)
    assert [(b.start, b.end, b.therapist, b.patient, b.other) for b in found.bins] == [
        (0.0, 60.0, 30.0, 30.0, 0.0),
        (60.0, 120.0, 10.0, 30.0, 5.0),
        (120.0, 150.0, 0.0, 0.0, 0.0),
    ]
    bars = found.bars()
    assert len(bars) == 3
    assert bars[0].therapist_height == bars[0].patient_height == talktime.HEIGHT / 2
    assert bars[0].patient_y == 0.0  # a minute of talk is a full-height bar
    assert bars[2].therapist_height == bars[2].patient_height == 0.0


def test_talk_time_picks_bins_that_fit_the_session_and_says_nothing_without_speech() -> None:
    assert talktime.bin_size(8.0) == 1
    assert talktime.bin_size(50 * 60) == 60
    assert talktime.bin_size(90 * 60) == 120
    empty = talktime.talk_time([Seg(0, 1, None)], duration=5.0)
    assert empty.therapist_share is None
    assert empty.patient_share is None
    assert talktime.talk_time([], duration=0.0).bins == ()


def test_the_transcript_page_has_the_player_the_synced_words_and_the_talk_time_chart(
    as_alice: Any,
    session: Session,
    settings: Settings,
    store: KeyStore,
    database: Database,
    people: dict[str, UserPublic],
    bob: PatientPublic,
) -> None:
    row = consented_session(
        session, bob.id, people["alice"].id, Purpose.recording, Purpose.transcription
    )
    accepted = add_recording(session, settings, store, row, make_audio("wav", 2.0))
    runner.drain(database, settings, store, "test-worker", FakeSpeech().pipeline())
    client, _ = as_alice
    page = client.get(f"/console/sessions/{row.id}/transcript")
    assert page.status_code == 200, page.text
    audio = f"/console/sessions/{row.id}/recordings/{accepted.recording_id}/audio"
    assert f'<audio id="player" controls preload="none" src="{audio}"' in page.text
    assert 'data-words=\'[[0.0, 0.15, "How"]' in page.text
    # therapist 0.0-0.6 s; patient 0.7-1.5 s and the unclear 1.6-2.0 s line.
    assert "Therapist 33 %, patient 67 %" in page.text
    assert '<svg class="talk-chart" role="img"' in page.text
    assert 'class="talk-therapist"' in page.text
    assert 'class="talk-patient"' in page.text
    assert "style=" not in page.text
    assert "<summary>Talk time as a table</summary>" in page.text
    assert "I walked every morning." in page.text  # still plain text without JavaScript
    assert audit_rows(session, "recording.play") == []  # opening the page plays nothing


# --- release --------------------------------------------------------------------------------


def test_the_release_button_lets_the_patient_ask_and_shows_it(
    as_alice: Any,
    browser: Browser,
    session: Session,
    settings: Settings,
    store: KeyStore,
    database: Database,
    people: dict[str, UserPublic],
    bob: PatientPublic,
) -> None:
    row = consented_session(
        session, bob.id, people["alice"].id, Purpose.recording, Purpose.transcription
    )
    add_recording(session, settings, store, row, make_audio("wav", 2.0))
    runner.drain(database, settings, store, "test-worker", FakeSpeech().pipeline())
    client, csrf = as_alice
    before = client.get(f"/console/sessions/{row.id}")
    assert "Release for patient questions" in before.text
    assert "what homework did we agree?" in before.text
    assert (
        client.post(f"/console/sessions/{row.id}/release", data={"csrf_token": "x"}).status_code
        == 403
    )
    done = client.post(
        f"/console/sessions/{row.id}/release", data={"csrf_token": csrf}, follow_redirects=False
    )
    assert done.status_code == 303
    session.expire_all()
    assert session.get(TherapySession, row.id).released is True  # type: ignore[union-attr]
    after = client.get(done.headers["location"])
    assert "Released: the patient can now ask about this session." in after.text
    assert "Released to the patient" in after.text
    assert "Release for patient questions" not in after.text
    assert len(audit_rows(session, "session.release", "success")) == 1

    dora, dora_csrf = signed_in(browser, "dora@clinic.example")
    other = consented_session(session, bob.id, people["alice"].id)
    refused = dora.post(
        f"/console/sessions/{other.id}/release",
        data={"csrf_token": dora_csrf},
        follow_redirects=False,
    )
    assert refused.status_code == 404
    session.expire_all()
    assert session.get(TherapySession, other.id).released is False  # type: ignore[union-attr]
