"""Download my data: the patient's GDPR access and portability bundle, as one ZIP.

What is in it is what the patient is entitled to see, read with the same limits as the portal:
their profile, their consent ledger, their sessions (dates and release state), the transcripts
of the sessions their therapist released (passages marked clinical-only left out, and counted),
the approved homework and plans of those sessions with their own ticks, their conversations,
and the messages sent to them. Every query names the patient; nothing of another patient and
no staff detail beyond a sender's name (already shown on each message) is read. JSON for
machines (`manifest.json` lists every file with its size and sha256), `README.txt` for people.

Audio recordings are listed (date, length, size, sha256), not included, on purpose:
- the portal never plays a whole session: a therapist may mark passages clinical-only, and
  only cited windows outside them play (`listen.py`). Handing over the full file would bypass
  that review; the clinic can produce a copy on request and apply it;
- an hour of audio is tens of megabytes per session; the bundle stays a small download built in
  memory in one request, where a streamed multi-gigabyte archive of decrypted audio would need
  its own job, progress and expiry to be done right.
The README says how to ask for them.

Released sessions' transcripts are included whatever the current processing consents say:
withdrawing consent stops further processing; it does not take away the patient's right of
access (GDPR art. 15) to what was already made and is still kept.

The ZIP is built in memory (`BytesIO`): nothing decrypted touches the disk. At most one export
per patient per `INTERVAL` (checked against the audit log under a per-patient lock, so two
quick presses cannot both build one); the export is audited with counts only.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import text
from sqlmodel import Session, col, select

from appliance.audit.models import AuditEvent
from appliance.audit.service import Actor, AuditEntry, record
from appliance.chat.models import ChatTurn, Conversation
from appliance.clinic.models import Patient, User
from appliance.consent import service as consent
from appliance.crypto.keystore import KeyStore
from appliance.crypto.service import patient_cipher
from appliance.errors import Conflict, NotFound, TooManyRequests
from appliance.jobs.service import now_utc
from appliance.messages.models import MessageState, PatientMessage
from appliance.messages.records import inbox_public
from appliance.pipeline import documents
from appliance.pipeline.transcripts import session_segments
from appliance.portal import checks
from appliance.portal.archive import zip_bundle
from appliance.recordings.models import Recording, TherapySession
from appliance.reports.models import WithheldSpan
from appliance.retrieval import facts
from appliance.retrieval.models import FactKind
from appliance.settings import Settings
from appliance.web.i18n import _

FORMAT = "appliance-portal-export/1"
INTERVAL = 60  # seconds between two exports of one patient
ACTION = "portal.export"


@dataclass
class Bundle:
    """The files of the export (name -> JSON-able document) and what the README counts."""

    files: dict[str, Any] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Download:
    content: bytes
    filename: str
    counts: dict[str, int]


def export(
    session: Session, settings: Settings, store: KeyStore, actor: Actor, patient_id: uuid.UUID
) -> Download:
    """Build the patient's ZIP (rate limited, audited as `portal.export`; commits)."""
    _limit(session, actor, patient_id)
    made = now_utc()
    bundle = Bundle()
    _profile(session, store, patient_id, bundle)
    _consents(session, patient_id, bundle)
    released = _sessions(session, patient_id, bundle)
    _transcripts(session, store, released, bundle)
    _homework(session, store, patient_id, released, bundle)
    _conversations(session, store, patient_id, bundle)
    _messages(session, store, patient_id, bundle)
    zone = ZoneInfo(settings.clinic.timezone)
    content = zip_bundle(FORMAT, bundle.files, bundle.counts, made, settings.clinic.name, zone)
    record(
        session,
        actor,
        AuditEntry(
            ACTION,
            "success",
            "patient",
            str(patient_id),
            patient_id,
            {"files": len(bundle.files) + 2, "bytes": len(content), **bundle.counts},
        ),
    )
    session.commit()
    filename = f"my-data-{made.astimezone(zone):%Y-%m-%d}.zip"
    return Download(content, filename, dict(bundle.counts))


