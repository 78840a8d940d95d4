"""Configuration: one immutable `Settings` object, built once per process and passed explicitly.

Precedence, lowest first: the packaged defaults (`config/appliance.toml`), the instance file
(`<data_dir>/appliance.toml` or `$APPLIANCE_CONFIG`), `APPLIANCE_*` environment variables
(nested keys joined by `__`), then explicit overrides such as `--data-dir`. Secrets never sit
in settings: settings name the files that hold them, read by `read_secret_file`.
"""

from __future__ import annotations

import os
import stat
import zoneinfo
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from appliance.errors import describe_validation_error
from appliance.paths import bundled_resource, source_checkout_root

ENV_PREFIX = "APPLIANCE_"
INSTANCE_CONFIG_NAME = "appliance.toml"


class SettingsError(ValueError):
    """Configuration that the appliance refuses to run with; the message is one line."""


def _empty_to_none(value: Any) -> Any:
    return None if value == "" else value


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ClinicSettings(_Section):
    name: str = Field(default="Demo Clinic", min_length=1, max_length=200)
    timezone: str = "UTC"

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value


class DatabaseSettings(_Section):
    url: str | None = None
    url_file: Path | None = None
    # The owner role, for `appliance init` (migrations, grants). Empty: the same as url.
    admin_url: str | None = None
    admin_url_file: Path | None = None
    name: str = Field(default="appliance", pattern=r"^[a-z_][a-z0-9_]{0,62}$")
    # The role the appliance runs as on the embedded server (no UPDATE/DELETE on the audit log).
    app_role: str = Field(default="appliance_app", pattern=r"^[a-z_][a-z0-9_]{0,62}$")

    _none_if_empty = field_validator(
        "url", "url_file", "admin_url", "admin_url_file", mode="before"
    )(_empty_to_none)


class WebSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    cookie_secure: bool = False
    # HTTPS served by the web process itself (the certificate from the playbook's local CA),
    # so no proxy sits between the phones on the LAN and the appliance. Both or neither.
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None

    _none_if_empty = field_validator("tls_cert_file", "tls_key_file", mode="before")(_empty_to_none)

    @model_validator(mode="after")
    def _tls_pair(self) -> WebSettings:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("web.tls_cert_file and web.tls_key_file go together")
        return self


class SecuritySettings(_Section):
    kek_file: Path | None = None
    secret_key_file: Path | None = None
    audit_key_file: Path | None = None

    _none_if_empty = field_validator(
        "kek_file", "secret_key_file", "audit_key_file", mode="before"
    )(_empty_to_none)


class AuthSettings(_Section):
    session_idle_minutes: int = Field(default=30, ge=1, le=24 * 60)
    session_absolute_hours: int = Field(default=12, ge=1, le=24 * 30)
    login_window_minutes: int = Field(default=15, ge=1, le=24 * 60)
    max_failures_per_account_and_ip: int = Field(default=5, ge=1)
    max_failures_per_ip: int = Field(default=30, ge=1)
    require_totp_for_admin: bool = True


class RecordingsSettings(_Section):
    max_upload_mb: int = Field(default=2048, ge=1, le=64 * 1024)
    max_duration_minutes: int = Field(default=240, ge=1, le=24 * 60)


class JobsSettings(_Section):
    # A running job holds a lease; a worker that dies stops renewing it, and the sweep puts the
    # job back in the queue once it has expired. Stages renew it as they report progress.
    lease_seconds: int = Field(default=120, ge=1, le=24 * 3600)
    # Attempts before a job is dead (shown in the console with a retry button).
    max_attempts: int = Field(default=5, ge=1, le=100)
    # Wait before retry n: backoff_seconds * 2**(n-1), capped at an hour.
    backoff_seconds: int = Field(default=10, ge=0, le=3600)
    # Jobs a worker process runs at once (threads).
    worker_threads: int = Field(default=1, ge=1, le=64)
    # How often the worker re-queues jobs whose lease expired.
    sweep_seconds: int = Field(default=30, ge=1, le=3600)


class TranscriptionSettings(_Section):
    # A model name from models/manifest.toml (its folder under models_dir).
    model: str = Field(default="whisper-tiny-en", min_length=1)
    # auto: cuda when CTranslate2 sees a GPU, else cpu.
    device: Literal["auto", "cpu", "cuda"] = "auto"
    # auto: int8 on cpu, float16 on cuda.
    compute_type: Literal["auto", "int8", "int8_float16", "float16", "float32"] = "auto"
    # CPU threads for CTranslate2 (0: its default, one per core).
    cpu_threads: int = Field(default=0, ge=0, le=256)
    beam_size: int = Field(default=5, ge=1, le=20)
    # "auto" detects the language (stored with the transcript); else an ISO code such as "he".
    language: str = Field(default="auto", pattern=r"^(auto|[a-z]{2,3})$")
    # Skip non-speech with faster-whisper's Silero VAD (fewer hallucinations in silence).
    vad_filter: bool = True
    # faster-whisper's BatchedInferencePipeline (VAD-cut chunks decoded in batches). Measured
    # on a 2-core CPU it is 2.1-2.4x faster than the sequential decoder on a 284 s recording
    # (16.8 s against 35.2-40.1 s) at a similar WER; on CUDA it is the library's fast path.
    batched: bool = True
    batch_size: int = Field(default=16, ge=1, le=256)


