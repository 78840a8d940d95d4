"""manifest.json and SHA256SUMS of an offline bundle, as immutable records.

Standard library only: the verifier runs on a server before the appliance is installed, straight
out of the bundle's own wheel (see the package docstring).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
SUMS_NAME = "SHA256SUMS"
WHEELS_DIR = "wheels"
MODELS_DIR = "models"
PROJECT_NAME = "appliance"


class BundleError(Exception):
    """A bundle that cannot be built or does not verify; the message is one line."""


@dataclass(frozen=True)
class FileEntry:
    path: str  # relative, POSIX separators
    size: int
    sha256: str


@dataclass(frozen=True)
class ModelRecord:
    name: str
    role: str
    source: str  # "manifest" (checked against models/manifest.toml) or "folder" (hashed as found)
    files: tuple[str, ...]  # paths relative to the bundle root


@dataclass(frozen=True)
class Target:
    """The interpreter and platform the wheels are for (pip's --python-version etc.)."""

    python_version: str
    platforms: tuple[str, ...]
    implementation: str = "cp"

    @property
    def abi(self) -> str:
        return f"{self.implementation}{self.python_version.replace('.', '')}"


@dataclass(frozen=True)
class BuiltWheel:
    file: str
    requirement: str
    cmake_args: str


@dataclass(frozen=True)
class BundleManifest:
    appliance_version: str
    profile: str
    requirement: str
    target: Target
    created_at: str
    project_wheel: str
    files: tuple[FileEntry, ...]
    models: tuple[ModelRecord, ...] = ()
    built_here: tuple[BuiltWheel, ...] = ()
    format: int = field(default=FORMAT_VERSION)

    def to_json(self) -> str:
        data = asdict(self)
        data["target"]["abi"] = self.target.abi
        ordered = {"format": data.pop("format"), **data}
        return json.dumps(ordered, indent=2) + "\n"

    @property
    def total_bytes(self) -> int:
        return sum(entry.size for entry in self.files)


def parse_manifest(text: str) -> BundleManifest:
    """Read manifest.json; any missing or mistyped field is a BundleError naming it."""
    try:
        data: dict[str, Any] = json.loads(text)
        if data.get("format") != FORMAT_VERSION:
            raise BundleError(
                f"{MANIFEST_NAME} has format {data.get('format')!r}; "
                f"this version reads format {FORMAT_VERSION}"
            )
        target = data["target"]
        files = tuple(
            FileEntry(safe_relpath(f["path"]), _int(f["size"]), _digest(f["sha256"]))
            for f in data["files"]
        )
        return BundleManifest(
            appliance_version=str(data["appliance_version"]),
            profile=str(data["profile"]),
            requirement=str(data["requirement"]),
            target=Target(
                python_version=str(target["python_version"]),
                platforms=tuple(str(p) for p in target["platforms"]),
                implementation=str(target["implementation"]),
            ),
            created_at=str(data["created_at"]),
            project_wheel=safe_relpath(data["project_wheel"]),
            files=files,
            models=tuple(
                ModelRecord(
                    str(m["name"]),
                    str(m["role"]),
                    str(m["source"]),
                    tuple(safe_relpath(p) for p in m["files"]),
                )
                for m in data.get("models", [])
            ),
            built_here=tuple(
                BuiltWheel(str(b["file"]), str(b["requirement"]), str(b["cmake_args"]))
                for b in data.get("built_here", [])
            ),
        )
    except json.JSONDecodeError as exc:
        raise BundleError(f"{MANIFEST_NAME} is not valid JSON: {exc}") from None
    except KeyError as exc:
        raise BundleError(f"{MANIFEST_NAME} lacks the field {exc.args[0]!r}") from None
    except (TypeError, AttributeError) as exc:
        raise BundleError(f"{MANIFEST_NAME} is malformed: {exc}") from None


def safe_relpath(value: object) -> str:
    """A path that stays inside the bundle: relative, POSIX, no `..`, no empty parts."""
    if not isinstance(value, str) or not value:
        raise BundleError(f"{MANIFEST_NAME} lists an empty or non-text path")
    path = PurePosixPath(value)
    if path.is_absolute() or ".." in path.parts or "\\" in value or path.as_posix() != value:
        raise BundleError(f"{MANIFEST_NAME} lists {value!r}, which leaves the bundle")
    return value


def sha256_file(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def file_entry(root: Path, path: Path) -> FileEntry:
    return FileEntry(path.relative_to(root).as_posix(), path.stat().st_size, sha256_file(path))


def sums_text(files: tuple[FileEntry, ...], manifest_sha256: str) -> str:
    """`sha256sum -c` input (two spaces: text mode, which GNU sha256sum reads like binary)."""
    lines = [f"{entry.sha256}  {entry.path}" for entry in files]
    lines.append(f"{manifest_sha256}  {MANIFEST_NAME}")
    return "\n".join(lines) + "\n"


def parse_sums(text: str) -> dict[str, str]:
    """path -> sha256 from SHA256SUMS; a malformed or repeated line is a BundleError."""
    sums: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        digest, sep, name = line.partition("  ")
        if not sep:
            digest, sep, name = line.partition(" *")
        if not sep or name in sums:
            raise BundleError(f"{SUMS_NAME} line {number} is malformed or repeated")
        sums[name] = _digest(digest)
    return sums


def write_bundle_index(root: Path, manifest: BundleManifest) -> None:
    """Write manifest.json, then SHA256SUMS covering it."""
    text = manifest.to_json()
    (root / MANIFEST_NAME).write_text(text, encoding="utf-8")
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    (root / SUMS_NAME).write_text(sums_text(manifest.files, digest), encoding="utf-8")


def _digest(value: object) -> str:
    if not isinstance(value, str) or len(value) != 64 or not _is_hex(value):
        raise BundleError(f"{value!r} is not a sha256 hex digest")
    return value.lower()


def _is_hex(value: str) -> bool:
    return all(c in "0123456789abcdefABCDEF" for c in value)


def _int(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise BundleError(f"{value!r} is not a file size")
    return value
