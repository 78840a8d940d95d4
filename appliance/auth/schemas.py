"""What crosses HTTP for sign-in."""

from __future__ import annotations

from sqlmodel import Field, SQLModel

from appliance.clinic.schemas import UserPublic


class LoginRequest(SQLModel):
    email: str = Field(min_length=3, max_length=254)
    password: str = Field(min_length=1, max_length=1024)
    totp_code: str | None = Field(default=None, max_length=10)


class SessionPublic(SQLModel):
    user: UserPublic
    csrf_token: str | None
    needs_totp_enrolment: bool


class TotpSetup(SQLModel):
    secret: str
    uri: str


class TotpConfirm(SQLModel):
    code: str = Field(min_length=6, max_length=6)
