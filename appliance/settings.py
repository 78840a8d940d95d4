"""Configuration: one immutable `Settings` object, built once per process and passed explicitly.

Precedence, lowest first: the packaged defaults (`config/appliance.toml`), the instance file
(`<data_dir>/appliance.toml` or `$APPLIANCE_CONFIG`), `APPLIANCE_*` environment variables
(nested keys joined by `__`), then explicit overrides such as `--data-dir`. Secrets never sit
in settings: settings name the files that hold them, read by `read_secret_file`.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any, Literal

from pydantic import field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from appliance.errors import describe_validation_error
from appliance.paths import bundled_resource, source_checkout_root
from appliance.settings_sections import (
    AuthSettings,
    BackupSettings,
    ChatSettings,
    ClinicSettings,
    DatabaseSettings,
    DiarizationSettings,
    JobsSettings,
    LlmSettings,
    LoggingSettings,
    MetricsSettings,
    RecordingsSettings,
    ReportsSettings,
    RetrievalSettings,
    SecuritySettings,
    TranscriptionSettings,
    WebSettings,
    empty_to_none,
)

__all__ = [
    "ENV_PREFIX",
    "INSTANCE_CONFIG_NAME",
    "AuthSettings",
    "BackupSettings",
    "ChatSettings",
    "ClinicSettings",
    "DatabaseSettings",
    "DiarizationSettings",
    "JobsSettings",
    "LlmSettings",
    "LoggingSettings",
    "MetricsSettings",
    "RecordingsSettings",
    "ReportsSettings",
    "RetrievalSettings",
    "SecuritySettings",
    "Settings",
    "SettingsError",
    "TranscriptionSettings",
    "WebSettings",
    "default_config_path",
    "load_settings",
    "read_secret_file",
]

ENV_PREFIX = "APPLIANCE_"
INSTANCE_CONFIG_NAME = "appliance.toml"


class SettingsError(ValueError):
    """Configuration that the appliance refuses to run with; the message is one line."""


class Settings(BaseSettings):
    """Everything the appliance is configured with. Immutable; build it with `load_settings`."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    environment: Literal["development", "production"] = "development"
    data_dir: Path = Path("var")
    models_dir: Path | None = None
    debug: bool = False
    clinic: ClinicSettings = ClinicSettings()
    database: DatabaseSettings = DatabaseSettings()
    web: WebSettings = WebSettings()
    security: SecuritySettings = SecuritySettings()
    auth: AuthSettings = AuthSettings()
    recordings: RecordingsSettings = RecordingsSettings()
    jobs: JobsSettings = JobsSettings()
    transcription: TranscriptionSettings = TranscriptionSettings()
    diarization: DiarizationSettings = DiarizationSettings()
    retrieval: RetrievalSettings = RetrievalSettings()
    llm: LlmSettings = LlmSettings()
    chat: ChatSettings = ChatSettings()
    reports: ReportsSettings = ReportsSettings()
    logging: LoggingSettings = LoggingSettings()
    backup: BackupSettings = BackupSettings()
    metrics: MetricsSettings = MetricsSettings()

    _none_if_empty = field_validator("models_dir", mode="before")(empty_to_none)

    @field_validator("data_dir")
    @classmethod
    def _absolute_data_dir(cls, value: Path) -> Path:
        return value.expanduser().absolute()

    @model_validator(mode="after")
    def _refuse_insecure_production(self) -> Settings:
        """Development defaults are convenient; in production each of them is a hole."""
        if self.environment != "production":
            return self
        if self.debug:
            raise ValueError("debug must be off in production")
        if not self.web.cookie_secure:
            raise ValueError("web.cookie_secure must be true in production (HTTPS only)")
        if self.database.url is None and self.database.url_file is None:
            raise ValueError(
                "production needs database.url or database.url_file "
                "(the embedded PostgreSQL is for demos and tests)"
            )
        return self

    # Derived locations. Properties, not stored fields, so they can never disagree with data_dir.

    @property
    def keys_dir(self) -> Path:
        return self.data_dir / "keys"

    @property
    def kek_path(self) -> Path:
        return self.security.kek_file or self.keys_dir / "kek.key"

    @property
    def secret_key_path(self) -> Path:
        return self.security.secret_key_file or self.keys_dir / "session.key"

    @property
    def audit_key_path(self) -> Path:
        """Ed25519 key that signs audit checkpoints; deliberately not the KEK."""
        return self.security.audit_key_file or self.keys_dir / "audit-signing.key"

    @property
    def pgdata_dir(self) -> Path:
        return self.data_dir / "pgdata"

    @property
    def files_dir(self) -> Path:
        """Encrypted per-patient files (recordings, evidence), one folder per patient id."""
        return self.data_dir / "files"

    @property
    def queue_path(self) -> Path:
        """Huey's SQLite file: it only wakes workers; the jobs table is the truth."""
        return self.data_dir / "queue.sqlite3"

    @property
    def backup_dir(self) -> Path:
        """Where backup archives go (`[backup] dir`, default <data_dir>/backups)."""
        configured = self.backup.dir
        return configured.expanduser().absolute() if configured else self.data_dir / "backups"

    @property
    def erasure_journal_path(self) -> Path:
        """Append-only list of erased patient ids, outside the database and every backup, so
        that a restore can erase them again (see appliance/backup/journal.py)."""
        return self.data_dir / "erasures.jsonl"

    @property
    def marker_path(self) -> Path:
        """Written last by `appliance init`: its presence means the data dir is complete."""
        return self.data_dir / ".appliance"

    @property
    def resolved_models_dir(self) -> Path:
        if self.models_dir is not None:
            return self.models_dir.expanduser().absolute()
        root = source_checkout_root()
        return root / "models" if root is not None else self.data_dir / "models"

    @property
    def uses_embedded_database(self) -> bool:
        return self.database.url is None and self.database.url_file is None

    def external_database_url(self, *, admin: bool = False) -> str | None:
        """The configured server URL (read from its file when it carries a password).
        `admin` asks for the owner's URL, falling back to the app's."""
        if admin and self.database.admin_url_file is not None:
            return read_secret_file(self.database.admin_url_file).decode().strip()
        if admin and self.database.admin_url is not None:
            return self.database.admin_url
        if self.database.url_file is not None:
            return read_secret_file(self.database.url_file).decode().strip()
        return self.database.url


