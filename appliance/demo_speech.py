"""The demo's recorded session and what it shows of the speech pipeline.

The session is `demo/dialogue.ogg`: a therapist (the packaged Piper voice) and a patient
(espeak-ng) in a short exchange about homework, made offline by `demo/make_dialogue.py` and
committed with its reference text and RTTM. The demo therapist enrols their voice from a
separate recording, so the attribute stage can tell who is the therapist by voice.
"""

from __future__ import annotations

import io
import uuid
from pathlib import Path

from appliance.auth.guards import cli_principal
from appliance.crypto.service import keystore_for
from appliance.db import open_database
from appliance.paths import bundled_resource
from appliance.pipeline import voices
from appliance.pipeline.exports import minute_clock
from appliance.settings import Settings

RECORDING = "dialogue.ogg"


def demo_file(name: str) -> Path:
    return bundled_resource(f"demo/{name}", f"demo/{name}")


def enrol_therapist_voice(settings: Settings, email: str) -> str:
    """Enrol the demo therapist's voice (once; a re-run keeps the first enrolment)."""
    from appliance.pipeline.backends import voice_encoder_for

    store = keystore_for(settings)
    with open_database(settings) as database, database.session() as session:
        therapist = cli_principal(session, email)
        assert therapist.user_id is not None
        known = voices.status(session, therapist.user_id)
        if known.enrolled:
            return f"already enrolled ({known.speech_seconds:.1f} s, {known.model_id})"
        encoder = voice_encoder_for(settings)
        done = voices.enrol(
            session,
            store,
            encoder,
            therapist.actor(),
            io.BytesIO(demo_file("therapist-voice.ogg").read_bytes()),
        )
        session.commit()
    return f"enrolled from {done.speech_seconds:.1f} s of speech with {done.model_id}"


def describe_transcript(settings: Settings, session_id: uuid.UUID, email: str) -> list[str]:
    """The stored transcript as the therapist's API reads it, with WER and DER against the
    committed references."""
    from appliance.pipeline import transcripts
    from appliance.pipeline.evaluate import diarization_error_rate, read_rttm, word_error_rate
    from appliance.pipeline.schemas import TranscriptPublic
    from appliance.recordings.models import TherapySession

    store = keystore_for(settings)
    with open_database(settings) as database, database.session() as session:
        therapist = cli_principal(session, email)
        row = session.get(TherapySession, session_id)
        assert row is not None
        found = transcripts.read(session, store, therapist.actor(), row)
        session.commit()
    assert isinstance(found, TranscriptPublic)
    lines = [
        f"language {found.language}, {len(found.segments)} segments, "
        f"{sum(s.low_confidence for s in found.segments)} marked low-confidence; "
        f"models: {', '.join(found.models)}"
    ]
    for speaker in found.speakers:
        lines.append(
            f"{speaker.speaker} is the {speaker.role} ({speaker.confidence:.0%} sure, by "
            f"{speaker.source}), {speaker.seconds:.1f} s of speech"
        )
    for segment in found.segments[:4]:
        lines.append(f"[{minute_clock(segment.start)}] {segment.role}: {segment.text}")
    lines.append("...")
    hypothesis = " ".join(s.text for s in found.segments)
    wer = word_error_rate(demo_file("dialogue.txt").read_text(), hypothesis)
    reference, _ = read_rttm(demo_file("dialogue.rttm"))
    turns = [(s.start, s.end, s.speaker or "?") for s in found.segments]
    der = diarization_error_rate(reference, turns)
    lines.append(
        f"against the script: WER {wer['wer']:.1%} over {wer['reference_words']} words; "
        f"speaker error (DER of the attributed segments) {der['der']:.1%}"
    )
    return lines


def release_and_search(
    settings: Settings, session_id: uuid.UUID, email: str, question: str
) -> list[str]:
    """The therapist releases the session; the patient's question goes through the same
    retrieval the chat will use (audited, like `appliance search`)."""
    from appliance.audit.service import cli_actor
    from appliance.recordings import service as sessions
    from appliance.recordings.models import TherapySession
    from appliance.retrieval.search import audited_search

    store = keystore_for(settings)
    with open_database(settings) as database, database.session() as session:
        therapist = cli_principal(session, email)
        row = session.get(TherapySession, session_id)
        assert row is not None
        sessions.release(session, therapist.actor(), row)
        result = audited_search(session, store, settings, cli_actor(), row.patient_id, question)
        session.commit()
    lines = [f"{len(result.hits)} passage(s) found, ranked by {result.model_id} + BM25:"]
    for n, hit in enumerate(result.hits[:2], start=1):
        lines.append(
            f"{n}. session of {hit.session_date}, "
            f"{minute_clock(hit.start)}-{minute_clock(hit.end)}, "
            f"score {hit.score:.4f}: {hit.excerpt}"
        )
    return lines
