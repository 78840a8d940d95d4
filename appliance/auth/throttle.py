"""Throttling in PostgreSQL, shared by every process: sign-in failures and a generic limiter.

Sign-in failures are counted per (account, address) and per address. An attacker elsewhere on
the network therefore cannot lock a colleague out, and because the windows slide, no lock-out
is permanent.
"""

from __future__ import annotations

import hashlib
import hmac
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import text
from sqlmodel import Session, col, delete, func, select

from appliance.auth.models import LoginAttempt
from appliance.errors import TooManyRequests
from appliance.settings import AuthSettings


@dataclass(frozen=True)
class Decision:
    allowed: bool
    retry_after: int = 0  # seconds


def account_key(secret: bytes, email: str) -> str:
    """A keyed hash of the e-mail: throttling rows never hold an address in clear."""
    return hmac.new(secret, email.strip().lower().encode(), hashlib.sha256).hexdigest()


def login_allowed(session: Session, config: AuthSettings, account: str, ip: str) -> Decision:
    window = timedelta(minutes=config.login_window_minutes)
    since = datetime.now(UTC) - window
    checks = (
        (LoginAttempt.ip == ip, config.max_failures_per_ip),
        (
            (LoginAttempt.ip == ip) & (LoginAttempt.account == account),
            config.max_failures_per_account_and_ip,
        ),
    )
    for condition, limit in checks:
        count, oldest = session.exec(
            select(func.count(), func.min(LoginAttempt.at)).where(
                condition, LoginAttempt.at > since
            )
        ).one()
        if count >= limit and oldest is not None:
            wait = (oldest + window - datetime.now(UTC)).total_seconds()
            return Decision(False, max(1, math.ceil(wait)))
    return Decision(True)


def record_failure(session: Session, account: str, ip: str, config: AuthSettings) -> None:
    session.add(LoginAttempt(account=account, ip=ip))
    horizon = datetime.now(UTC) - timedelta(minutes=config.login_window_minutes)
    session.execute(delete(LoginAttempt).where(col(LoginAttempt.at) < horizon))


def clear_failures(session: Session, account: str, ip: str) -> None:
    session.execute(
        delete(LoginAttempt).where(col(LoginAttempt.account) == account, col(LoginAttempt.ip) == ip)
    )


def hit(session: Session, key: str, limit: int, window_seconds: int) -> Decision:
    """Count one event against `key` in the current fixed window (the caller commits).

    Any endpoint can use it; the chat issue limits messages per patient per hour with it.
    """
    now = datetime.now(UTC)
    start = datetime.fromtimestamp(now.timestamp() // window_seconds * window_seconds, UTC)
    count = session.execute(
        text(
            "INSERT INTO rate_limit_counters (key, window_start, count) VALUES (:k, :w, 1) "
            "ON CONFLICT (key, window_start) DO UPDATE "
            "SET count = rate_limit_counters.count + 1 RETURNING count"
        ),
        {"k": key[:128], "w": start},
    ).scalar_one()
    session.execute(  # earlier windows of this key are history
        text("DELETE FROM rate_limit_counters WHERE key = :k AND window_start < :w"),
        {"k": key[:128], "w": start},
    )
    if count > limit:
        retry = (start + timedelta(seconds=window_seconds) - now).total_seconds()
        return Decision(False, max(1, math.ceil(retry)))
    return Decision(True)


def enforce(session: Session, key: str, limit: int, window_seconds: int) -> None:
    """Count a request and refuse it with 429 (and `retry_after`) when over the limit.
    Commits the counter at once, so a refused request is counted too."""
    decision = hit(session, key, limit, window_seconds)
    session.commit()
    if not decision.allowed:
        raise TooManyRequests("rate limit reached; try again later", decision.retry_after)
