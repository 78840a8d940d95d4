"""`appliance bundle build`: wheels for the target Python, model files, manifest, checksums.

Runs on a connected machine from a source checkout. pip does the packaging work (as a subprocess
of this interpreter, with the user's pip configuration and cache): `pip wheel --no-deps` builds
the appliance's own wheel from the checkout, and `pip download --only-binary=:all:` with the
target's `--python-version/--platform/--implementation/--abi` resolves and fetches every
dependency of the profile for the server rather than for this machine.

Everything is written into a hidden staging folder beside `--out` and renamed into place only
when complete, so a build that fails or is interrupted leaves no half bundle that could be
mistaken for a good one. An `--out` that already holds anything is refused.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from appliance.bundle.manifest import (
    MODELS_DIR,
    PROJECT_NAME,
    WHEELS_DIR,
    BuiltWheel,
    BundleError,
    BundleManifest,
    FileEntry,
    Target,
    file_entry,
    write_bundle_index,
)
from appliance.bundle.models import bundle_models
from appliance.bundle.target import check_host_builds_for, platform_tags

PROFILES = ("core", "demo", "gpu")
EXTRAS: dict[str, tuple[str, ...]] = {"core": (), "demo": ("demo",), "gpu": ("gpu",)}

Progress = Callable[[str], None]


@dataclass(frozen=True)
class BuildRequest:
    out: Path
    profile: str
    target: Target
    source: Path  # the source checkout whose wheel goes in
    models_from: Path | None = None
    find_links: tuple[Path, ...] = ()  # folders of wheels built elsewhere (e.g. CUDA llama-cpp)
    build: tuple[str, ...] = ()  # requirements compiled here with `pip wheel`
    constraints: tuple[Path, ...] = ()  # pip constraint files (e.g. the versions tested)


@dataclass(frozen=True)
class BuildResult:
    out: Path
    manifest: BundleManifest
    seconds: float

    def as_dict(self) -> dict[str, object]:
        return {
            "out": str(self.out),
            "profile": self.manifest.profile,
            "requirement": self.manifest.requirement,
            "appliance_version": self.manifest.appliance_version,
            "project_wheel": self.manifest.project_wheel,
            "python_version": self.manifest.target.python_version,
            "platforms": list(self.manifest.target.platforms),
            "files": len(self.manifest.files),
            "wheels": sum(1 for f in self.manifest.files if f.path.startswith(f"{WHEELS_DIR}/")),
            "models": [model.name for model in self.manifest.models],
            "bytes": self.manifest.total_bytes,
            "seconds": round(self.seconds, 1),
        }


def requirement_for(profile: str) -> str:
    extras = EXTRAS[profile]
    return f"{PROJECT_NAME}[{','.join(extras)}]" if extras else PROJECT_NAME


def build_bundle(request: BuildRequest, progress: Progress = lambda _: None) -> BuildResult:
    started = time.monotonic()
    _check_request(request)
    out = request.out.absolute()
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.parent / f".{out.name}.partial-{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    try:
        manifest = _fill(staging, request, progress)
        try:
            staging.rename(out)  # replaces an empty folder; fails on one that filled up meanwhile
        except OSError as exc:
            raise BundleError(f"cannot move the finished bundle to {out}: {exc.strerror}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return BuildResult(out, manifest, time.monotonic() - started)


def _check_request(request: BuildRequest) -> None:
    """Refuse what cannot work before any slow step runs."""
    if request.profile not in PROFILES:
        raise BundleError(f"unknown profile {request.profile!r}; choose one of {PROFILES}")
    out = request.out
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise BundleError(
            f"{out} is not empty; a bundle is written only into a new or empty folder"
        )
    if request.models_from is not None and request.profile != "gpu":
        raise BundleError("--models-from is for the gpu profile only")
    if request.profile == "gpu" and request.models_from is None:
        raise BundleError("the gpu profile needs --models-from DIR (the clinic's model folders)")
    if request.models_from is not None and not request.models_from.is_dir():
        raise BundleError(f"--models-from {request.models_from} is not a folder")
    for folder in request.find_links:
        if not folder.is_dir():
            raise BundleError(f"--find-links {folder} is not a folder")
    for constraint in request.constraints:
        if not constraint.is_file():
            raise BundleError(f"--constraint {constraint} is not a file")
    if not (request.source / "pyproject.toml").is_file():
        raise BundleError(f"{request.source} is not a source checkout of the appliance")
    if request.build:
        check_host_builds_for(request.target)


def _fill(root: Path, request: BuildRequest, progress: Progress) -> BundleManifest:
    wheels = root / WHEELS_DIR
    wheels.mkdir()
    project_wheel = _build_project_wheel(request.source, wheels, progress)
    built_dir = root / ".built"
    built = _build_from_source(request, built_dir, progress)
    _download(request, wheels, project_wheel, (built_dir, *request.find_links), progress)
    shutil.rmtree(built_dir, ignore_errors=True)
    models = bundle_models(request.profile, root, request.models_from, progress)
    progress("hashing every file")
    files = tuple(
        file_entry(root, path)
        for top in (WHEELS_DIR, MODELS_DIR)
        for path in sorted((root / top).rglob("*"))
        if path.is_file()
    )
    _check_wheels_present(files, built)
    manifest = BundleManifest(
        appliance_version=project_wheel.name.split("-")[1],
        profile=request.profile,
        requirement=requirement_for(request.profile),
        target=request.target,
        created_at=datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        project_wheel=f"{WHEELS_DIR}/{project_wheel.name}",
        files=files,
        models=models,
        built_here=built,
    )
    write_bundle_index(root, manifest)
    return manifest


def _build_project_wheel(source: Path, wheels: Path, progress: Progress) -> Path:
    progress(f"building the {PROJECT_NAME} wheel from {source}")
    _pip(["wheel", "--no-deps", "--wheel-dir", str(wheels), str(source)])
    found = sorted(wheels.glob(f"{PROJECT_NAME}-*.whl"))
    if len(found) != 1:
        raise BundleError(f"pip wheel made {len(found)} {PROJECT_NAME} wheels, expected one")
    return found[0]


def _build_from_source(
    request: BuildRequest, built_dir: Path, progress: Progress
) -> tuple[BuiltWheel, ...]:
    """`--build REQ`: compile here with `pip wheel`. With CMAKE_ARGS set (a CUDA llama-cpp),
    pip's wheel cache is bypassed: it is keyed by the source, not by the build flags, and would
    hand back an earlier CPU-only build as if it were the CUDA one."""
    built: list[BuiltWheel] = []
    cmake_args = os.environ.get("CMAKE_ARGS", "")
    for requirement in request.build:
        progress(f"compiling {requirement} with pip wheel (CMAKE_ARGS={cmake_args!r})")
        if request.profile == "gpu" and "llama" in requirement and "CUDA" not in cmake_args:
            progress("warning: CMAKE_ARGS has no -DGGML_CUDA=on; this llama-cpp runs on CPU only")
        before = set(built_dir.glob("*.whl"))
        args = ["wheel", "--no-deps", "--wheel-dir", str(built_dir)]
        args += ["--no-cache-dir"] if cmake_args else []
        args += _constraint_args(request)
        _pip([*args, requirement])
        for wheel in sorted(set(built_dir.glob("*.whl")) - before):
            built.append(BuiltWheel(f"{WHEELS_DIR}/{wheel.name}", requirement, cmake_args))
    return tuple(built)


def _download(
    request: BuildRequest,
    wheels: Path,
    project_wheel: Path,
    find_links: tuple[Path, ...],
    progress: Progress,
) -> None:
    target = request.target
    progress(
        f"downloading wheels for {requirement_for(request.profile)} "
        f"(Python {target.python_version}, {', '.join(target.platforms)})"
    )
    args = ["download", "--only-binary=:all:", "--dest", str(wheels)]
    args += ["--python-version", target.python_version, "--implementation", target.implementation]
    args += ["--abi", target.abi]
    for tag in platform_tags(target):
        args += ["--platform", tag]
    for folder in find_links:
        if folder.is_dir():
            args += ["--find-links", str(folder)]
    args += _constraint_args(request)
    extras = EXTRAS[request.profile]
    _pip([*args, f"{project_wheel}[{','.join(extras)}]" if extras else str(project_wheel)])


def _constraint_args(request: BuildRequest) -> list[str]:
    return [arg for path in request.constraints for arg in ("--constraint", str(path))]


def _check_wheels_present(files: tuple[FileEntry, ...], built: tuple[BuiltWheel, ...]) -> None:
    names = {entry.path for entry in files}
    for wheel in built:
        if wheel.file not in names:
            raise BundleError(
                f"{wheel.file} was compiled for {wheel.requirement} but pip did not take it "
                "(does its version satisfy the appliance's requirement?)"
            )


def _pip(args: list[str]) -> None:
    """pip as a subprocess of this interpreter; a failure becomes pip's own ERROR line."""
    command = [sys.executable, "-m", "pip", "--disable-pip-version-check", *args]
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        raise BundleError(
            f"pip {args[0]} failed: {_pip_reason(completed.stderr, completed.stdout)}"
        )


def _pip_reason(stderr: str, stdout: str) -> str:
    lines = [line.strip() for line in (stderr + "\n" + stdout).splitlines() if line.strip()]
    errors = [line.removeprefix("ERROR: ") for line in lines if line.startswith("ERROR:")]
    reason = errors[-1] if errors else (lines[-1] if lines else "no output")
    if match := re.search(r"No matching distribution found for (\S+)", reason):
        reason += (
            f" (no wheel of {match.group(1)} for the target; if it ships only as source, "
            "compile it on a machine like the target with --build, or pass its wheel with "
            "--find-links)"
        )
    return reason
