"""Erasing a patient (GDPR art. 17): crypto-shredding first, then rows and files.

The data key goes first. From that moment nothing of the patient's can be decrypted, from this
database or any dump or backup of it; if a later step fails, re-running the erasure finishes it.
Before even that, the patient's id goes into the erasure journal (outside the database and the
backups), so that `appliance restore` erases them again from an older backup.
"""

from __future__ import annotations

import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

from sqlmodel import Session

from appliance.audit.service import Actor, AuditEntry, record
from appliance.backup.journal import append_erasure, journal_path
from appliance.clinic.models import Patient, Role, User
from appliance.crypto.keystore import KeyStore
from appliance.errors import NotFound


@dataclass(frozen=True)
class Erasure:
    patient_id: uuid.UUID
    key_destroyed: bool
    rows_deleted: bool
    files_deleted: int


def erase_patient(
    session: Session,
    store: KeyStore,
    actor: Actor,
    files_root: Path,
    patient_id: uuid.UUID,
    *,
    journal: bool = True,
) -> Erasure:
    """Destroy the patient's data key, delete their rows (caller commits) and their files.
    `journal=False` only for the replay after a restore: those ids are in the journal already."""
    patient = session.get(Patient, patient_id)
    if patient is not None and journal:  # write-ahead; files_root is <data_dir>/files
        append_erasure(journal_path(files_root.parent), patient_id)
    key_destroyed = store.destroy(patient_id)
    if patient is None and not key_destroyed:
        raise NotFound("no such patient")
    portal_user = None
    if patient is not None:
        portal_user = session.get(User, patient.user_id) if patient.user_id else None
        session.delete(patient)  # assignments and later per-patient tables cascade
        session.flush()
    if portal_user is not None and portal_user.role == Role.patient:
        session.delete(portal_user)  # their login e-mail too; sessions and API keys cascade
        session.flush()
    folder = files_root / str(patient_id)
    files = sum(1 for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else 0
    shutil.rmtree(folder, ignore_errors=True)
    result = Erasure(patient_id, key_destroyed, patient is not None, files)
    record(
        session,
        actor,
        AuditEntry(
            "patient.erase",
            object_type="patient",
            object_id=str(patient_id),
            patient_id=patient_id,
            details={
                "key_destroyed": key_destroyed,
                "rows_deleted": result.rows_deleted,
                "files_deleted": files,
            },
        ),
    )
    return result
