from __future__ import annotations

import os
from pathlib import Path

import pytest

from appliance.settings import SettingsError, load_settings, read_secret_file


def test_defaults_come_from_the_packaged_config_file(tmp_path: Path) -> None:
    settings = load_settings()
    assert settings.environment == "development"
    assert settings.data_dir == tmp_path / "var"  # relative to where the command runs
    assert settings.clinic.timezone == "UTC"
    assert settings.uses_embedded_database


def test_environment_variables_override_the_config_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APPLIANCE_WEB__PORT", "9123")
    monkeypatch.setenv("APPLIANCE_CLINIC__NAME", "Harbour Counselling")
    settings = load_settings()
    assert settings.web.port == 9123
    assert settings.clinic.name == "Harbour Counselling"


def test_data_dir_flag_beats_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("APPLIANCE_DATA_DIR", str(tmp_path / "from-env"))
    assert load_settings().data_dir == tmp_path / "from-env"
    assert load_settings(data_dir=tmp_path / "from-flag").data_dir == tmp_path / "from-flag"


def test_instance_file_in_the_data_dir_overrides_defaults_but_not_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    data_dir = tmp_path / "instance"
    data_dir.mkdir()
    (data_dir / "appliance.toml").write_text(
        '[clinic]\nname = "Lakeside"\ntimezone = "Europe/Berlin"\n'
    )
    settings = load_settings(data_dir=data_dir)
    assert (settings.clinic.name, settings.clinic.timezone) == ("Lakeside", "Europe/Berlin")
    monkeypatch.setenv("APPLIANCE_CLINIC__NAME", "From Env")
    assert load_settings(data_dir=data_dir).clinic.name == "From Env"


def test_an_unknown_time_zone_is_refused_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APPLIANCE_CLINIC__TIMEZONE", "Mars/Olympus")
    with pytest.raises(SettingsError, match=r"clinic\.timezone: .*unknown time zone") as info:
        load_settings()
    assert "\n" not in str(info.value)


def test_unknown_keys_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APPLIANCE_WEB__PROT", "1")
    with pytest.raises(SettingsError, match=r"web\.prot: Extra inputs"):
        load_settings()


@pytest.mark.parametrize(
    ("env", "reason"),
    [
        ({"APPLIANCE_DEBUG": "true"}, "debug must be off"),
        ({"APPLIANCE_WEB__COOKIE_SECURE": "false"}, "cookie_secure"),
        ({"APPLIANCE_DATABASE__URL": ""}, "embedded PostgreSQL is for demos"),
    ],
)
def test_production_refuses_insecure_defaults(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], reason: str
) -> None:
    secure = {
        "APPLIANCE_ENVIRONMENT": "production",
        "APPLIANCE_WEB__COOKIE_SECURE": "true",
        "APPLIANCE_DATABASE__URL": "postgresql+psycopg://appliance@/appliance?host=/run/postgresql",
    }
    for key, value in {**secure, **env}.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(SettingsError, match=reason):
        load_settings()


def test_production_starts_with_secure_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APPLIANCE_ENVIRONMENT", "production")
    monkeypatch.setenv("APPLIANCE_WEB__COOKIE_SECURE", "true")
    monkeypatch.setenv("APPLIANCE_DATABASE__URL", "postgresql+psycopg://appliance@/appliance")
    settings = load_settings()
    assert settings.environment == "production"
    assert not settings.uses_embedded_database


def test_the_database_url_can_come_from_a_secret_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = tmp_path / "db-url"
    secret.write_text("postgresql+psycopg://appliance:s3cret@db.local/appliance\n")
    secret.chmod(0o600)
    monkeypatch.setenv("APPLIANCE_DATABASE__URL_FILE", str(secret))
    settings = load_settings()
    assert (
        settings.external_database_url()
        == "postgresql+psycopg://appliance:s3cret@db.local/appliance"
    )
    assert "s3cret" not in repr(settings)


def test_a_secret_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("x")
    os.chmod(secret, 0o644)
    with pytest.raises(SettingsError, match="chmod 600"):
        read_secret_file(secret)
