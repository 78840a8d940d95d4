from __future__ import annotations

import io
import json
import logging
import socket
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import uvicorn
from litestar import Litestar, get
from litestar.testing import TestClient
from sqlmodel import Session

from appliance.app import create_app
from appliance.clinic import service
from appliance.clinic.schemas import PatientCreate, UserPublic
from appliance.crypto.keystore import KeyStore
from appliance.db import Database, make_engine
from appliance.logs import configure_logging
from appliance.settings import Settings
from appliance.web.context import RequestContextMiddleware
from appliance.web.errors import EXCEPTION_HANDLERS, PROBLEM_JSON
from tests.conftest import CLINIC_IT

PLANTED = "Zebediah Quixotefield"


@pytest.fixture
def client(settings: Settings, database: Database) -> Iterator[TestClient[Litestar]]:
    with TestClient(app=create_app(settings, database)) as client:
        yield client


@pytest.fixture
def json_logs() -> Iterator[Callable[[], list[dict[str, Any]]]]:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    stream = io.StringIO()
    configure_logging("INFO", stream)
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    root.handlers[:], root.level = saved


def assert_problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["type"] == "about:blank"
    assert body["title"]
    assert body["request_id"] == response.headers["x-request-id"]
    return body


def test_liveness_and_health_answer_without_touching_anything(client: TestClient[Litestar]) -> None:
    assert client.get("/health/live").json() == {"status": "alive"}
    assert client.get("/health").json()["status"] == "ok"


def test_readiness_checks_the_database_and_migrations(client: TestClient[Litestar]) -> None:
    body = client.get("/health/ready").json()
    assert body["status"] == "ready"
    names = {check["name"]: check["status"] for check in body["checks"]}
    assert names == {"database": "ok", "migrations": "ok", "pgvector": "ok", "audit log": "ok"}


def test_readiness_is_a_503_problem_when_the_database_is_unreachable(settings: Settings) -> None:
    unreachable = Database(
        make_engine("postgresql+psycopg://nobody@/none?host=/nonexistent"), False
    )
    with TestClient(app=create_app(settings, unreachable)) as client:
        response = client.get("/health/ready")
    body = assert_problem(response, 503)
    assert "database" in body["detail"]
    assert response.headers["retry-after"] == "5"


def test_openapi_is_served_as_json_at_schema_without_external_assets(
    client: TestClient[Litestar],
) -> None:
    response = client.get("/schema")
    assert response.status_code == 200
    spec = response.json()
    assert spec["openapi"].startswith("3.")
    assert "/health/ready" in spec["paths"]
    assert "cdn" not in response.text.lower()


def test_an_unknown_route_is_a_404_problem(client: TestClient[Litestar]) -> None:
    body = assert_problem(client.get("/no/such/page"), 404)
    assert body["title"] == "Not Found"


def test_a_wrong_method_is_a_405_problem(client: TestClient[Litestar]) -> None:
    assert_problem(client.post("/health/live"), 405)


def test_invalid_parameters_are_a_400_problem_naming_the_field(
    client: TestClient[Litestar],
) -> None:
    body = assert_problem(client.get("/health/detailed", params={"full": "perhaps"}), 400)
    assert body["errors"][0]["key"] == "full"


def test_detailed_health_is_refused_to_non_local_clients(client: TestClient[Litestar]) -> None:
    assert_problem(client.get("/health/detailed"), 403)


def test_a_caller_request_id_is_echoed_and_a_hostile_one_replaced(
    client: TestClient[Litestar],
) -> None:
    assert (
        client.get("/health", headers={"X-Request-ID": "abc-123"}).headers["x-request-id"]
        == "abc-123"
    )
    replaced = client.get("/health", headers={"X-Request-ID": "bad id\nwith newline"})
    assert replaced.headers["x-request-id"] != "bad id\nwith newline"
    assert len(replaced.headers["x-request-id"]) == 32


def test_an_internal_error_is_a_500_problem_that_reveals_nothing(
    json_logs: Callable[[], list[dict[str, Any]]],
) -> None:
    @get("/boom")
    async def boom() -> None:
        raise RuntimeError(f"constraint failed for {PLANTED}")

    app = Litestar(
        [boom],
        middleware=[RequestContextMiddleware()],
        exception_handlers=EXCEPTION_HANDLERS,
        logging_config=None,
    )
    with TestClient(app=app) as client:
        response = client.get("/boom")
    body = assert_problem(response, 500)
    assert PLANTED not in response.text
    logged = json_logs()
    error = next(line for line in logged if line["msg"] == "unhandled error")
    assert error["exc_type"] == "RuntimeError"
    assert error["request_id"] == body["request_id"]
    assert PLANTED not in json.dumps(logged)


def test_logs_are_json_with_request_ids_and_never_contain_a_patient_name(
    settings: Settings,
    database: Database,
    session: Session,
    store: KeyStore,
    alice: UserPublic,
    json_logs: Callable[[], list[dict[str, Any]]],
) -> None:
    patient = service.add_patient(
        session,
        store,
        CLINIC_IT,
        PatientCreate(name=PLANTED, email="zq@home.example", therapist_email=alice.email),
    )
    session.commit()
    logging.getLogger("appliance.test").info(
        "created", extra={"patient_name": PLANTED, "patient_id": str(patient.id)}
    )
    with TestClient(app=create_app(settings, database)) as client:
        client.get("/health/ready")
        client.get(f"/patients/{PLANTED}", params={"q": PLANTED})
        client.get("/health", params={"search": PLANTED})
    logged = json_logs()
    assert PLANTED not in json.dumps(logged)
    assert "zq@home.example" not in json.dumps(logged)
    access = [line for line in logged if line["logger"] == "appliance.access"]
    assert {line["route"] for line in access} >= {"/health/ready", "<unmatched>", "/health"}
    assert all(line["request_id"] for line in access)
    planted_extra = next(line for line in logged if line["msg"] == "created")
    assert planted_extra["patient_name"] == "[redacted]"


def test_detailed_health_over_real_http_from_loopback(
    settings: Settings, database: Database
) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(settings, database), log_config=None))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health/detailed") as response:
            body = json.load(response)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
    names = {check["name"] for check in body["checks"]}
    assert {"database", "migrations", "pgvector", "key: kek", "disk", "gpu"} <= names
    assert any(name.startswith("model: ") for name in names)
