"""Stage outputs. Each is keyed by (recording, version) so a stage that runs twice, or a
worker that dies after its work but before its commit, never writes a second copy."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import CheckConstraint, DateTime, LargeBinary, String
from sqlmodel import Field, SQLModel

from appliance.clinic.models import utcnow


class RecordingProbe(SQLModel, table=True):
    """What the `probe` stage measured by decoding the whole recording. Technical facts only
    (no content), so they are stored in clear."""

    __tablename__ = "recording_probes"

    recording_id: uuid.UUID = Field(
        foreign_key="recordings.id", primary_key=True, ondelete="CASCADE"
    )
    version: str = Field(primary_key=True, sa_type=String(64))
    patient_id: uuid.UUID = Field(foreign_key="patients.id", index=True, ondelete="CASCADE")
    container: str = Field(sa_type=String(32))
    codec: str = Field(sa_type=String(32))
    duration_seconds: float
    sample_rate: int
    channels: int
    # EBU R128 (ffmpeg's ebur128 filter): integrated loudness, loudness range, sample peak.
    integrated_lufs: float
    loudness_range_lu: float
    peak_dbfs: float
    # Share of 400 ms blocks quieter than -50 LUFS: a mostly silent file is worth a warning.
    silent_fraction: float
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))


class Transcript(SQLModel, table=True):
    """The `transcribe` stage's output. Counts and the language are stored in clear (the
    console lists them); the segments and their words are one sealed JSON document."""

    __tablename__ = "transcripts"

    recording_id: uuid.UUID = Field(
        foreign_key="recordings.id", primary_key=True, ondelete="CASCADE"
    )
    version: str = Field(primary_key=True, sa_type=String(64))
    patient_id: uuid.UUID = Field(foreign_key="patients.id", index=True, ondelete="CASCADE")
    model_id: str = Field(sa_type=String(200))
    language: str = Field(sa_type=String(16))
    language_probability: float
    duration_seconds: float
    segment_count: int
    word_count: int
    low_confidence_count: int
    body_enc: bytes = Field(sa_type=LargeBinary)
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))


class Diarization(SQLModel, table=True):
    """The `diarize` stage's output: who spoke when (sealed: the turns are biometric facts)."""

    __tablename__ = "diarizations"

    recording_id: uuid.UUID = Field(
        foreign_key="recordings.id", primary_key=True, ondelete="CASCADE"
    )
    version: str = Field(primary_key=True, sa_type=String(64))
    patient_id: uuid.UUID = Field(foreign_key="patients.id", index=True, ondelete="CASCADE")
    model_id: str = Field(sa_type=String(200))
    speaker_count: int
    body_enc: bytes = Field(sa_type=LargeBinary)
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))


class Attribution(SQLModel, table=True):
    """The `attribute` stage's output: the transcript's words aligned to speakers, utterances,
    and each speaker's role with a confidence. Sealed as one JSON document."""

    __tablename__ = "attributions"

    recording_id: uuid.UUID = Field(
        foreign_key="recordings.id", primary_key=True, ondelete="CASCADE"
    )
    version: str = Field(primary_key=True, sa_type=String(64))
    patient_id: uuid.UUID = Field(foreign_key="patients.id", index=True, ondelete="CASCADE")
    speaker_count: int
    utterance_count: int
    body_enc: bytes = Field(sa_type=LargeBinary)
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))


class SpeakerRelabel(SQLModel, table=True):
    """A therapist's correction of a speaker's role. It wins over the stage's guess at read
    time, so relabelling never re-runs transcription or diarization."""

    __tablename__ = "speaker_relabels"
    __table_args__ = (
        CheckConstraint("role IN ('therapist', 'patient', 'other')", name="relabel_role_known"),
    )

    recording_id: uuid.UUID = Field(
        foreign_key="recordings.id", primary_key=True, ondelete="CASCADE"
    )
    speaker: str = Field(primary_key=True, sa_type=String(32))
    patient_id: uuid.UUID = Field(foreign_key="patients.id", index=True, ondelete="CASCADE")
    role: str = Field(sa_type=String(16))
    relabelled_by: uuid.UUID = Field(foreign_key="users.id")
    relabelled_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))


class Voiceprint(SQLModel, table=True):
    """A therapist's enrolled voice (biometric data): sealed with a key of that user's own in
    the key store, so deleting the key erases it."""

    __tablename__ = "voiceprints"

    user_id: uuid.UUID = Field(foreign_key="users.id", primary_key=True, ondelete="CASCADE")
    model_id: str = Field(sa_type=String(200))
    speech_seconds: float
    body_enc: bytes = Field(sa_type=LargeBinary)
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))
