"""Stage outputs. Each is keyed by (recording, version) so a stage that runs twice, or a
worker that dies after its work but before its commit, never writes a second copy."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import DateTime, String
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
