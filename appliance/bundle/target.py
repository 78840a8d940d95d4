"""The interpreter and platform a bundle's wheels are for, as pip's download options.

pip 23 does not widen `--platform manylinux_2_35_x86_64` to the older manylinux tags that such a
system also runs (it does so only for manylinux2014/2010), so the bundle spells every tag out: a
wheel tagged manylinux_2_17 is as good on a glibc 2.35 server as one tagged manylinux_2_35.
"""

from __future__ import annotations

import platform
import re
import sys

from appliance.bundle.manifest import BundleError, Target

# Ubuntu 22.04 ships glibc 2.35, Debian 12 2.36, Ubuntu 24.04 2.39: wheels for 2.35 run on all.
DEFAULT_PLATFORMS = ("manylinux_2_35_x86_64",)

_MANYLINUX = re.compile(r"manylinux_(\d+)_(\d+)_([a-z0-9_]+)")
_LEGACY = re.compile(r"(manylinux1|manylinux2010|manylinux2014)_([a-z0-9_]+)")
_LEGACY_GLIBC = {"manylinux1": 5, "manylinux2010": 12, "manylinux2014": 17}
_PLATFORM = re.compile(r"[a-z0-9_]+")
_PYTHON = re.compile(r"3\.\d{1,2}")


def host_python_version() -> str:
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def make_target(python_version: str | None, platforms: tuple[str, ...]) -> Target:
    version = python_version or host_python_version()
    if not _PYTHON.fullmatch(version):
        raise BundleError(f"--python-version {version!r} must look like 3.11")
    for name in platforms:
        if not _PLATFORM.fullmatch(name):
            raise BundleError(f"--platform {name!r} is not a wheel platform tag")
    return Target(python_version=version, platforms=platforms or DEFAULT_PLATFORMS)


def platform_tags(target: Target) -> tuple[str, ...]:
    """Every platform tag the target runs, best first. A manylinux platform also admits
    `linux_<arch>`: wheels that `pip wheel` compiles here carry that tag, and PyPI never serves
    one, so it lets in exactly the wheels built for this bundle (`--build`, `--find-links`)."""
    tags: list[str] = []
    for name in target.platforms:
        glibc_arch = _glibc_and_arch(name)
        if glibc_arch is None:
            tags.append(name)
            continue
        minor, arch = glibc_arch
        tags += [f"manylinux_2_{m}_{arch}" for m in range(minor, 4, -1)]
        tags += [
            f"{legacy}_{arch}"
            for legacy, floor in sorted(_LEGACY_GLIBC.items(), key=lambda item: -item[1])
            if floor <= minor
        ]
        tags.append(f"linux_{arch}")
    return tuple(dict.fromkeys(tags))


def check_host_builds_for(target: Target) -> None:
    """`--build` compiles with this interpreter on this machine: it must be the target's kind."""
    arch = platform.machine().lower()
    arches = {ga[1] for ga in map(_glibc_and_arch, target.platforms) if ga is not None}
    arches |= {p.removeprefix("linux_") for p in target.platforms if p.startswith("linux_")}
    if target.python_version != host_python_version() or arch not in arches:
        raise BundleError(
            f"--build compiles for this machine (Python {host_python_version()}, {arch}), "
            f"not for the target (Python {target.python_version}, {', '.join(target.platforms)}); "
            "build on a machine like the target, or pass its wheels with --find-links"
        )


def _glibc_and_arch(name: str) -> tuple[int, str] | None:
    if match := _MANYLINUX.fullmatch(name):
        major, minor, arch = match.groups()
        if major != "2":
            raise BundleError(f"--platform {name!r}: only glibc 2.x manylinux tags exist")
        return int(minor), arch
    if match := _LEGACY.fullmatch(name):
        legacy, arch = match.groups()
        return _LEGACY_GLIBC[legacy], arch
    return None
