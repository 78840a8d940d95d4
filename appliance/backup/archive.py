"""The archive file: its name, its members, its manifest, and keeping the newest `keep`.

An archive is a plain (uncompressed) tar, because everything in it is already compressed
(pg_dump's custom format) or encrypted (recordings, which do not compress). Members:

  database.dump            pg_dump --format=custom of the whole appliance database
  files/<patient>/...      the encrypted per-patient files, byte for byte as on disk
  config/appliance.toml    the instance configuration (no secrets live in it), when there is one
  manifest.json            written last: what is inside, with the sha256 of every other member

The archive's name carries its UTC creation time (`appliance-backup-20261114T020000Z.tar`), so
listing and pruning need no tar reading, and `latest()` costs one directory listing.
"""

from __future__ import annotations

import hashlib
import json
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import IO, TYPE_CHECKING, Any

from appliance.backup.pgtools import BackupError

if TYPE_CHECKING:
    from appliance.settings import Settings

FORMAT = "appliance-backup/1"
PREFIX = "appliance-backup-"
SUFFIX = ".tar"
STAMP = "%Y%m%dT%H%M%SZ"
MANIFEST = "manifest.json"
DUMP = "database.dump"
FILES = "files"
CONFIG = "config/appliance.toml"
CHUNK = 1024 * 1024


@dataclass(frozen=True)
class BackupInfo:
    """One archive on disk, as its name describes it (for `doctor`'s backup age)."""

    path: Path
    created_at: datetime
    size_bytes: int


def archive_name(created_at: datetime) -> str:
    return f"{PREFIX}{created_at.astimezone(UTC).strftime(STAMP)}{SUFFIX}"


def parse_name(name: str) -> datetime | None:
    if not (name.startswith(PREFIX) and name.endswith(SUFFIX)):
        return None
    try:
        stamp = datetime.strptime(name[len(PREFIX) : -len(SUFFIX)], STAMP)
    except ValueError:
        return None
    return stamp.replace(tzinfo=UTC)


def archives(folder: Path) -> list[BackupInfo]:
    """The finished archives in `folder`, oldest first (temp files never match the name)."""
    found = []
    if folder.is_dir():
        for path in folder.iterdir():
            created = parse_name(path.name)
            if created is not None and path.is_file():
                found.append(BackupInfo(path, created, path.stat().st_size))
    return sorted(found, key=lambda info: info.created_at)


def latest(settings: Settings) -> BackupInfo | None:
    """The newest archive in the configured backup folder, or None when there is none."""
    found = archives(settings.backup_dir)
    return found[-1] if found else None


def prune(folder: Path, keep: int) -> list[Path]:
    """Delete all but the `keep` newest archives; returns what was deleted."""
    doomed = [info.path for info in archives(folder)[:-keep]] if keep > 0 else []
    for path in doomed:
        path.unlink(missing_ok=True)
    return doomed


# Writing -------------------------------------------------------------------------------------


class _HashingReader:
    """Hands tarfile the bytes of a file while hashing them: one read per member, not two."""

    def __init__(self, handle: IO[bytes]) -> None:
        self.handle, self.digest, self.size = handle, hashlib.sha256(), 0

    def read(self, size: int = -1) -> bytes:
        data = self.handle.read(size)
        self.digest.update(data)
        self.size += len(data)
        return data


class ArchiveWriter:
    """Adds members to an open tar and remembers each one's sha256 for the manifest."""

    def __init__(self, out: IO[bytes]) -> None:
        # closed by finish(); a failed backup deletes the whole partial file instead
        self.tar = tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT)  # noqa: SIM115
        self.members: dict[str, dict[str, Any]] = {}

    def add_file(self, name: str, source: Path) -> None:
        with source.open("rb") as handle:
            info = tarfile.TarInfo(name)
            info.size = source.stat().st_size
            info.mode, info.mtime = 0o600, int(source.stat().st_mtime)
            reader = _HashingReader(handle)
            self.tar.addfile(info, reader)
        self.members[name] = {"sha256": reader.digest.hexdigest(), "size": reader.size}

    def add_tree(self, prefix: str, root: Path) -> int:
        """Every regular file under `root`, in a stable order; dot-files (temp files of writes
        in progress) are left out. Returns the number of files added."""
        added = 0
        for path in sorted(root.rglob("*")) if root.is_dir() else []:
            relative = path.relative_to(root)
            if any(part.startswith(".") for part in relative.parts):
                continue
            if path.is_file() and not path.is_symlink():
                self.add_file(f"{prefix}/{relative.as_posix()}", path)
                added += 1
        return added

    def finish(self, manifest: dict[str, Any]) -> None:
        import io

        payload = json.dumps({**manifest, "members": self.members}, indent=1).encode()
        info = tarfile.TarInfo(MANIFEST)
        info.size, info.mode = len(payload), 0o600
        info.mtime = int(datetime.now(UTC).timestamp())
        self.tar.addfile(info, io.BytesIO(payload))
        self.tar.close()


