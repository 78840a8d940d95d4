"""Therapists' voice enrolment: one short recording, kept as a sealed voiceprint.

The voiceprint is biometric data of a staff member, so it is sealed with a key of that user's
own in the key store: withdrawing the enrolment deletes the row and destroys the key. Only the
therapist may enrol or withdraw their own voice. The attribute stage compares each diarized
speaker with the session therapist's voiceprint to label the therapist.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, BinaryIO

from sqlmodel import Session, select

from appliance.audit.service import Actor, AuditEntry, record
from appliance.crypto.keystore import KeyMissing, KeyStore
from appliance.crypto.service import PatientCipher, new_patient_cipher, patient_cipher
from appliance.errors import Invalid
from appliance.pipeline.models import Voiceprint
from appliance.recordings.models import TherapySession

if TYPE_CHECKING:
    import numpy as np

    from appliance.pipeline.speech import Audio, VoiceEncoder

MIN_SPEECH_SECONDS = 5.0
MAX_SECONDS = 180.0


@dataclass(frozen=True)
class EnrolledVoice:
    user_id: uuid.UUID
    model_id: str
    embedding: np.ndarray
    speech_seconds: float


@dataclass(frozen=True)
class VoiceStatus:
    enrolled: bool
    model_id: str | None = None
    speech_seconds: float | None = None
    created_at: datetime | None = None


def _cipher(store: KeyStore, user_id: uuid.UUID, *, create: bool = False) -> PatientCipher:
    """The user's own key (the key store keys any subject by id, not only patients)."""
    try:
        return patient_cipher(store, user_id)
    except KeyMissing:
        if not create:
            raise
        return new_patient_cipher(store, user_id)


def enrol(
    session: Session,
    store: KeyStore,
    encoder: VoiceEncoder,
    actor: Actor,
    source: BinaryIO,
) -> VoiceStatus:
    """Replace the actor's voiceprint with one made from `source` (any audio the appliance
    decodes; 5 s of speech or more, 3 minutes at most)."""
    import numpy as np

    from appliance.pipeline.backends import decode
    from appliance.pipeline.speech import SAMPLE_RATE

    assert actor.user_id is not None
    audio: Audio = decode(source)
    seconds = len(audio) / SAMPLE_RATE
    if seconds > MAX_SECONDS:
        raise Invalid(f"an enrolment recording is at most {int(MAX_SECONDS)} seconds long")
    voiced = float(np.sum(np.abs(audio) > 0.01)) / SAMPLE_RATE
    if voiced < MIN_SPEECH_SECONDS:
        raise Invalid(f"an enrolment needs at least {int(MIN_SPEECH_SECONDS)} seconds of speech")
    embedding = encoder.embed(audio)
    cipher = _cipher(store, actor.user_id, create=True)
    body = cipher.seal(
        "voiceprints", "body_enc", actor.user_id, json.dumps([float(x) for x in embedding])
    )
    row = session.get(Voiceprint, actor.user_id)
    if row is None:
        row = Voiceprint(user_id=actor.user_id, model_id="", speech_seconds=0.0, body_enc=b"")
    row.model_id, row.speech_seconds, row.body_enc = encoder.model_id, round(seconds, 2), body
    session.add(row)
    session.flush()
    record(session, actor, AuditEntry("voiceprint.enrol", "success", "user", str(actor.user_id)))
    return status(session, actor.user_id)


def status(session: Session, user_id: uuid.UUID) -> VoiceStatus:
    row = session.get(Voiceprint, user_id)
    if row is None:
        return VoiceStatus(enrolled=False)
    return VoiceStatus(True, row.model_id, row.speech_seconds, row.created_at)


def withdraw(session: Session, store: KeyStore, actor: Actor) -> bool:
    assert actor.user_id is not None
    row = session.get(Voiceprint, actor.user_id)
    if row is not None:
        session.delete(row)
        session.flush()
        record(
            session, actor, AuditEntry("voiceprint.withdraw", "success", "user", str(actor.user_id))
        )
    store.destroy(actor.user_id)
    return row is not None


def therapist_voiceprint(
    session: Session, store: KeyStore, therapy_session_id: uuid.UUID
) -> EnrolledVoice | None:
    """The enrolled voice of the therapist who held this session, if any."""
    import numpy as np

    found = session.exec(
        select(Voiceprint)
        .join(TherapySession, TherapySession.therapist_id == Voiceprint.user_id)  # type: ignore[arg-type]
        .where(TherapySession.id == therapy_session_id)
    ).first()
    if found is None:
        return None
    try:
        cipher = _cipher(store, found.user_id)
    except KeyMissing:
        return None
    values = json.loads(cipher.open("voiceprints", "body_enc", found.user_id, found.body_enc))
    return EnrolledVoice(
        found.user_id, found.model_id, np.asarray(values, dtype=np.float32), found.speech_seconds
    )