class DiarizationSettings(_Section):
    # embedded: Silero VAD + Resemblyzer + clustering (ships with the demo profile).
    # pyannote: pyannote.audio from the local folder of the manifest model `pyannote_model`.
    backend: Literal["embedded", "pyannote"] = "embedded"
    pyannote_model: str = "pyannote-community-1"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    max_speakers: int = Field(default=4, ge=1, le=20)
    # Cosine similarity to the therapist's enrolled voiceprint above which a speaker is the
    # therapist (Resemblyzer: the same voice scores about 0.8-0.95, different voices below 0.7).
    therapist_similarity: float = Field(default=0.72, ge=0.0, le=1.0)


class RetrievalSettings(_Section):
    # A model name from models/manifest.toml (its folder under models_dir). Changing it
    # re-embeds every chunk in the background; the old vectors serve until that is complete.
    embedder: str = Field(default="all-minilm-l6-v2", min_length=1)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    batch_size: int = Field(default=32, ge=1, le=1024)
    # Passages returned per question, after fusing vector and lexical ranks.
    results: int = Field(default=5, ge=1, le=50)
    # Nearest chunks by vector taken into the fusion (exact search over the patient's rows).
    vector_candidates: int = Field(default=50, ge=1, le=1000)
    # Reciprocal rank fusion constant: score = sum of 1 / (rrf_k + rank).
    rrf_k: int = Field(default=60, ge=1, le=1000)


class LlmSettings(_Section):
    # `appliance llm`: the one process that loads the chat model; the web process streams from
    # it over loopback HTTP and never loads weights.
    # A GGUF model name from models/manifest.toml (<models_dir>/<model>/model.gguf).
    model: str = Field(default="qwen2.5-0.5b-instruct-q4", min_length=1)
    # Loopback only: the service has no authentication of its own (`appliance llm` refuses
    # any other address).
    host: str = "127.0.0.1"
    port: int = Field(default=8765, ge=1, le=65535)
    # Context window in tokens: system prompt, retrieved passages, question and answer together.
    n_ctx: int = Field(default=4096, ge=256, le=131072)
    # Layers offloaded to the GPU: 0 = CPU only, -1 = all (needs a CUDA build of llama.cpp).
    n_gpu_layers: int = Field(default=0, ge=-1, le=1000)
    # CPU threads for llama.cpp; 0 = its default.
    threads: int = Field(default=0, ge=0, le=256)
    # Requests that may wait while one generates (a llama.cpp context serves one at a time);
    # beyond that the service answers 503 with Retry-After at once instead of piling up.
    max_queue: int = Field(default=8, ge=0, le=1000)
    # The most tokens one answer may have; requests asking for more are refused (422).
    max_tokens: int = Field(default=512, ge=1, le=32768)
    # The longest one request may take, waiting in line included; then it ends with an error.
    request_timeout_seconds: int = Field(default=120, ge=1, le=3600)


class ChatSettings(_Section):
    # Shown instead of any answer when a question carries crisis language (the therapist is
    # alerted too). Clinics should put their own numbers here.
    crisis_text: str = Field(
        default=(
            "It sounds like you may be going through something very hard. If you are in "
            "danger or thinking about harming yourself or someone else, call your local "
            "emergency number now. Your therapist has been told you may need support."
        ),
        min_length=1,
        max_length=2000,
    )
    # Questions a patient may ask per hour; more get 429 with retry_after.
    questions_per_hour: int = Field(default=20, ge=1, le=10000)
    # Earlier turns of the conversation given to the model for follow-up questions.
    history_turns: int = Field(default=4, ge=0, le=50)


class ReportsSettings(_Section):
    # The clinic's note format for drafted reports: soap, dap, birp or a free summary.
    note_format: Literal["soap", "dap", "birp", "summary"] = "soap"
    # Tokens the model may write per transcript window (map) and for the summary (reduce).
    max_tokens: int = Field(default=400, ge=32, le=8192)


class LoggingSettings(_Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # json: one JSON object a line (journald keeps the fields); text: for a developer's terminal.
    format: Literal["json", "text"] = "json"


class BackupSettings(_Section):
    # Where `appliance backup` writes its archives. Empty: <data_dir>/backups.
    dir: Path | None = None
    # Archives kept; older ones are deleted after each successful backup.
    keep: int = Field(default=14, ge=1, le=10000)

    _none_if_empty = field_validator("dir", mode="before")(_empty_to_none)


class MetricsSettings(_Section):
    # GET /metrics (Prometheus text format): served to loopback and to `allow` only, else 404.
    enabled: bool = True
    # Networks (CIDR) besides loopback that may scrape, e.g. ["192.168.10.5/32"].
    allow: tuple[str, ...] = ()

    @field_validator("allow")
    @classmethod
    def _networks(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        from ipaddress import ip_network

        for entry in value:
            try:
                ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(f"{entry!r} is not an address or network (CIDR)") from None
        return value


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

    _none_if_empty = field_validator("models_dir", mode="before")(_empty_to_none)

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