# Reading -------------------------------------------------------------------------------------


def read_manifest(path: Path) -> dict[str, Any]:
    try:
        with tarfile.open(path, mode="r:") as tar:
            member = tar.getmember(MANIFEST)
            handle = tar.extractfile(member)
            manifest = json.loads(handle.read()) if handle is not None else None
    except FileNotFoundError:
        raise BackupError(f"{path} does not exist") from None
    except (tarfile.TarError, KeyError, ValueError, OSError):
        raise BackupError(f"{path.name} is not a readable backup archive (no manifest)") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BackupError(f"{path.name} is not an {FORMAT} archive")
    tables = manifest.get("database", {}).get("tables")
    members = manifest.get("members")
    if not isinstance(tables, dict) or not isinstance(members, dict) or DUMP not in members:
        raise BackupError(f"{path.name} has an incomplete manifest")
    return manifest


def safe_member_name(name: str) -> PurePosixPath:
    """Refuse absolute names and `..`: an archive must never write outside its target."""
    pure = PurePosixPath(name)
    if pure.is_absolute() or ".." in pure.parts or not pure.parts:
        raise BackupError(f"the archive holds an unsafe member name ({len(name)} characters)")
    return pure


def iter_members(path: Path) -> Iterator[tuple[tarfile.TarInfo, IO[bytes]]]:
    """Each regular member with a reader; anything else (links, devices) is refused."""
    with tarfile.open(path, mode="r:") as tar:
        for member in tar:
            safe_member_name(member.name)
            if member.isdir():
                continue
            if not member.isfile():
                raise BackupError("the archive holds a link or special file; refusing it")
            handle = tar.extractfile(member)
            assert handle is not None
            yield member, handle


def check_members(
    path: Path, extract: dict[str, Path] | None = None, *, files_to: Path | None = None
) -> dict[str, Any]:
    """Hash every member against the manifest (and none missing, none extra). Members named in
    `extract` are written to the given paths, and `files/...` under `files_to`, as they are
    hashed. Returns the manifest; raises BackupError naming the first mismatch."""
    manifest = read_manifest(path)
    expected: dict[str, Any] = manifest.get("members", {})
    seen: set[str] = set()
    try:
        for member, handle in iter_members(path):
            if member.name == MANIFEST:
                continue
            if member.name not in expected:
                raise BackupError(f"member {member.name} is not in the manifest")
            target = (extract or {}).get(member.name)
            if target is None and files_to is not None and member.name.startswith(FILES + "/"):
                target = files_to / safe_member_name(member.name).relative_to(FILES)
            digest = _copy_hashing(handle, target)
            if digest != expected[member.name]["sha256"]:
                raise BackupError(f"member {member.name} does not match its sha256")
            seen.add(member.name)
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise BackupError(f"{path.name} is damaged ({type(exc).__name__})") from None
    missing = sorted(set(expected) - seen)
    if missing:
        raise BackupError(f"{len(missing)} member(s) missing from the archive, e.g. {missing[0]}")
    return manifest


def _copy_hashing(handle: IO[bytes], target: Path | None) -> str:
    import os

    digest = hashlib.sha256()
    out = None
    if target is not None:
        target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        out = os.fdopen(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb")
    try:
        while piece := handle.read(CHUNK):
            digest.update(piece)
            if out is not None:
                out.write(piece)
        if out is not None:
            out.flush()
            os.fsync(out.fileno())
    finally:
        if out is not None:
            out.close()
    return digest.hexdigest()
