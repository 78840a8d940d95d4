"""Schemathesis against the app's own OpenAPI document (issue 10, item 2): every operation at
`/schema/openapi.json`, with valid and invalid generated requests, signed in with an API key
(a therapist's and an administrator's) so the protected endpoints run too. Goal: no 5xx.

Requests go through the Litestar test client (the whole ASGI app, real PostgreSQL). Schemathesis
4 has no telemetry or report upload (the 3.x Schemathesis.io upload was removed); the variable
below is set anyway, and Hypothesis keeps no example database (nothing written to the tree)."""

from __future__ import annotations

import os
from collections import Counter
from typing import Any, cast

import httpx
import pytest
from litestar import Litestar
from litestar.testing import TestClient
from sqlmodel import Session

from appliance.auth import apikeys
from appliance.clinic.schemas import PatientPublic, UserPublic
from tests.conftest import consented_session

os.environ.setdefault("SCHEMATHESIS_TELEMETRY", "false")

EXAMPLES = 3  # per operation and generation mode, each sent with both keys (CI short form)
BASE = "http://testserver.local"
STAFF = ("alice@clinic.example", "adam@clinic.example")


def test_fuzzed_requests_to_every_api_operation_get_no_server_error(
    session: Session,
    people: dict[str, UserPublic],
    bob: PatientPublic,
    client: TestClient[Litestar],
) -> None:
    import requests
    import schemathesis
    from hypothesis import HealthCheck, Phase, given, settings
    from schemathesis import GenerationMode

    consented_session(session, bob.id, people["alice"].id)
    raw = client.get("/schema/openapi.json").json()
    schema = schemathesis.openapi.from_dict(raw)
    failures: list[str] = []
    statuses: Counter[int] = Counter()
    operations = [cast(Any, result).ok() for result in schema.get_all_operations()]
    assert len(operations) > 20  # the document really lists the API

    def send(case: Any, key: str) -> None:
        kwargs = case.as_transport_kwargs(base_url=BASE, headers={"X-API-Key": key})
        kwargs = {k: v for k, v in kwargs.items() if k not in ("timeout", "verify", "auth")}
        prepared = requests.Request(**kwargs).prepare()
        body = prepared.body.encode() if isinstance(prepared.body, str) else prepared.body
        try:
            response = client.request(
                prepared.method or "GET",
                prepared.url or BASE,
                headers={name: str(value) for name, value in prepared.headers.items()},
                content=cast(bytes | None, body),
                follow_redirects=False,
            )
        except (httpx.HTTPError, UnicodeError, ValueError):
            return  # a request the HTTP client itself cannot send: never reached the app
        statuses[response.status_code] += 1
        if response.status_code >= 500:
            failures.append(f"{case.method} {case.formatted_path}: {response.status_code}")

    keys = [apikeys.issue(session, email, "schemathesis").key for email in STAFF]
    session.commit()
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @settings(
                max_examples=EXAMPLES,
                database=None,
                deadline=None,
                derandomize=True,
                phases=[Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            @given(case=operation.as_strategy(generation_mode=mode))
            def check(case: Any) -> None:
                for key in keys:  # each case as a therapist and as an administrator
                    send(case, key)

            try:
                check()
            except Exception as exc:  # schemathesis cannot build a case: not the app's fault
                if "Unsatisfiable" not in type(exc).__name__ and not _schema_side(exc):
                    raise

    assert failures == [], statuses
    total = sum(statuses.values())
    assert statuses[401] < total / 4, statuses  # the keys worked: protected code really ran
    assert sum(n for code, n in statuses.items() if code < 300) > 0, statuses


def _schema_side(exc: Exception) -> bool:
    """Errors schemathesis raises about the document or generation, not about a response."""
    return type(exc).__module__.startswith(("schemathesis", "hypothesis"))


@pytest.mark.parametrize("path", ["/schema/openapi.json"])
def test_the_openapi_document_is_served_and_lists_the_upload_endpoint(
    client: TestClient[Litestar], path: str
) -> None:
    document = client.get(path).json()
    assert "/api/v1/sessions/{session_id}/recording" in document["paths"]
