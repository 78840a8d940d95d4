"""Paper-consent evidence: a scan or photo of the signed form, kept beside the ledger row.

The file is encrypted with the patient's data key as it is written (the same chunked format
as recordings, bound to this evidence row and this patient), under a temporary name until it
is complete. Its type is decided by its first bytes (PDF, JPEG, PNG), never by the name the
browser sent. The row and the file appear together or not at all: a refused or failed upload
removes the file, and a failed commit removes it too. Erasing the patient removes the folder.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from sqlmodel import Session, col, select

from appliance.audit.service import Actor, AuditEntry, record
from appliance.consent.models import ConsentEvidence
from appliance.crypto.keystore import KeyStore
from appliance.crypto.service import PatientCipher, patient_cipher
from appliance.crypto.streams import EncryptingWriter, FileContext, decrypt_file
from appliance.errors import DomainError, NotFound
from appliance.web.i18n import _

MAX_BYTES = 10 * 1024 * 1024  # a multi-page scan at 300 dpi fits; a video does not
KIND = "consent"  # the FileContext kind: binds each file to its evidence row and patient
TABLE = "consent_evidence"
SIGNATURES = (
    (b"%PDF-", "application/pdf"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
)
SIGNATURE_BYTES = max(len(magic) for magic, _ in SIGNATURES)


class EvidenceRefused(DomainError):
    """Not a PDF, JPEG or PNG (by its content), or empty."""

    status_code = 415
    title = "Unsupported Media Type"


class EvidenceTooLarge(DomainError):
    status_code = 413
    title = "Content Too Large"


class Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


def sniff(head: bytes) -> str | None:
    """The content type named by the file's first bytes, or None when it is none we accept."""
    for magic, content_type in SIGNATURES:
        if head.startswith(magic):
            return content_type
    return None


@dataclass(frozen=True)
class StoredEvidence:
    """A complete, encrypted evidence file not yet linked to a row (see `attach`)."""

    id: uuid.UUID
    patient_id: uuid.UUID
    path: Path
    stored_as: str
    sha256: str
    size_bytes: int
    content_type: str
    file_name: str

    def discard(self) -> None:
        """Remove the file: its transaction did not commit."""
        self.path.unlink(missing_ok=True)


class IncomingEvidence:
    """One evidence file in flight: `write()` pieces as they arrive (encrypted at once, into
    a hidden temporary file, counted against the cap), then `finish()` checks the content type
    and gives the file its real name; `abort()` (or any refusal) removes it."""

    def __init__(
        self,
        keys: KeyStore,
        files_root: Path,
        patient_id: uuid.UUID,
        file_name: str,
        max_bytes: int = MAX_BYTES,
    ) -> None:
        self.id, self.patient_id, self.max_bytes = uuid.uuid4(), patient_id, max_bytes
        self.stored_as = f"{patient_id}/consent/{self.id}.enc"
        self.path = files_root / self.stored_as
        self.file_name = Path(file_name or "").name[:255] or "consent-form"
        dek = patient_cipher(keys, patient_id).dek
        self._writer = EncryptingWriter(dek, self.path, FileContext(KIND, self.id, patient_id))
        self._digest, self._head = hashlib.sha256(), b""

    def write(self, piece: bytes) -> None:
        if self._writer.size + len(piece) > self.max_bytes:
            self.abort()
            raise EvidenceTooLarge(
                _("evidence files are limited to %(mib)s MiB") % {"mib": self.max_bytes // 2**20}
            )
        if len(self._head) < SIGNATURE_BYTES:
            self._head += piece[: SIGNATURE_BYTES - len(self._head)]
        self._digest.update(piece)
        self._writer.write(piece)

    def finish(self) -> StoredEvidence:
        content_type = sniff(self._head)
        if content_type is None:
            self.abort()
            raise EvidenceRefused(_("the scanned form must be a PDF, JPEG or PNG file"))
        try:
            size = self._writer.commit()
        except BaseException:
            self.abort()
            raise
        return StoredEvidence(
            self.id,
            self.patient_id,
            self.path,
            self.stored_as,
            self._digest.hexdigest(),
            size,
            content_type,
            self.file_name,
        )

    def abort(self) -> None:
        self._writer.abort()
        self.path.unlink(missing_ok=True)


def store(
    keys: KeyStore,
    files_root: Path,
    patient_id: uuid.UUID,
    source: Readable,
    file_name: str,
    max_bytes: int = MAX_BYTES,
) -> StoredEvidence:
    """Encrypt `source` (a file the CLI was given) into the patient's `consent/` folder."""
    incoming = IncomingEvidence(keys, files_root, patient_id, file_name, max_bytes)
    try:
        while piece := source.read(1024 * 1024):
            incoming.write(piece)
    except BaseException:
        incoming.abort()
        raise
    return incoming.finish()


def attach(
    session: Session, keys: KeyStore, stored: StoredEvidence, event_id: int, created_by: uuid.UUID
) -> ConsentEvidence:
    """The row naming a stored file, linked to the consent event it proves (caller commits)."""
    cipher = patient_cipher(keys, stored.patient_id)
    row = ConsentEvidence(
        id=stored.id,
        patient_id=stored.patient_id,
        consent_event_id=event_id,
        file_name_enc=cipher.seal(TABLE, "file_name_enc", stored.id, stored.file_name),
        content_type=stored.content_type,
        size_bytes=stored.size_bytes,
        sha256=stored.sha256,
        stored_as=stored.stored_as,
        created_by=created_by,
    )
    session.add(row)
    return row


def for_patient(session: Session, patient_id: uuid.UUID) -> dict[int, ConsentEvidence]:
    """The patient's evidence rows by the consent event they belong to."""
    rows = session.exec(
        select(ConsentEvidence).where(col(ConsentEvidence.patient_id) == patient_id)
    )
    return {row.consent_event_id: row for row in rows if row.consent_event_id is not None}


@dataclass(frozen=True)
class EvidenceDownload:
    file_name: str
    content_type: str
    size_bytes: int
    chunks: Iterator[bytes]


def open_for_download(
    session: Session,
    keys: KeyStore,
    files_root: Path,
    actor: Actor,
    patient_id: uuid.UUID,
    evidence_id: uuid.UUID,
) -> EvidenceDownload:
    """Decrypting stream of one evidence file of a patient the caller may see (checked by the
    caller); audited as `consent.evidence.read`. Another patient's id reads as not found."""
    row = session.get(ConsentEvidence, evidence_id)
    if row is None or row.patient_id != patient_id:
        raise NotFound("no such evidence")
    cipher: PatientCipher = patient_cipher(keys, patient_id)
    name = cipher.open(TABLE, "file_name_enc", row.id, row.file_name_enc)
    context = FileContext(KIND, row.id, patient_id)
    path = files_root / row.stored_as
    if not path.is_file():
        raise NotFound("the evidence file is missing")
    record(
        session,
        actor,
        AuditEntry(
            "consent.evidence.read",
            object_type="consent_evidence",
            object_id=str(row.id),
            patient_id=patient_id,
            details={"consent_event_id": row.consent_event_id, "size_bytes": row.size_bytes},
        ),
    )
    session.commit()
    chunks = decrypt_file(cipher.dek, path, context)
    return EvidenceDownload(name, row.content_type, row.size_bytes, chunks)
