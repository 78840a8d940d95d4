"""The patient's voice question (`POST /api/v1/chat/voice`): a short recording from the portal
becomes text through the real faster-whisper tiny model, and nothing else happens: no answer,
no stored audio, an audit row without the words. Bad uploads are RFC 7807 problems."""

from __future__ import annotations

import io
import json
import subprocess
import time
from pathlib import Path
from typing import Any

import av
import pytest
from litestar import Litestar
from litestar.testing import TestClient
from sqlalchemy import text
from sqlmodel import Session

from appliance.chat import voice
from appliance.clinic.schemas import PatientPublic, UserPublic
from appliance.settings import Settings
from tests.audio import make_audio
from tests.conftest import Browser, signed_in

URL = "/api/v1/chat/voice"
QUESTION = "What homework did we discuss last week?"
ENCODINGS = {  # kind: (container format, codec, sample rate, MIME type a browser sends)
    "webm": ("webm", "libopus", 48000, "audio/webm;codecs=opus"),
    "ogg": ("ogg", "libopus", 48000, "audio/ogg;codecs=opus"),
    "wav": ("wav", "pcm_s16le", 16000, "audio/wav"),
}


def spoken(words: str, kind: str) -> bytes:
    """`words` said by espeak-ng, encoded as a browser's MediaRecorder would (Opus in
    WebM or Ogg), all in memory."""
    wav = subprocess.run(
        ["espeak-ng", "-v", "en-us+f3", "-s", "150", "--stdout", words],
        check=True,
        capture_output=True,
    ).stdout
    container_format, codec, rate, _ = ENCODINGS[kind]
    buffer = io.BytesIO()
    with (
        av.open(io.BytesIO(wav), "r") as source,
        av.open(buffer, "w", format=container_format) as out,
    ):
        stream: Any = out.add_stream(codec, rate=rate, layout="mono")
        resampler = av.AudioResampler(
            format=stream.codec_context.format,
            layout="mono",
            rate=rate,
            frame_size=stream.codec_context.frame_size or None,
        )
        for frame in [*source.decode(audio=0), None]:
            for piece in resampler.resample(frame):
                out.mux(stream.encode(piece))
        out.mux(stream.encode(None))
    return buffer.getvalue()


def post_audio(
    client: TestClient[Litestar], csrf: str | None, body: bytes, mime: str, name: str = "q.webm"
) -> Any:
    headers = {"X-CSRF-Token": csrf} if csrf is not None else {}
    return client.post(URL, files={"audio": (name, body, mime)}, headers=headers)


def voice_audits(session: Session) -> list[dict[str, Any]]:
    rows = session.execute(
        text("SELECT details::text FROM audit_events WHERE action = 'chat.voice' ORDER BY id")
    ).scalars()
    return [json.loads(row) for row in rows]


def stored_files(settings: Settings) -> set[Path]:
    return {p for p in settings.data_dir.rglob("*") if p.is_file()}


@pytest.fixture
def as_bob(browser: Browser, people: dict[str, UserPublic]) -> tuple[TestClient[Litestar], str]:
    return signed_in(browser, "bob@portal.example")


@pytest.mark.model
@pytest.mark.parametrize("kind", ["webm", "ogg"])
def test_a_spoken_question_comes_back_as_text_and_only_text(
    kind: str,
    as_bob: Any,
    session: Session,
    settings: Settings,
    bob: PatientPublic,
) -> None:
    client, csrf = as_bob
    audio = spoken(QUESTION, kind)
    before = stored_files(settings)
    started = time.perf_counter()
    response = post_audio(client, csrf, audio, ENCODINGS[kind][3], f"question.{kind}")
    elapsed = time.perf_counter() - started
    assert response.status_code == 200, response.text
    heard = response.json()
    assert set(heard) == {"question"}
    words = heard["question"].lower()
    for key in ("homework", "discuss", "last week"):
        assert key in words
    assert heard["question"] == " ".join(heard["question"].split())
    print(f"{kind}: {len(audio)} bytes transcribed in {elapsed:.2f} s")
    # Nothing answered, nothing stored: no chat turn, no file; one audit row without words.
    assert session.execute(text("SELECT count(*) FROM chat_turns")).scalar_one() == 0
    assert stored_files(settings) == before
    [audit] = voice_audits(session)
    assert 2.0 < audit["duration_seconds"] < 4.0
    assert audit["bytes"] == len(audio)
    assert "homework" not in json.dumps(audit).lower()
    row = session.execute(
        text("SELECT patient_id, outcome FROM audit_events WHERE action = 'chat.voice'")
    ).one()
    assert (row.patient_id, row.outcome) == (bob.id, "success")


