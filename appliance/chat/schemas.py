"""What crosses HTTP about the patient chat (DESIGN.md "Interfaces": keep these stable)."""

from __future__ import annotations

import uuid
from datetime import date

from pydantic import Field, computed_field
from sqlmodel import SQLModel


class ChatRequest(SQLModel):
    question: str = Field(min_length=1, max_length=1000)
    conversation_id: uuid.UUID | None = None


class CitationPublic(SQLModel):
    session_id: uuid.UUID
    session_date: date
    start: float  # seconds from the start of the session
    end: float
    speaker: str | None
    excerpt: str

    @computed_field  # type: ignore[prop-decorator]
    @property
    def in_recording(self) -> bool:
        """Whether the cited words were said at a moment of the recording (`start`..`end`),
        so a client may name the minute, play it and quote it. False for a line the therapist
        wrote into the report (a homework item typed in the editor has no span: 0..0): it is
        their note of the session, never a quote, and nothing at its "time" is about it.
        Derived from the span (`facts.has_span`), so a stored turn reads the same."""
        return self.end > self.start


class ChatResponse(SQLModel):
    answer: str
    refused: bool
    # null, or one of: not_found, out_of_scope, crisis, rate_limited
    reason: str | None
    citations: list[CitationPublic]
    conversation_id: uuid.UUID | None


class VoiceQuestionPublic(SQLModel):
    """What `POST /api/v1/chat/voice` heard: shown to the patient, then asked as usual."""

    question: str