def read_secret_file(path: Path) -> bytes:
    """Read a secret, refusing files that other users could read or that are missing."""
    try:
        info = path.stat()
    except FileNotFoundError:
        raise SettingsError(f"secret file {path} does not exist") from None
    if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise SettingsError(
            f"secret file {path} is readable by other users "
            f"(mode {stat.S_IMODE(info.st_mode):04o}); run: chmod 600 {path}"
        )
    return path.read_bytes()


def _settings_class(toml_files: list[Path]) -> type[Settings]:
    """A Settings subclass whose file sources are the given TOML files (later ones win)."""

    class _LoadedSettings(Settings):
        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            files = tuple(
                TomlConfigSettingsSource(settings_cls, toml_file=path)
                for path in reversed(toml_files)
            )
            return (init_settings, env_settings, *files)

    return _LoadedSettings


def default_config_path() -> Path:
    return bundled_resource("config/appliance.toml", "appliance.toml")


def load_settings(data_dir: Path | str | None = None, **overrides: Any) -> Settings:
    """Build the settings for this process. Raises SettingsError with a one-line reason."""
    if data_dir is not None:
        overrides["data_dir"] = Path(data_dir)
    files = [default_config_path()]
    instance = _instance_config_path(overrides.get("data_dir"))
    if instance is not None:
        files.append(instance)
    try:
        return _settings_class(files)(**overrides)
    except ValueError as exc:  # pydantic's ValidationError is a ValueError
        raise SettingsError(describe_validation_error(exc, "invalid configuration")) from None


def _instance_config_path(data_dir_override: Path | None) -> Path | None:
    explicit = os.environ.get(f"{ENV_PREFIX}CONFIG")
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise SettingsError(f"{ENV_PREFIX}CONFIG names {path}, which is not a file")
        return path
    data_dir = data_dir_override or os.environ.get(f"{ENV_PREFIX}DATA_DIR")
    if data_dir is None:
        data_dir = _default_data_dir()
    candidate = Path(data_dir).expanduser().absolute() / INSTANCE_CONFIG_NAME
    return candidate if candidate.is_file() else None


def _default_data_dir() -> str:
    import tomllib

    with default_config_path().open("rb") as handle:
        return str(tomllib.load(handle).get("data_dir", "var"))
