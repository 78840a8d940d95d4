"""Per-patient data keys: create, fetch and unwrap them inside the caller's transaction."""

from __future__ import annotations

import uuid

from sqlmodel import Session, col, select

from appliance.crypto.envelope import Kek, new_data_key, unwrap_data_key, wrap_data_key
from appliance.crypto.models import DataKey
from appliance.errors import NotFound


def create_data_key(session: Session, kek: Kek, patient_id: uuid.UUID) -> tuple[int, bytes]:
    """Add a new data key for a patient (flushed with the caller's transaction)."""
    dek = new_data_key()
    session.add(
        DataKey(
            patient_id=patient_id,
            version=1,
            kek_id=kek.id,
            wrapped_key=wrap_data_key(kek, dek, patient_id),
        )
    )
    return 1, dek


def data_key(session: Session, kek: Kek, patient_id: uuid.UUID) -> tuple[int, bytes]:
    """The patient's current data key, unwrapped. NotFound when it was never made or destroyed."""
    row = session.exec(
        select(DataKey)
        .where(DataKey.patient_id == patient_id)
        .order_by(col(DataKey.version).desc())
        .limit(1)
    ).first()
    if row is None:
        raise NotFound("no data key for this patient")
    if row.kek_id != kek.id:
        raise ValueError(f"data key is wrapped by {row.kek_id}, but the loaded KEK is {kek.id}")
    return row.version, unwrap_data_key(kek, row.wrapped_key, patient_id)
