"""Reading a session's transcript, and the therapist's speaker relabels.

Authorisation is SQL (the session must belong to a patient the principal sees), then consent
(`transcription` must be granted now), then the stages must have finished. A session with
several recordings reads as one transcript: later recordings follow earlier ones in time, and
their speakers are numbered per recording ("2:SPEAKER_00") because labels are per recording.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlmodel import Session, col, select

from appliance.audit.service import Actor, AuditEntry, record
from appliance.consent import service as consent
from appliance.consent.models import Purpose
from appliance.crypto.keystore import KeyStore
from appliance.crypto.service import PatientCipher, patient_cipher
from appliance.errors import Conflict, Invalid, NotFound
from appliance.jobs import service as jobs
from appliance.jobs.models import Job
from appliance.pipeline import documents
from appliance.pipeline.models import Attribution, SpeakerRelabel, Transcript
from appliance.pipeline.schemas import (
    SegmentPublic,
    SpeakerPublic,
    TranscriptPending,
    TranscriptPublic,
    WordPublic,
)
from appliance.pipeline.speech_stages import latest
from appliance.recordings.models import Recording, TherapySession

FINAL_STAGE = "attribute"


@dataclass(frozen=True)
class _Part:
    recording: Recording
    prefix: str
    offset: float


def _parts(session: Session, row: TherapySession) -> list[_Part]:
    recordings = session.exec(
        select(Recording)
        .where(Recording.session_id == row.id)
        .order_by(col(Recording.created_at), col(Recording.id))
    ).all()
    if not recordings:
        raise NotFound("this session has no recording")
    parts, offset = [], 0.0
    for index, recording in enumerate(recordings, start=1):
        prefix = "" if len(recordings) == 1 else f"{index}:"
        parts.append(_Part(recording, prefix, offset))
        offset += recording.duration_seconds
    return parts


def recording_at(session: Session, row: TherapySession, seconds: float) -> tuple[Recording, float]:
    """The recording that plays at `seconds` of the session's timeline, and the time in it
    (a session recorded in two files continues where the first ended)."""
    parts = _parts(session, row)
    for part in reversed(parts):
        if seconds >= part.offset:
            return part.recording, seconds - part.offset
    return parts[0].recording, seconds


def pending(session: Session, parts: list[_Part]) -> int | None:
    """Overall progress (0-99) while any recording's speech stages are still running; None
    once every recording's final speech stage has succeeded. A recording whose stages can go
    no further is a 409 (the jobs page can retry them)."""
    speech: list[Job] = []
    for part in parts:
        current = jobs.for_recording(session, part.recording.id)
        final = next((j for j in current if j.stage == FINAL_STAGE), None)
        if final is not None and final.state == "succeeded":
            continue
        if final is None or not jobs.unfinished(current):
            raise Conflict("transcription stopped for this session; see its jobs")
        speech.extend(current)
    if not speech:
        return None
    done = sum(100 if j.state == "succeeded" else j.progress for j in speech)
    return min(99, done // len(speech))


def read(
    session: Session, store: KeyStore, actor: Actor, row: TherapySession
) -> TranscriptPublic | TranscriptPending:
    consent.require(session, actor, row.patient_id, Purpose.transcription)
    parts = _parts(session, row)
    progress = pending(session, parts)
    if progress is not None:
        return TranscriptPending(session_id=row.id, progress=progress)
    cipher = patient_cipher(store, row.patient_id)
    speakers: list[SpeakerPublic] = []
    segments: list[SegmentPublic] = []
    languages, models, duration = [], [], 0.0
    for part in parts:
        transcript, part_speakers, part_segments = _part(session, cipher, part)
        languages.append(transcript.language)
        models.append(transcript.model_id)
        duration = part.offset + transcript.duration_seconds
        speakers.extend(part_speakers)
        segments.extend(part_segments)
    record(
        session,
        actor,
        AuditEntry("transcript.read", "success", "session", str(row.id), row.patient_id),
    )
    return TranscriptPublic(
        session_id=row.id,
        language=max(set(languages), key=languages.count),
        duration=round(duration, 3),
        models=sorted(set(models)),
        speakers=speakers,
        segments=segments,
    )


def recording_segments(
    session: Session, store: KeyStore, recording: Recording
) -> list[SegmentPublic]:
    """One recording's segments on its session's timeline, with roles and relabels applied:
    what later stages (chunks, reports) are built from. No consent check or audit: the
    calling stage's job holds the consent."""
    row = session.get(TherapySession, recording.session_id)
    if row is None:
        raise NotFound("no such session")
    part = next(p for p in _parts(session, row) if p.recording.id == recording.id)
    return _part(session, patient_cipher(store, recording.patient_id), part)[2]


