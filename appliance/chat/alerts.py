"""Crisis alerts for staff: who may see them, the open count behind the console badge, and
acknowledging one. Plain functions taking a DB session; the caller commits, except where a
refused attempt must be audited although the request fails (as `clinic.access` does).

An alert is visible exactly when its patient is (`clinic.access.visible_patient_ids`): a
therapist sees the alerts of the patients assigned to them, an administrator every alert.
Only staff see alerts at all: a patient never sees the alerts raised about them, an auditor
reads the audit log instead. The rule is a SQL condition, so an alert nobody may see is
never loaded into Python, and one outside it reads exactly like one that does not exist.

Acknowledging is idempotent: the first acknowledgement stands (who and when are never
overwritten) and a repeat is a no-op that says so. Two staff can share a patient, and a
browser without JavaScript resubmits on a double click; neither is an error worth a 409.

Listing and acknowledging are audited with ids and the category only; the badge's count is
not (a number on every page, naming no patient, would bury the log in noise).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import false, func
from sqlmodel import Session, SQLModel, col, select

from appliance.audit.service import AuditEntry, record
from appliance.auth.guards import Principal
from appliance.chat.models import CrisisAlert
from appliance.chat.safety import CrisisCategory
from appliance.clinic import access
from appliance.clinic.models import Patient
from appliance.crypto.keystore import KeyStore
from appliance.crypto.service import patient_cipher
from appliance.errors import NotFound
from appliance.jobs.service import now_utc

# What a therapist reads in the console: plain words, not the rule's enum value.
CATEGORY_LABELS: dict[str, str] = {
    CrisisCategory.suicide.value: "Suicide risk",
    CrisisCategory.self_harm.value: "Self-harm",
    CrisisCategory.harm_to_others.value: "Harm to others",
}


def category_label(category: str) -> str:
    """A category in plain words (an unknown one, e.g. from a newer rule set, still reads)."""
    return CATEGORY_LABELS.get(category, category.replace("_", " ").capitalize())


class CrisisAlertPublic(SQLModel):
    """An alert as staff see it. Never the patient's words: those stay sealed in the chat."""

    id: uuid.UUID
    patient_id: uuid.UUID
    patient_name: str
    category: str
    category_label: str
    created_at: datetime
    acknowledged_by: uuid.UUID | None = None
    acknowledged_at: datetime | None = None


class Acknowledgement(SQLModel):
    """The outcome of acknowledging: who and when (the first acknowledgement's), and whether
    this request found the alert already acknowledged."""

    alert_id: uuid.UUID
    acknowledged_by: uuid.UUID
    acknowledged_at: datetime
    already_acknowledged: bool


def visible_alerts(principal: Principal) -> Any:
    """The SQL condition for the alerts `principal` may see (staff only, through the same
    patient visibility as every other clinical read)."""
    if principal.role not in access.STAFF:
        return false()
    return col(CrisisAlert.patient_id).in_(access.visible_patient_ids(principal))


def _open_alerts(principal: Principal) -> Any:
    return (visible_alerts(principal), col(CrisisAlert.acknowledged_at).is_(None))


def open_count(session: Session, principal: Principal) -> int:
    """How many unacknowledged alerts the principal may see: one COUNT, for the badge."""
    if principal.role not in access.STAFF:
        return 0  # no query for roles that can never see one
    query = select(func.count()).select_from(CrisisAlert).where(*_open_alerts(principal))
    return int(session.exec(query).one())


def open_alerts(session: Session, store: KeyStore, principal: Principal) -> list[CrisisAlertPublic]:
    """The unacknowledged alerts the principal may see, the longest waiting first, each with
    its patient's name (decrypted with that patient's key). The listing is audited."""
    rows = session.exec(
        select(CrisisAlert, Patient)
        .join(Patient, col(Patient.id) == col(CrisisAlert.patient_id))
        .where(*_open_alerts(principal))
        .order_by(col(CrisisAlert.created_at), col(CrisisAlert.id))
    ).all()
    found = _public(store, rows)
    record(
        session,
        principal.actor(),
        AuditEntry(
            "crisis_alert.list",
            object_type="crisis_alert",
            details={
                "count": len(found),
                "alert_ids": [str(a.id) for a in found],
                "patient_ids": sorted({str(a.patient_id) for a in found}),
            },
        ),
    )
    return found


def acknowledge(session: Session, principal: Principal, alert_id: uuid.UUID) -> Acknowledgement:
    """Mark an alert as seen and acted on by `principal`.

    An alert the principal may not see is a 404 exactly like one that does not exist; the
    attempt is audited and committed although the request fails. The row is locked while it
    is read, so two staff acknowledging at once cannot both be first. A repeat is a no-op
    (see the module docstring), audited as such."""
    alert = session.exec(
        select(CrisisAlert)
        .where(CrisisAlert.id == alert_id, visible_alerts(principal))
        .with_for_update(of=CrisisAlert)
    ).first()
    if alert is None:
        refused = AuditEntry("crisis_alert.acknowledge", "denied", "crisis_alert", str(alert_id))
        record(session, principal.actor(), refused)
        session.commit()
        raise NotFound("no such alert")
    already = alert.acknowledged_at is not None
    if not already:
        alert.acknowledged_by = principal.user_id
        alert.acknowledged_at = now_utc()
        session.add(alert)
        session.flush()
    record(
        session,
        principal.actor(),
        AuditEntry(
            "crisis_alert.acknowledge",
            "success",
            "crisis_alert",
            str(alert.id),
            alert.patient_id,
            {"category": alert.category, "already_acknowledged": already},
        ),
    )
    assert alert.acknowledged_by is not None
    assert alert.acknowledged_at is not None
    return Acknowledgement(
        alert_id=alert.id,
        acknowledged_by=alert.acknowledged_by,
        acknowledged_at=alert.acknowledged_at,
        already_acknowledged=already,
    )


def _public(store: KeyStore, rows: Sequence[Any]) -> list[CrisisAlertPublic]:
    names: dict[uuid.UUID, str] = {}  # one decryption per patient, however many alerts
    found = []
    for alert, patient in rows:
        if patient.id not in names:
            cipher = patient_cipher(store, patient.id)
            names[patient.id] = cipher.open("patients", "name_enc", patient.id, patient.name_enc)
        found.append(
            CrisisAlertPublic(
                id=alert.id,
                patient_id=alert.patient_id,
                patient_name=names[patient.id],
                category=alert.category,
                category_label=category_label(alert.category),
                created_at=alert.created_at,
                acknowledged_by=alert.acknowledged_by,
                acknowledged_at=alert.acknowledged_at,
            )
        )
    return found
