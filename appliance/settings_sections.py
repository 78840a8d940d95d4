"""The sections of `Settings` (one frozen model per `[section]` of appliance.toml).

Kept apart from `appliance.settings`, which builds and loads the whole, so that each file stays
small; import them from `appliance.settings`.
"""

from __future__ import annotations

import zoneinfo
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


def empty_to_none(value: Any) -> Any:
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
    )(empty_to_none)


class WebSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    cookie_secure: bool = False
    # HTTPS served by the web process itself (the certificate from the playbook's local CA),
    # so no proxy sits between the phones on the LAN and the appliance. Both or neither.
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None

    _none_if_empty = field_validator("tls_cert_file", "tls_key_file", mode="before")(empty_to_none)

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
    )(empty_to_none)


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
    # Free space the files disk keeps: an upload that would leave less is refused with 507.
    min_free_mb: int = Field(default=100, ge=0, le=1024 * 1024)


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

    _none_if_empty = field_validator("dir", mode="before")(empty_to_none)


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