def session_segments(session: Session, store: KeyStore, row: TherapySession) -> list[SegmentPublic]:
    """The segments of every recording of the session transcribed so far, on one timeline:
    what a report is drafted from. Like `recording_segments`, no consent check or audit."""
    cipher = patient_cipher(store, row.patient_id)
    segments: list[SegmentPublic] = []
    for part in _parts(session, row):
        if latest(session, Attribution, part.recording.id) is not None:
            segments.extend(_part(session, cipher, part)[2])
    return segments


def _part(
    session: Session, cipher: PatientCipher, part: _Part
) -> tuple[Transcript, list[SpeakerPublic], list[SegmentPublic]]:
    recording_id = part.recording.id
    transcript = latest(session, Transcript, recording_id)
    attribution = latest(session, Attribution, recording_id)
    if transcript is None or attribution is None:
        raise Conflict("the transcript of this session is missing; retry its jobs")
    doc = documents.open_sealed(cipher, "attributions", recording_id, attribution.body_enc)
    relabels = _relabels(session, recording_id)
    roles: dict[str, str] = {}
    speakers: list[SpeakerPublic] = []
    for guess in documents.roles_from(doc):
        role, source, sure = guess.role, guess.source, guess.confidence
        if guess.speaker in relabels:
            role, source, sure = relabels[guess.speaker], "therapist", 1.0
        roles[guess.speaker] = role
        speakers.append(
            SpeakerPublic(
                speaker=part.prefix + guess.speaker,
                role=role,  # type: ignore[arg-type]
                confidence=sure,
                seconds=guess.seconds,
                source=source,
            )
        )
    segments = [
        SegmentPublic(
            start=round(u.start + part.offset, 3),
            end=round(u.end + part.offset, 3),
            speaker=None if u.speaker is None else part.prefix + u.speaker,
            role=roles.get(u.speaker) if u.speaker else None,  # type: ignore[arg-type]
            text=u.text,
            confidence=u.confidence,
            low_confidence=u.low_confidence,
            flags=list(u.flags),
            words=[
                WordPublic(
                    start=round(w.start + part.offset, 3),
                    end=round(w.end + part.offset, 3),
                    text=w.text,
                    probability=w.probability,
                    overlap=w.overlap,
                )
                for w in u.words
            ],
        )
        for u in documents.utterances_from(doc)
    ]
    return transcript, speakers, segments


def _relabels(session: Session, recording_id: uuid.UUID) -> dict[str, str]:
    rows = session.exec(
        select(SpeakerRelabel).where(SpeakerRelabel.recording_id == recording_id)
    ).all()
    return {r.speaker: r.role for r in rows}


def relabel(
    session: Session, store: KeyStore, actor: Actor, row: TherapySession, speaker: str, role: str
) -> list[str]:
    """Set a speaker's role (a therapist of the patient only; audited). Stages after
    `attribute` are queued again, so derived data (chunks, reports) follow the new labels;
    transcription and diarization are not re-run. Returns the stages re-queued."""
    if role not in ("therapist", "patient", "other"):
        raise Invalid("role must be therapist, patient or other")
    parts = _parts(session, row)
    prefix, _, label = speaker.rpartition(":")
    part = next((p for p in parts if p.prefix == (prefix + ":" if prefix else "")), None)
    attribution = latest(session, Attribution, part.recording.id) if part else None
    if part is None or attribution is None:
        raise NotFound("no such speaker in this session")
    cipher = patient_cipher(store, row.patient_id)
    doc = documents.open_sealed(cipher, "attributions", part.recording.id, attribution.body_enc)
    if label not in {r.speaker for r in documents.roles_from(doc)}:
        raise NotFound("no such speaker in this session")
    assert actor.user_id is not None
    existing = session.get(SpeakerRelabel, (part.recording.id, label))
    if existing is None:
        existing = SpeakerRelabel(
            recording_id=part.recording.id,
            speaker=label,
            patient_id=row.patient_id,
            role=role,
            relabelled_by=actor.user_id,
        )
    existing.role, existing.relabelled_by = role, actor.user_id
    existing.relabelled_at = jobs.now_utc()
    session.add(existing)
    requeued = jobs.rerun_after(session, part.recording.id, FINAL_STAGE)
    record(
        session,
        actor,
        AuditEntry(
            "transcript.relabel",
            "success",
            "session",
            str(row.id),
            row.patient_id,
            details={"speaker": speaker, "role": role, "requeued": requeued},
        ),
    )
    return requeued
