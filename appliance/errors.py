"""Domain errors. Services raise these; the web layer maps them to RFC 7807 responses and the
CLI to a one-line message with a non-zero exit. Messages never carry PHI."""

from __future__ import annotations


class DomainError(Exception):
    status_code = 400
    title = "Bad request"


class NotFound(DomainError):
    status_code = 404
    title = "Not found"


class Conflict(DomainError):
    status_code = 409
    title = "Conflict"


class Invalid(DomainError):
    status_code = 422
    title = "Invalid input"


class TooManyRequests(DomainError):
    """Rate limited or throttled; `retry_after` seconds until the caller may try again."""

    status_code = 429
    title = "Too Many Requests"

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def describe_validation_error(exc: Exception, prefix: str = "invalid input") -> str:
    """One line naming each invalid field and why, without echoing the submitted values."""
    errors = getattr(exc, "errors", None)
    if not callable(errors):
        return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    parts = []
    for error in errors():
        where = ".".join(str(p) for p in error.get("loc", ())) or "value"
        parts.append(f"{where}: {error.get('msg', 'invalid')}")
    return f"{prefix}: " + "; ".join(parts)
