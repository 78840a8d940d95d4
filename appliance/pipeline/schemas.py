"""What crosses HTTP about transcripts, speakers and voice enrolment."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from sqlmodel import SQLModel

Role = Literal["therapist", "patient", "other"]


class WordPublic(SQLModel):
    start: float
    end: float
    text: str
    probability: float
    overlap: bool


class SegmentPublic(SQLModel):
    start: float
    end: float
    speaker: str | None
    role: Role | None
    text: str
    confidence: float
    # Never indexed or quoted to a patient; `flags` says why (repetition, silence, no_voice...).
    low_confidence: bool
    flags: list[str]
    words: list[WordPublic]


class SpeakerPublic(SQLModel):
    speaker: str
    role: Role
    confidence: float
    seconds: float
    source: str  # voiceprint | talk_time | therapist


class TranscriptPublic(SQLModel):
    session_id: uuid.UUID
    language: str
    duration: float
    models: list[str]
    speakers: list[SpeakerPublic]
    segments: list[SegmentPublic]


class TranscriptPending(SQLModel):
    """The 202 body while stages are still running."""

    session_id: uuid.UUID
    status: Literal["processing"] = "processing"
    progress: int


class RelabelRequest(SQLModel):
    speaker: str
    role: Role


class VoicePublic(SQLModel):
    enrolled: bool
    model_id: str | None = None
    speech_seconds: float | None = None
    created_at: datetime | None = None
