"""Check an offline bundle before anything from it is installed.

Strict on purpose: the server installs only what was verified, so a listed file that is missing
or differs in size or sha256 fails, and so does a file the manifest does not list (a wheel slipped
into wheels/ would otherwise be installable by `pip --find-links`). Standard library only, so a
server without the appliance can run it out of the bundle's own wheel::

    PYTHONPATH=DIR/wheels/appliance-<version>-py3-none-any.whl \
        python3 -m appliance.bundle.verify DIR
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from appliance.bundle.manifest import (
    MANIFEST_NAME,
    PROJECT_NAME,
    SUMS_NAME,
    BundleError,
    BundleManifest,
    parse_manifest,
    parse_sums,
    sha256_file,
)


@dataclass(frozen=True)
class Check:
    name: str  # "manifest", "SHA256SUMS", "project wheel", "file", "unlisted", "models"
    path: str  # the file it concerns, relative to the bundle ("" for the bundle as a whole)
    ok: bool
    detail: str


@dataclass(frozen=True)
class Verification:
    bundle: Path
    manifest: BundleManifest | None
    checks: tuple[Check, ...]

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks)

    @property
    def first_failure(self) -> Check | None:
        return next((check for check in self.checks if not check.ok), None)

    def as_dict(self) -> dict[str, object]:
        summary: dict[str, object] = {"bundle": str(self.bundle), "ok": self.ok}
        if self.manifest is not None:
            summary |= {
                "appliance_version": self.manifest.appliance_version,
                "profile": self.manifest.profile,
                "requirement": self.manifest.requirement,
                "target": asdict(self.manifest.target) | {"abi": self.manifest.target.abi},
                "project_wheel": self.manifest.project_wheel,
                "files": len(self.manifest.files),
                "bytes": self.manifest.total_bytes,
            }
        return summary | {"checks": [asdict(check) for check in self.checks]}


def verify_bundle(bundle: Path) -> Verification:
    """Every check, in order; the first failing one is what an operator needs to see."""
    if not bundle.is_dir():
        return Verification(bundle, None, (Check("bundle", "", False, "is not a directory"),))
    try:
        manifest_text = (bundle / MANIFEST_NAME).read_text(encoding="utf-8")
        manifest = parse_manifest(manifest_text)
    except FileNotFoundError:
        return Verification(bundle, None, (Check("manifest", MANIFEST_NAME, False, "missing"),))
    except (BundleError, UnicodeDecodeError) as exc:
        return Verification(bundle, None, (Check("manifest", MANIFEST_NAME, False, str(exc)),))
    checks = [Check("manifest", MANIFEST_NAME, True, f"format {manifest.format}")]
    checks.append(_check_sums(bundle, manifest, manifest_text))
    checks.append(_check_project_wheel(manifest))
    checks += [
        _check_file(bundle, entry.path, entry.size, entry.sha256) for entry in manifest.files
    ]
    checks += _check_unlisted(bundle, manifest)
    checks.append(_check_models(manifest))
    return Verification(bundle, manifest, tuple(checks))


def _check_sums(bundle: Path, manifest: BundleManifest, manifest_text: str) -> Check:
    """SHA256SUMS must say exactly what the manifest says, and cover manifest.json itself."""
    try:
        sums = parse_sums((bundle / SUMS_NAME).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return Check("SHA256SUMS", SUMS_NAME, False, "missing")
    except (BundleError, UnicodeDecodeError) as exc:
        return Check("SHA256SUMS", SUMS_NAME, False, str(exc))
    manifest_digest = hashlib.sha256(manifest_text.encode("utf-8")).hexdigest()
    if sums.pop(MANIFEST_NAME, None) != manifest_digest:
        return Check("SHA256SUMS", MANIFEST_NAME, False, "sha256 differs from SHA256SUMS")
    listed = {entry.path: entry.sha256 for entry in manifest.files}
    for path in sorted(set(sums) | set(listed)):
        if sums.get(path) != listed.get(path):
            return Check("SHA256SUMS", path, False, f"{SUMS_NAME} and {MANIFEST_NAME} disagree")
    return Check("SHA256SUMS", SUMS_NAME, True, f"agrees with {MANIFEST_NAME}")


def _check_project_wheel(manifest: BundleManifest) -> Check:
    wheel = manifest.project_wheel
    name = wheel.rsplit("/", 1)[-1]
    expected = re.compile(rf"{PROJECT_NAME}-{re.escape(manifest.appliance_version)}-.+\.whl")
    if not wheel.startswith("wheels/") or not expected.fullmatch(name):
        return Check(
            "project wheel",
            wheel,
            False,
            f"is not the wheel of {PROJECT_NAME} {manifest.appliance_version}",
        )
    if wheel not in {entry.path for entry in manifest.files}:
        return Check("project wheel", wheel, False, "is not among the listed files")
    return Check("project wheel", wheel, True, f"{PROJECT_NAME} {manifest.appliance_version}")


def _check_file(bundle: Path, relative: str, size: int, sha256: str) -> Check:
    path = bundle / relative
    if path.is_symlink() or (path.exists() and not path.is_file()):
        return Check("file", relative, False, "is not a plain file")
    if not path.is_file():
        return Check("file", relative, False, "missing")
    actual_size = path.stat().st_size
    if actual_size != size:
        return Check("file", relative, False, f"size {actual_size}, manifest says {size}")
    if sha256_file(path) != sha256:
        return Check("file", relative, False, "sha256 mismatch")
    return Check("file", relative, True, "ok")


def _check_unlisted(bundle: Path, manifest: BundleManifest) -> list[Check]:
    """Anything on disk that the manifest does not name fails, links and odd entries included."""
    allowed = {entry.path for entry in manifest.files} | {MANIFEST_NAME, SUMS_NAME}
    found: list[Check] = []
    for directory, dirnames, filenames in os.walk(bundle):
        base = Path(directory)
        for name in sorted(filenames) + sorted(d for d in dirnames if (base / d).is_symlink()):
            relative = (base / name).relative_to(bundle).as_posix()
            if relative not in allowed:
                found.append(Check("unlisted", relative, False, "is not listed in the manifest"))
        dirnames[:] = sorted(d for d in dirnames if not (base / d).is_symlink())
    return found or [Check("unlisted", "", True, "every file on disk is listed")]


def _check_models(manifest: BundleManifest) -> Check:
    listed = {entry.path for entry in manifest.files}
    for model in manifest.models:
        for path in model.files:
            if path not in listed:
                return Check("models", path, False, f"model {model.name} names an unlisted file")
    return Check("models", "", True, f"{len(manifest.models)} model(s)")


def failure_message(result: Verification) -> str:
    """One line: the bundle, the first bad file and what is wrong with it."""
    bad = result.first_failure
    if bad is None:
        return f"bundle {result.bundle} verified"
    where = f"{bad.path}: " if bad.path else ""
    return f"bundle {result.bundle} failed verification: {where}{bad.detail}"


def main(argv: list[str] | None = None) -> int:
    """`python -m appliance.bundle.verify DIR [--json]` for servers without the appliance."""
    args = list(sys.argv[1:] if argv is None else argv)
    as_json = "--json" in args
    paths = [a for a in args if a != "--json"]
    if len(paths) != 1:
        print("usage: python -m appliance.bundle.verify DIR [--json]", file=sys.stderr)
        return 2
    result = verify_bundle(Path(paths[0]))
    if as_json:
        print(json.dumps(result.as_dict()))
    if not result.ok:
        print(f"Error: {failure_message(result)}", file=sys.stderr)
        return 1
    if not as_json:
        print(failure_message(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
