"""What crosses HTTP for consent."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlmodel import Field, SQLModel

from appliance.consent.models import ConsentMethod, Purpose


class ConsentRequest(SQLModel):
    patient_id: uuid.UUID
    purposes: list[Purpose] = Field(min_length=1, max_length=len(Purpose))
    method: ConsentMethod = ConsentMethod.in_person


class ConsentEventPublic(SQLModel):
    id: int
    patient_id: uuid.UUID
    purpose: str
    status: str
    method: str
    actor_id: uuid.UUID | None
    actor_role: str
    evidence_sha256: str | None
    created_at: datetime


class ConsentState(SQLModel):
    purpose: Purpose
    status: str  # granted | revoked | none
    since: datetime | None
    method: str | None


class ConsentCheck(SQLModel):
    patient_id: uuid.UUID
    purpose: Purpose
    granted: bool
