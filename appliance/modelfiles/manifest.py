"""`models/manifest.toml` as immutable records."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from appliance.paths import manifest_path


class ModelError(Exception):
    """A model that is missing, corrupted or cannot be installed; the message is one line."""


@dataclass(frozen=True)
class ModelFile:
    path: str
    sha256: str
    size: int


@dataclass(frozen=True)
class SourcePart:
    package: str
    module: str
    path: str
    sha256: str


@dataclass(frozen=True)
class ModelSource:
    kind: Literal["package", "parts"]
    package: str = ""
    module: str = ""
    path: str = ""
    parts: tuple[SourcePart, ...] = ()


@dataclass(frozen=True)
class ModelEntry:
    name: str
    role: str
    profile: str
    format: str
    description: str
    source: ModelSource
    files: tuple[ModelFile, ...]


def load_manifest(path: Path | None = None) -> tuple[ModelEntry, ...]:
    path = path or manifest_path()
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
        return tuple(_entry(raw) for raw in data.get("model", []))
    except FileNotFoundError:
        raise ModelError(f"model manifest {path} does not exist") from None
    except (tomllib.TOMLDecodeError, KeyError, TypeError, ValueError) as exc:
        raise ModelError(f"model manifest {path} is invalid: {exc}") from None


def models_for_profile(profile: str, path: Path | None = None) -> tuple[ModelEntry, ...]:
    entries = tuple(entry for entry in load_manifest(path) if entry.profile == profile)
    if not entries:
        raise ModelError(f"the manifest lists no models for profile {profile!r}")
    return entries


def _entry(raw: dict[str, Any]) -> ModelEntry:
    source = raw["source"]
    kind = source["kind"]
    if kind not in ("package", "parts"):
        raise ValueError(f"unknown source kind {kind!r} for model {raw['name']!r}")
    files = tuple(ModelFile(f["path"], f["sha256"].lower(), int(f["size"])) for f in raw["files"])
    if kind == "parts" and len(files) != 1:
        raise ValueError(f"model {raw['name']!r} assembles parts into exactly one file")
    for file in files:
        if Path(file.path).is_absolute() or ".." in Path(file.path).parts:
            raise ValueError(f"model file path {file.path!r} must stay inside the model folder")
    return ModelEntry(
        name=raw["name"],
        role=raw["role"],
        profile=raw["profile"],
        format=raw.get("format", ""),
        description=raw.get("description", ""),
        source=ModelSource(
            kind=kind,
            package=source.get("package", ""),
            module=source.get("module", ""),
            path=source.get("path", ""),
            parts=tuple(SourcePart(**part) for part in source.get("parts", [])),
        ),
        files=files,
    )