def _limit(session: Session, actor: Actor, patient_id: uuid.UUID) -> None:
    """One export per patient per INTERVAL, decided under a per-patient lock."""
    session.execute(
        text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"),
        {"key": f"{ACTION}:{patient_id}"},
    )
    last = session.exec(
        select(AuditEvent.ts)
        .where(
            AuditEvent.action == ACTION,
            AuditEvent.patient_id == patient_id,
            AuditEvent.outcome == "success",
        )
        .order_by(col(AuditEvent.id).desc())
        .limit(1)
    ).first()
    if last is None:
        return
    wait = int((last + timedelta(seconds=INTERVAL) - now_utc()).total_seconds()) + 1
    if wait > 0:
        entry = AuditEntry(
            ACTION, "denied", "patient", str(patient_id), patient_id, {"reason": "rate_limited"}
        )
        record(session, actor, entry)
        session.commit()
        message = _("Your data was just downloaded; please try again in %(n)s seconds.")
        raise TooManyRequests(message % {"n": wait}, wait)


def _time(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def _profile(session: Session, store: KeyStore, patient_id: uuid.UUID, bundle: Bundle) -> None:
    patient = session.get(Patient, patient_id)
    if patient is None:
        raise NotFound("no such patient")
    cipher = patient_cipher(store, patient_id)
    account = session.get(User, patient.user_id) if patient.user_id else None
    email = None
    if patient.email_enc is not None:
        email = cipher.open("patients", "email_enc", patient.id, patient.email_enc)
    bundle.files["profile.json"] = {
        "patient_id": str(patient.id),
        "name": cipher.open("patients", "name_enc", patient.id, patient.name_enc),
        "email": email,
        "portal_account": None
        if account is None
        else {
            "email": account.email,
            "language": account.locale,
            "since": _time(account.created_at),
        },
        "registered_at": _time(patient.created_at),
    }


def _consents(session: Session, patient_id: uuid.UUID, bundle: Bundle) -> None:
    history = consent.history(session, patient_id)
    bundle.files["consents.json"] = {
        "current": [
            {
                "purpose": s.purpose.value,
                "status": s.status,
                "since": _time(s.since),
                "method": s.method,
            }
            for s in consent.current(session, patient_id)
        ],
        "history": [
            {
                "purpose": e.purpose,
                "status": e.status,
                "method": e.method,
                "recorded_by": e.actor_role,
                "paper_evidence": e.evidence_sha256 is not None,
                "at": _time(e.created_at),
            }
            for e in history
        ],
    }
    bundle.counts["consent_events"] = len(history)


def _sessions(session: Session, patient_id: uuid.UUID, bundle: Bundle) -> list[TherapySession]:
    """Every session of the patient, with its recordings listed; returns the released ones."""
    rows = session.exec(
        select(TherapySession)
        .where(TherapySession.patient_id == patient_id)
        .order_by(col(TherapySession.session_date), col(TherapySession.id))
    ).all()
    recordings = session.exec(
        select(Recording)
        .where(Recording.patient_id == patient_id)
        .order_by(col(Recording.created_at), col(Recording.id))
    ).all()
    listed: dict[uuid.UUID, list[dict[str, Any]]] = {}
    for r in recordings:
        listed.setdefault(r.session_id, []).append(
            {
                "recording_id": str(r.id),
                "uploaded_at": _time(r.created_at),
                "duration_seconds": round(r.duration_seconds, 1),
                "size_bytes": r.size_bytes,
                "format": f"{r.container}/{r.codec}",
                "sha256": r.sha256,
            }
        )
    bundle.files["sessions.json"] = [
        {
            "session_id": str(row.id),
            "date": row.session_date.isoformat(),
            "status": row.status,
            "released_to_you": row.released,
            "released_at": _time(row.released_at),
            "recordings": listed.get(row.id, []),
        }
        for row in rows
    ]
    bundle.counts["sessions"] = len(rows)
    bundle.counts["recordings_listed"] = len(recordings)
    return [row for row in rows if row.released]


def _transcripts(
    session: Session, store: KeyStore, released: list[TherapySession], bundle: Bundle
) -> None:
    """The released sessions' transcripts, minus the passages the therapist withheld."""
    done = withheld_total = 0
    for row in released:
        try:
            segments = session_segments(session, store, row)
        except (NotFound, Conflict):
            continue  # no recording, or not transcribed yet
        if not segments:
            continue
        spans = session.exec(
            select(WithheldSpan.start_seconds, WithheldSpan.end_seconds).where(
                WithheldSpan.session_id == row.id, WithheldSpan.patient_id == row.patient_id
            )
        ).all()
        kept, withheld = [], 0
        for s in segments:
            if any(start < s.end and end > s.start for start, end in spans):
                withheld += 1
                continue
            kept.append(
                {
                    "start": s.start,
                    "end": s.end,
                    "speaker": s.role or "unknown",
                    "text": s.text,
                    "unclear": s.low_confidence,
                }
            )
        name = f"transcripts/{row.session_date.isoformat()}-{str(row.id)[:8]}.json"
        bundle.files[name] = {
            "session_id": str(row.id),
            "date": row.session_date.isoformat(),
            "segments": kept,
            "clinical_only_passages_left_out": withheld,
        }
        done += 1
        withheld_total += withheld
    bundle.counts["transcripts"] = done
    bundle.counts["passages_left_out"] = withheld_total


def _homework(
    session: Session,
    store: KeyStore,
    patient_id: uuid.UUID,
    released: list[TherapySession],
    bundle: Bundle,
) -> None:
    sessions = [(row.id, row.session_date) for row in released]
    found = facts.approved_for(
        session, store, patient_id, sessions, [FactKind.homework, FactKind.plan]
    )
    ticks = checks.ticked(session, patient_id)
    bundle.files["homework.json"] = {
        "items": [
            {
                "id": str(f.id),
                "kind": f.kind.value,
                "session_id": str(f.session_id),
                "session_date": f.session_date.isoformat(),
                "text": f.text,
                "how_often": f.frequency,
                "due": f.due,
                "said_at_seconds": f.start if f.spoken else None,  # None: typed, not said
                "done_at": _time(ticks.get(f.id)),
            }
            for f in found
        ],
        "ticks": [{"item_id": str(fact_id), "done_at": _time(at)} for fact_id, at in ticks.items()],
    }
    bundle.counts["homework_items"] = len(found)
    bundle.counts["homework_ticks"] = len(ticks)


def _conversations(
    session: Session, store: KeyStore, patient_id: uuid.UUID, bundle: Bundle
) -> None:
    conversations = session.exec(
        select(Conversation)
        .where(Conversation.patient_id == patient_id)
        .order_by(col(Conversation.created_at), col(Conversation.id))
    ).all()
    turns = session.exec(
        select(ChatTurn)
        .where(ChatTurn.patient_id == patient_id)
        .order_by(col(ChatTurn.created_at), col(ChatTurn.id))
    ).all()
    cipher = patient_cipher(store, patient_id)
    by_conversation: dict[uuid.UUID, list[dict[str, Any]]] = {}
    for turn in turns:
        body = documents.open_sealed(cipher, ChatTurn.__tablename__, turn.id, turn.body_enc)
        by_conversation.setdefault(turn.conversation_id, []).append(
            {
                "at": _time(turn.created_at),
                "from": "you" if turn.role == "patient" else "portal",
                "text": body["text"],
                "refused_because": turn.reason,
                "citations": body.get("citations", []),
            }
        )
    bundle.files["conversations.json"] = [
        {
            "conversation_id": str(c.id),
            "started_at": _time(c.created_at),
            "turns": by_conversation.get(c.id, []),
        }
        for c in conversations
    ]
    bundle.counts["conversations"] = len(conversations)
    bundle.counts["questions"] = sum(1 for t in turns if t.role == "patient")


def _messages(session: Session, store: KeyStore, patient_id: uuid.UUID, bundle: Bundle) -> None:
    rows = session.exec(
        select(PatientMessage)
        .where(
            PatientMessage.patient_id == patient_id,
            PatientMessage.state == MessageState.sent.value,
        )
        .order_by(col(PatientMessage.sent_at), col(PatientMessage.id))
    ).all()
    bundle.files["messages.json"] = [
        {
            "message_id": str(m.id),
            "from": m.sender_name,
            "sent_at": _time(m.sent_at),
            "read_at": _time(m.read_at),
            "subject": m.subject,
            "body": m.body,
        }
        for m in inbox_public(session, store, rows)
    ]
    bundle.counts["messages"] = len(rows)
