"""Clinic preferences an administrator may change in the console, over the configuration file.

The configuration file stays the baseline clinic IT controls; `Clinic.preferences` (JSONB)
holds only what an administrator changed, key by key, and an absent key means "as the file
says". Values are validated by the very section models of `appliance.settings_sections`, so a
value the console accepts is one the configuration file would accept too.

Nothing is cached: every request (web) and every job (worker) reads the row again through
`effective_settings`, one primary-key-sized query, so a change takes effect everywhere at once
without a restart and no process can serve a stale copy.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError, ValidationInfo, field_validator
from sqlmodel import Session, col, select

from appliance.audit.service import Actor, AuditEntry, record
from appliance.clinic.models import Clinic
from appliance.errors import Invalid, NotFound
from appliance.settings import Settings
from appliance.settings_sections import AuthSettings, ChatSettings, ClinicSettings, ReportsSettings

logger = logging.getLogger(__name__)

# Preference key -> (section of Settings, its model, field in that section).
FIELDS: dict[str, tuple[str, type[BaseModel], str]] = {
    "clinic_name": ("clinic", ClinicSettings, "name"),
    "timezone": ("clinic", ClinicSettings, "timezone"),
    "crisis_text": ("chat", ChatSettings, "crisis_text"),
    "questions_per_hour": ("chat", ChatSettings, "questions_per_hour"),
    "note_format": ("reports", ReportsSettings, "note_format"),
    "login_window_minutes": ("auth", AuthSettings, "login_window_minutes"),
    "max_failures_per_account_and_ip": ("auth", AuthSettings, "max_failures_per_account_and_ip"),
    "max_failures_per_ip": ("auth", AuthSettings, "max_failures_per_ip"),
}


class ClinicPreferences(BaseModel):
    """The overridable values, all of them (the effective view). Each field is checked by its
    settings section's own rules: one validation, two ways in (file and console)."""

    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)

    clinic_name: str
    timezone: str
    crisis_text: str
    questions_per_hour: int
    note_format: Literal["soap", "dap", "birp", "summary"]
    login_window_minutes: int
    max_failures_per_account_and_ip: int
    max_failures_per_ip: int

    @field_validator("*", mode="after")
    @classmethod
    def _as_the_settings_section_would(cls, value: Any, info: ValidationInfo) -> Any:
        _, section, key = FIELDS[info.field_name or ""]
        try:
            checked = section.model_validate({key: value})
        except ValidationError as exc:
            message = str(exc.errors()[0].get("msg", "invalid value"))
            raise ValueError(message.removeprefix("Value error, ")) from None
        return getattr(checked, key)


def from_settings(settings: Settings) -> ClinicPreferences:
    """The configuration file's values (what an absent key falls back to)."""
    return ClinicPreferences(
        **{
            name: getattr(getattr(settings, section), key)
            for name, (section, _, key) in FIELDS.items()
        }
    )


def _clinic(session: Session, *, for_update: bool = False) -> Clinic | None:
    query = select(Clinic).order_by(col(Clinic.created_at)).limit(1)
    if for_update:
        query = query.with_for_update()
    return session.exec(query).first()


def load(session: Session) -> dict[str, Any]:
    """The stored overrides, known keys only (a key from a newer or older version is
    ignored rather than breaking every page)."""
    clinic = _clinic(session)
    stored = clinic.preferences if clinic is not None else {}
    return {key: value for key, value in (stored or {}).items() if key in FIELDS}


def effective(settings: Settings, overrides: Mapping[str, Any]) -> ClinicPreferences:
    """The file's values with the overrides on top. A stored value that no longer validates
    (say, a time zone the system's tzdata dropped) falls back to the file, with a warning."""
    base = from_settings(settings).model_dump()
    try:
        return ClinicPreferences(**{**base, **overrides})
    except ValidationError as exc:
        bad = {str(error["loc"][0]) for error in exc.errors() if error.get("loc")}
        logger.warning("ignoring invalid clinic preferences", extra={"keys": sorted(bad)})
        kept = {key: value for key, value in overrides.items() if key not in bad}
        return ClinicPreferences(**{**base, **kept})


def apply(settings: Settings, preferences: ClinicPreferences) -> Settings:
    """`settings` with the preferences in place (a copy: Settings are immutable)."""
    sections: dict[str, dict[str, Any]] = {}
    for name, (section, _, key) in FIELDS.items():
        sections.setdefault(section, {})[key] = getattr(preferences, name)
    return settings.model_copy(
        update={
            section: getattr(settings, section).model_copy(update=values)
            for section, values in sections.items()
        }
    )


def effective_settings(settings: Settings, session: Session) -> Settings:
    """The settings a request or job acts on: the file's, with the console's changes."""
    overrides = load(session)
    if not overrides:
        return settings
    return apply(settings, effective(settings, overrides))


def save(
    session: Session, settings: Settings, actor: Actor, changes: Mapping[str, Any]
) -> list[str]:
    """Validate `changes` (all or nothing) and store them; returns the keys whose effective
    value changed. A value equal to the file's is stored as absent, so a later change of the
    file applies again. Audited with the key names only, never the values (a crisis text is
    the clinic's own, but a free-text field is no place to trust with the audit log). The
    caller commits."""
    unknown = sorted(set(changes) - set(FIELDS))
    if unknown:
        raise Invalid(f"unknown preferences: {', '.join(unknown)}")
    clinic = _clinic(session, for_update=True)  # two admins saving at once: one after the other
    if clinic is None:
        raise NotFound("the appliance has no clinic yet; run appliance init")
    stored = {key: value for key, value in (clinic.preferences or {}).items() if key in FIELDS}
    before = effective(settings, stored)
    try:
        after = ClinicPreferences(**{**before.model_dump(), **changes})
    except ValidationError as exc:
        raise Invalid(describe(exc)) from None
    base = from_settings(settings)
    clinic.preferences = {
        key: getattr(after, key) for key in FIELDS if getattr(after, key) != getattr(base, key)
    }
    session.add(clinic)
    changed = [key for key in FIELDS if getattr(after, key) != getattr(before, key)]
    if changed:
        record(
            session,
            actor,
            AuditEntry(
                "clinic.preferences.update",
                object_type="clinic",
                object_id=str(clinic.id),
                details={"changed": changed},
            ),
        )
    session.flush()
    return changed


def describe(exc: ValidationError) -> str:
    """One line per invalid field, named as the form names it."""
    parts = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error.get("loc", ())) or "value"
        parts.append(f"{where}: {str(error.get('msg', 'invalid')).removeprefix('Value error, ')}")
    return "; ".join(parts)
