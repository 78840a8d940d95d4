"""What crosses HTTP about jobs. Errors are the appliance's own words (no PHI)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlmodel import SQLModel


class JobPublic(SQLModel):
    id: uuid.UUID
    recording_id: uuid.UUID
    stage: str
    state: str
    progress: int
    attempts: int
    max_attempts: int
    last_error: str | None
    run_after: datetime
    started_at: datetime | None
    finished_at: datetime | None
    updated_at: datetime
