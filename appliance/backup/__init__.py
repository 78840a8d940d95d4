"""Backups: `appliance backup`, `appliance backup verify ARCHIVE`, `appliance restore ARCHIVE`.

An archive (`appliance-backup-<UTC time>.tar`, mode 0600) holds the database dump, the
encrypted recordings byte for byte, the instance configuration and a manifest (created_at,
appliance version, schema revision, row counts per table, the sha256 of every member, the ids
of the KEKs that wrap the patient keys, the audit log's public key).

Key material is NOT in any archive, on purpose. `<data_dir>/keys/` holds the KEK, every
patient's wrapped data key, the audit signing key and the session secret. Erasing a patient
destroys their data key; if archives carried the keys, every archive made before an erasure
would still decrypt that patient (crypto-shredding would not hold against backups). So:

  * Back up `<data_dir>/keys/` and `<data_dir>/erasures.jsonl` separately, to a place the
    clinic chooses and controls (an encrypted USB key in a safe, a second server), e.g.
    `tar -C /var/lib/appliance -cf /media/keysafe/appliance-keys-$(date -u +%F).tar keys
    erasures.jsonl`. Patient keys are added with each new patient: repeat it after adding
    patients, and keep few old copies (an old key copy still holds keys of since-erased
    patients; the erasure journal in the newest copy erases them again after a restore).
  * An archive without its keys is useless: the recordings and encrypted fields cannot be
    read. A key backup without archives holds no patient data.

Restore on a new machine: put the key directory (and the journal) back first, run
`appliance init` (it finds the KEK and does not make a new one), then `appliance restore`.

`latest(settings)` is what `appliance doctor` reads to report the age of the newest archive.
"""

from appliance.backup.archive import BackupInfo, latest

__all__ = ["BackupInfo", "latest"]
