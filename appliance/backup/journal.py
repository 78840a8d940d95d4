"""The erasure journal: one line per erased patient, kept outside the database and every backup.

Why it exists: a backup taken before an erasure still holds the patient's rows, embeddings
(stored in clear for search) and encrypted files. Restoring it would bring them back. So every
erasure appends `{"patient_id": ..., "erased_at": ...}` here *before* it destroys anything
(write-ahead: a crash mid-erasure still leaves the intent on disk), and `appliance restore`
re-applies every entry with the same erasure service.

The file is `<data_dir>/erasures.jsonl`: append-only, 0600, fsynced per line. A patient id is
not PHI, and nothing else is written: no name, no reason, no actor (the audit log has those).
Back it up together with the key directory, never inside the data backups.
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

JOURNAL_NAME = "erasures.jsonl"


@dataclass(frozen=True)
class JournalEntry:
    patient_id: uuid.UUID
    erased_at: datetime


def journal_path(data_dir: Path) -> Path:
    return data_dir / JOURNAL_NAME


def append_erasure(path: Path, patient_id: uuid.UUID, when: datetime | None = None) -> None:
    """Append one entry and fsync it (and the folder, when the file is new)."""
    line = json.dumps(
        {
            "patient_id": str(uuid.UUID(str(patient_id))),
            "erased_at": (when or datetime.now(UTC)).astimezone(UTC).isoformat(),
        }
    )
    created = not path.exists()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, (line + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    if created:
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def read_erasures(path: Path) -> list[JournalEntry]:
    """Every distinct patient in the journal, first erasure first. A torn last line (a crash
    mid-append) is skipped: its erasure had not begun, because the line is written first."""
    if not path.is_file():
        return []
    seen: dict[uuid.UUID, JournalEntry] = {}
    for raw in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(raw)
            entry = JournalEntry(
                uuid.UUID(record["patient_id"]), datetime.fromisoformat(record["erased_at"])
            )
        except (ValueError, KeyError, TypeError):
            continue
        seen.setdefault(entry.patient_id, entry)
    return list(seen.values())
