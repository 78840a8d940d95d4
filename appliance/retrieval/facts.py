"""Structured session facts (homework items, plans): the table's service and the retrieval hook.

The report stage drafts facts from the transcript; a therapist approves them. Approved facts
are what a patient asking "what homework did we discuss?" should get first: a checked,
structured item beats a raw passage that merely sounds like homework.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from sqlmodel import Session, col, select

from appliance.audit.service import Actor, AuditEntry, record
from appliance.crypto.keystore import KeyStore
from appliance.crypto.service import patient_cipher
from appliance.errors import Invalid
from appliance.jobs.service import now_utc
from appliance.pipeline import documents
from appliance.recordings.models import TherapySession
from appliance.retrieval.models import FactKind, SessionFact

# Questions about what the patient was asked to do, and about the plan.
_ASKS = {
    FactKind.homework: re.compile(
        r"\b(home ?work|assign(ed|ment)s?|exercises?|practi[cs]e|tasks?|to-?do|"
        r"supposed to|meant to|should i (do|try|keep)|work on)\b",
        re.IGNORECASE,
    ),
    FactKind.plan: re.compile(r"\b(plans?|planned|next steps?|goals?)\b", re.IGNORECASE),
}


def has_span(start: float, end: float) -> bool:
    """Whether `start`..`end` is a moment of the recording. A fact the therapist typed into
    the report (no utterance behind it) is stored as 0..0: an empty span means "written, not
    said", so it gets no minute, no "Hear it" and no quotation marks anywhere it is shown; a
    span the editor kept from the utterance it replaced stays a real one."""
    return end > start


@dataclass(frozen=True)
class Fact:
    id: uuid.UUID
    session_id: uuid.UUID
    session_date: date
    kind: FactKind
    text: str
    frequency: str | None
    due: str | None
    start: float
    end: float

    @property
    def spoken(self) -> bool:
        """Said in the session (it has a span to cite and play), not only written down."""
        return has_span(self.start, self.end)

    @property
    def sentence(self) -> str:
        """The fact as one sentence, how often and when included, so an answer that says
        "every morning" can be checked against it."""
        text = self.text.strip().rstrip(".")
        extra = [self.frequency, f"due {self.due}" if self.due else None]
        parts = [text, *(p for p in extra if p and p.lower() not in text.lower())]
        return ", ".join(parts) + "."


def kinds_asked(question: str) -> list[FactKind]:
    """The kinds of fact a question is about (none for most questions)."""
    return [kind for kind, pattern in _ASKS.items() if pattern.search(question)]


def add(
    session: Session,
    store: KeyStore,
    actor: Actor,
    therapy_session: TherapySession,
    kind: FactKind,
    text: str,
    *,
    start: float,
    end: float,
    frequency: str | None = None,
    due: str | None = None,
    approved: bool = False,
) -> uuid.UUID:
    """Store a fact of a session, sealed with the patient's key (caller commits; audited).
    `approved` is for a therapist's own entry; drafted facts wait for approval."""
    if not text.strip():
        raise Invalid("a fact needs text")
    if not 0 <= start <= end:
        raise Invalid("a fact's time span must start at or after 0 and not end before it starts")
    fact_id = uuid.uuid4()
    body = {"text": text.strip(), "frequency": frequency, "due": due}
    cipher = patient_cipher(store, therapy_session.patient_id)
    row = SessionFact(
        id=fact_id,
        session_id=therapy_session.id,
        patient_id=therapy_session.patient_id,
        kind=kind.value,
        start_seconds=start,
        end_seconds=end,
        body_enc=documents.seal(cipher, SessionFact.__tablename__, fact_id, body),
        approved=approved,
        approved_by=actor.user_id if approved else None,
        approved_at=now_utc() if approved else None,
        created_by=actor.user_id,
    )
    session.add(row)
    record(
        session,
        actor,
        AuditEntry(
            "fact.add",
            "success",
            "session",
            str(therapy_session.id),
            therapy_session.patient_id,
            {"fact_id": str(fact_id), "kind": kind.value, "approved": approved},
        ),
    )
    return fact_id


def approved_for(
    session: Session,
    store: KeyStore,
    patient_id: uuid.UUID,
    sessions: Sequence[tuple[uuid.UUID, date]],
    kinds: Sequence[FactKind],
) -> list[Fact]:
    """Approved facts of `kinds` in `sessions` (already filtered for release and consent by
    the caller), newest session first. Patient-limited in SQL like every retrieval query."""
    if not sessions or not kinds:
        return []
    dates = dict(sessions)
    rows = session.exec(
        select(SessionFact)
        .where(SessionFact.patient_id == patient_id, col(SessionFact.approved).is_(True))
        .where(col(SessionFact.session_id).in_(list(dates)))
        .where(col(SessionFact.kind).in_([k.value for k in kinds]))
        .order_by(col(SessionFact.start_seconds))
    ).all()
    cipher = patient_cipher(store, patient_id)
    facts = []
    for row in rows:
        body = documents.open_sealed(cipher, SessionFact.__tablename__, row.id, row.body_enc)
        facts.append(
            Fact(
                row.id,
                row.session_id,
                dates[row.session_id],
                FactKind(row.kind),
                body["text"],
                body.get("frequency"),
                body.get("due"),
                row.start_seconds,
                row.end_seconds,
            )
        )
    return sorted(facts, key=lambda f: f.session_date, reverse=True)