@pytest.mark.model
def test_silence_is_no_question(as_bob: Any, session: Session) -> None:
    client, csrf = as_bob
    response = post_audio(client, csrf, make_audio("webm", 3.0, amplitude=0), "audio/webm")
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")
    assert "no speech" in response.json()["detail"]
    assert voice_audits(session) == []


@pytest.mark.parametrize(
    ("body", "mime", "status"),
    [
        (b"Dear therapist, this is a letter, not a recording.", "text/plain", 415),
        (b"Dear therapist, this is a letter, not a recording.", "audio/webm", 415),
        (b"OggS" + bytes(2000), "audio/ogg", 422),  # an audio container that does not decode
        (b"", "audio/webm", 400),
    ],
    ids=["text", "text-claiming-audio", "corrupt-ogg", "empty"],
)
def test_what_is_not_a_recording_is_refused_and_nothing_is_stored(
    body: bytes, mime: str, status: int, as_bob: Any, session: Session, settings: Settings
) -> None:
    client, csrf = as_bob
    before = stored_files(settings)
    response = post_audio(client, csrf, body, mime)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["status"] == status
    assert stored_files(settings) == before
    assert voice_audits(session) == []


def test_more_than_a_minute_is_too_long(as_bob: Any, session: Session) -> None:
    client, csrf = as_bob
    response = post_audio(client, csrf, make_audio("ogg", 61.0), "audio/ogg")
    assert response.status_code == 422
    assert "60 seconds" in response.json()["detail"]
    assert voice_audits(session) == []


def test_more_than_two_megabytes_is_413(as_bob: Any) -> None:
    client, csrf = as_bob
    just_over = b"RIFF" + bytes(voice.MAX_BYTES)  # within the form allowance: our own check
    assert post_audio(client, csrf, just_over, "audio/wav").status_code == 413
    far_over = bytes(voice.MAX_BYTES + voice.FORM_OVERHEAD + 1)  # refused before it is read
    response = post_audio(client, csrf, far_over, "audio/wav")
    assert response.status_code == 413
    assert response.headers["content-type"].startswith("application/problem+json")


def test_the_form_must_carry_an_audio_file(as_bob: Any) -> None:
    client, csrf = as_bob
    other_field = client.post(
        URL, files={"recording": ("q.webm", b"x", "audio/webm")}, headers={"X-CSRF-Token": csrf}
    )
    assert other_field.status_code == 422
    assert "`audio`" in other_field.json()["detail"]
    raw = client.post(
        URL,
        content=make_audio("wav", 1),
        headers={"X-CSRF-Token": csrf, "Content-Type": "audio/wav"},
    )
    assert raw.status_code == 415
    boundary = "voiceboundary"
    cut_short = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="audio"; filename="q.webm"\r\n'
        "Content-Type: audio/webm\r\n\r\n"
    ).encode() + make_audio("webm", 1.0)  # the closing boundary never came
    truncated = client.post(
        URL,
        content=cut_short,
        headers={
            "X-CSRF-Token": csrf,
            "Content-Type": f"multipart/form-data; boundary={boundary}",
        },
    )
    assert truncated.status_code == 422
    assert "malformed" in truncated.json()["detail"]


def test_only_a_signed_in_patient_with_a_csrf_token_may_ask(
    browser: Browser, people: dict[str, UserPublic], session: Session
) -> None:
    audio = make_audio("webm", 1.0)
    alice, alice_csrf = signed_in(browser, "alice@clinic.example")
    assert post_audio(alice, alice_csrf, audio, "audio/webm").status_code == 403
    bob, _ = signed_in(browser, "bob@portal.example")
    no_csrf = post_audio(bob, None, audio, "audio/webm")
    assert no_csrf.status_code == 403
    assert "CSRF" in no_csrf.json()["detail"]
    assert post_audio(browser(), None, audio, "audio/webm").status_code == 401
    assert voice_audits(session) == []


def test_voice_questions_are_throttled_per_patient(
    browser: Browser, people: dict[str, UserPublic], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(voice, "VOICE_PER_HOUR", 2)
    bob, bob_csrf = signed_in(browser, "bob@portal.example")
    for _ in range(2):  # refused uploads count too: each one is work for the server
        assert post_audio(bob, bob_csrf, b"", "audio/webm").status_code == 400
    limited = post_audio(bob, bob_csrf, b"", "audio/webm")
    assert limited.status_code == 429
    assert int(limited.headers["retry-after"]) >= 1
    assert limited.json()["retry_after"] >= 1
    charlie, charlie_csrf = signed_in(browser, "charlie@portal.example")
    assert post_audio(charlie, charlie_csrf, b"", "audio/webm").status_code == 400
