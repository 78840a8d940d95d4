"""Receiving a recording: the one path the upload endpoint and `appliance ingest` share.

Bytes are encrypted with the patient's key as they arrive (never whole in memory, never in
clear on disk), counted against the size cap as they arrive, then proven to be audio by
decoding the encrypted file through a decrypting reader. A failure anywhere removes the file;
the row and the file appear together or not at all.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from appliance.audit.service import Actor, AuditEntry, record
from appliance.consent import service as consent
from appliance.consent.models import Purpose
from appliance.crypto.keystore import KeyStore
from appliance.crypto.service import patient_cipher
from appliance.crypto.streams import DecryptingReader, EncryptingWriter, FileContext
from appliance.jobs import service as jobs
from appliance.pipeline.stages import pipeline
from appliance.recordings.models import Recording, SessionStatus, TherapySession
from appliance.recordings.partials import disk_full, require_space, storage_error
from appliance.recordings.probe import EmptyUpload, TooLarge, probe
from appliance.settings import Settings

HEAD_BYTES = 64


@dataclass(frozen=True)
class Accepted:
    session_id: uuid.UUID
    recording_id: uuid.UUID
    duration_seconds: float
    size_bytes: int
    replayed: bool  # True when an Idempotency-Key matched an earlier upload
    jobs: tuple[tuple[uuid.UUID, str, str], ...] = ()  # (job id, stage, state), in stage order


class IncomingRecording:
    """One upload in flight. `write()` as bytes arrive; `finish()` validates and records."""

    def __init__(
        self,
        settings: Settings,
        store: KeyStore,
        therapy_session: TherapySession,
        actor: Actor,
        original_name: str | None,
        idempotency_key: str | None,
    ) -> None:
        self.settings = settings
        self.therapy_session, self.actor = therapy_session, actor
        self.original_name, self.idempotency_key = original_name, idempotency_key
        self.max_bytes = settings.recordings.max_upload_mb * 1024 * 1024
        self.max_seconds = settings.recordings.max_duration_minutes * 60.0
        self.recording_id = uuid.uuid4()
        patient_id = therapy_session.patient_id
        self.cipher = patient_cipher(store, patient_id)
        self.context = FileContext("recording", self.recording_id, patient_id)
        self.path = settings.files_dir / str(patient_id) / "recordings" / f"{self.recording_id}.rec"
        require_space(settings)  # 507 before a byte is stored when the disk is nearly full
        try:
            self._writer = EncryptingWriter(self.cipher.dek, self.path, self.context)
        except OSError as exc:
            if disk_full(exc):
                raise storage_error() from None
            raise
        self._digest, self._head = hashlib.sha256(), b""

    def write(self, piece: bytes) -> None:
        if self._writer.size + len(piece) > self.max_bytes:
            self.abort()
            raise TooLarge(f"recordings are limited to {self.max_bytes // (1024 * 1024)} MB")
        if len(self._head) < HEAD_BYTES:
            self._head += piece[: HEAD_BYTES - len(self._head)]
        self._digest.update(piece)
        try:
            self._writer.write(piece)
        except OSError as exc:
            self.abort()
            if disk_full(exc):
                raise storage_error() from None
            raise

    def abort(self) -> None:
        self._writer.abort()
        self.path.unlink(missing_ok=True)

    def finish(self, session: Session) -> Accepted:
        """Validate, store the row, commit. On any failure nothing stays behind."""
        try:
            if self._writer.size == 0:
                raise EmptyUpload("the upload is empty")
            size = self._writer.commit()
            with DecryptingReader(self.cipher.dek, self.path, self.context) as reader:
                info = probe(reader, self._head, self.max_seconds)
            row = Recording(
                id=self.recording_id,
                session_id=self.therapy_session.id,
                patient_id=self.therapy_session.patient_id,
                size_bytes=size,
                sha256=self._digest.hexdigest(),
                container=info.container,
                codec=info.codec,
                duration_seconds=info.duration_seconds,
                sample_rate=info.sample_rate,
                channels=info.channels,
                idempotency_key=self.idempotency_key,
                uploaded_by=self.actor.user_id,
                original_name_enc=(
                    self.cipher.seal(
                        "recordings",
                        "original_name_enc",
                        self.recording_id,
                        self.original_name[:255],
                    )
                    if self.original_name
                    else None
                ),
            )
            session.add(row)
            session.flush()
            jobs.create_for_recording(
                session,
                row.id,
                row.patient_id,
                pipeline().values(),
                self.settings.jobs.max_attempts,
            )
            self.therapy_session.status = SessionStatus.recorded.value
            session.add(self.therapy_session)
            record(
                session,
                self.actor,
                AuditEntry(
                    "recording.upload",
                    "success",
                    "recording",
                    str(row.id),
                    self.therapy_session.patient_id,
                    details={
                        "session_id": str(self.therapy_session.id),
                        "size_bytes": size,
                        "duration_seconds": info.duration_seconds,
                    },
                ),
            )
            session.commit()
        except IntegrityError:
            session.rollback()
            self.abort()
            earlier = find_by_key(session, self.therapy_session.id, self.idempotency_key)
            if earlier is None:
                raise
            return accepted(session, earlier, replayed=True)
        except BaseException as exc:
            self.abort()  # first: a dead database connection can make the rollback raise too
            session.rollback()
            if disk_full(exc):  # 507 with a plain message, not a 500
                raise storage_error() from None
            raise
        return accepted(session, row, replayed=False)


def prepare(
    session: Session,
    settings: Settings,
    store: KeyStore,
    actor: Actor,
    therapy_session: TherapySession,
    original_name: str | None,
    idempotency_key: str | None,
) -> IncomingRecording | Accepted:
    """Consent first (403, audited), then an earlier upload with the same key (replayed)."""
    consent.require(session, actor, therapy_session.patient_id, Purpose.recording)
    earlier = find_by_key(session, therapy_session.id, idempotency_key)
    if earlier is not None:
        return accepted(session, earlier, replayed=True)
    return IncomingRecording(
        settings, store, therapy_session, actor, original_name, idempotency_key
    )


def find_by_key(session: Session, session_id: uuid.UUID, key: str | None) -> Recording | None:
    if not key:
        return None
    return session.exec(
        select(Recording).where(
            Recording.session_id == session_id, Recording.idempotency_key == key
        )
    ).first()


def accepted(session: Session, row: Recording, *, replayed: bool) -> Accepted:
    stages = tuple((job.id, job.stage, job.state) for job in jobs.for_recording(session, row.id))
    return Accepted(row.session_id, row.id, row.duration_seconds, row.size_bytes, replayed, stages)
