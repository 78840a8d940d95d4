"""What crosses the boundary (HTTP, CLI --json) for the clinic domain: never a table class."""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator, StringConstraints
from sqlmodel import Field, SQLModel

from appliance.clinic.models import Role

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def _normalise_email(value: object) -> object:
    return value.strip().lower() if isinstance(value, str) else value


def _check_email(value: str) -> str:
    if len(value) > 254 or not _EMAIL.match(value):
        raise ValueError("not a valid e-mail address")
    return value


Email = Annotated[str, BeforeValidator(_normalise_email), AfterValidator(_check_email)]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


class UserBase(SQLModel):
    email: Email
    name: Name
    role: Role


class UserCreate(UserBase):
    # Long passphrases, no composition rules (NIST SP 800-63B).
    password: str | None = Field(default=None, min_length=12, max_length=1024)


class UserPublic(UserBase):
    id: uuid.UUID
    is_active: bool
    created_at: datetime


class PatientCreate(SQLModel):
    name: Name
    email: Email | None = None
    therapist_email: Email


class PatientPublic(SQLModel):
    id: uuid.UUID
    name: str
    email: str | None
    therapist_ids: list[uuid.UUID]
    created_at: datetime


class ClinicPublic(SQLModel):
    id: uuid.UUID
    name: str
    timezone: str
