"""`/metrics`: who may read it, what it says, and that no id ever becomes a label.

Metrics are read the way Prometheus reads them (text format, parsed with prometheus_client's
own parser); the client address is set per request through httpx's ASGI transport, and one
test runs `appliance web` as a real process and asks from loopback and from the LAN address.
"""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar import Litestar
from litestar.testing import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text
from sqlmodel import Session

from appliance.app import create_app
from appliance.clinic.schemas import PatientPublic, UserPublic
from appliance.consent.models import Purpose
from appliance.crypto.keystore import KeyStore
from appliance.db import Database
from appliance.observability.gpu import parse_nvidia_smi
from appliance.observability.loads import timed_model_load
from appliance.settings import Settings
from tests.audio import make_audio
from tests.conftest import Browser, add_recording, consented_session, serve

LOOPBACK = ("127.0.0.1", 40000)
LAN = ("192.168.1.20", 40000)


def scrape(app: Litestar, client: tuple[str, int] = LOOPBACK, **headers: str) -> httpx.Response:
    """GET /metrics as a peer at `client` would (the transport sets the ASGI client)."""

    async def fetch() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, client=client)  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=transport, base_url="http://appliance") as http:
            return await http.get("/metrics", headers=headers)

    return asyncio.run(fetch())


def samples(body: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    found = {}
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


def value(found: dict[Any, float], name: str, **labels: str) -> float:
    return found[(name, frozenset(labels.items()))]


@pytest.fixture
def app(settings: Settings, database: Database) -> Litestar:
    return create_app(settings, database)


# Who may read it ------------------------------------------------------------------------------


def test_the_box_itself_reads_metrics_in_prometheus_text_format(app: Litestar) -> None:
    for peer in (LOOPBACK, ("::1", 40000), ("::ffff:127.0.0.1", 40000)):
        response = scrape(app, peer)
        assert response.status_code == 200, peer
        assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    names = {family.name for family in text_string_to_metric_families(response.text)}
    assert {
        "appliance_build_info",
        "appliance_http_request_duration_seconds",
        "appliance_chat_time_to_first_token_seconds",
        "appliance_database_up",
        "appliance_jobs",
        "appliance_jobs_dead",
        "appliance_model_load_seconds",
    } <= names


def test_the_lan_gets_the_same_404_as_a_page_that_does_not_exist(app: Litestar) -> None:
    hidden = scrape(app, LAN)
    with TestClient(app=app) as client:
        missing = client.get("/no-such-page")
    assert hidden.status_code == missing.status_code == 404
    assert hidden.headers["content-type"] == missing.headers["content-type"]
    strip = {"request_id"}
    assert {k: v for k, v in hidden.json().items() if k not in strip} == {
        k: v for k, v in missing.json().items() if k not in strip
    }
    assert "appliance_" not in hidden.text


def test_a_network_in_the_allow_list_may_scrape_and_its_neighbours_may_not(
    settings: Settings, database: Database
) -> None:
    allowed = settings.model_copy(
        update={"metrics": settings.metrics.model_copy(update={"allow": ("192.168.1.0/24",)})}
    )
    app = create_app(allowed, database)
    assert scrape(app, LAN).status_code == 200
    assert scrape(app, ("192.168.2.20", 40000)).status_code == 404
    assert scrape(app, ("fd00::7", 40000)).status_code == 404


def test_a_request_relayed_by_a_proxy_on_the_box_is_not_taken_for_the_box_itself(
    app: Litestar,
) -> None:
    assert scrape(app, LOOPBACK, **{"X-Forwarded-For": "192.168.1.20"}).status_code == 404
    assert scrape(app, LOOPBACK, Forwarded="for=192.168.1.20").status_code == 404


def test_metrics_switched_off_are_not_served_even_to_the_box(
    settings: Settings, database: Database
) -> None:
    off = settings.model_copy(
        update={"metrics": settings.metrics.model_copy(update={"enabled": False})}
    )
    assert scrape(create_app(off, database)).status_code == 404


def test_an_allow_entry_that_is_not_a_network_is_refused_in_one_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from appliance.settings import SettingsError, load_settings

    monkeypatch.setenv("APPLIANCE_METRICS__ALLOW", '["192.168.1.0/24", "the lan"]')
    with pytest.raises(SettingsError, match="'the lan' is not an address or network"):
        load_settings()


def lan_address() -> str | None:
    """This machine's own non-loopback address (a UDP connect sends nothing)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))
        except OSError:
            return None
        address: str = probe.getsockname()[0]
    return None if address.startswith("127.") else address


def test_the_real_server_answers_loopback_and_hides_metrics_from_its_lan_address(
    settings: Settings, tmp_path: Path
) -> None:
    own = lan_address()
    if own is None:
        pytest.skip("this machine has no non-loopback IPv4 address")
    lan = {"APPLIANCE_WEB__HOST": "0.0.0.0"}  # noqa: S104 (to be reached at the LAN address)
    with serve(settings, tmp_path / "web.log", **lan) as base:
        port = base.rsplit(":", 1)[1]
        httpx.get(f"{base}/health/ready")
        local = httpx.get(f"{base}/metrics")
        from_lan = httpx.get(f"http://{own}:{port}/metrics")
    assert local.status_code == 200
    assert from_lan.status_code == 404
    found = samples(local.text)
    assert value(found, "appliance_database_up") == 1
    ready = {"method": "GET", "route": "/health/ready", "status_class": "2xx"}
    assert value(found, "appliance_http_request_duration_seconds_count", **ready) == 1


# What it says ---------------------------------------------------------------------------------


def test_request_latency_is_labelled_by_route_template_never_by_the_ids_in_the_path(
    app: Litestar,
) -> None:
    session_id = uuid.uuid4()
    with TestClient(app=app) as client:
        assert client.get(f"/api/v1/sessions/{session_id}/report?who=bob").status_code == 401
        assert client.get("/health/").status_code == 200
        assert client.get("/health/").status_code == 200
    body = scrape(app).text
    assert str(session_id) not in body
    assert "bob" not in body
    found = samples(body)
    report = {
        "method": "GET",
        "route": "/api/v1/sessions/{session_id}/report",
        "status_class": "4xx",
    }
    assert value(found, "appliance_http_request_duration_seconds_count", **report) == 1
    health = {"method": "GET", "route": "/health", "status_class": "2xx"}
    assert value(found, "appliance_http_request_duration_seconds_count", **health) == 2
    assert value(found, "appliance_http_request_duration_seconds_bucket", le="+Inf", **health) == 2


def test_two_apps_in_one_process_keep_their_own_counts(
    settings: Settings, database: Database
) -> None:
    first, second = create_app(settings, database), create_app(settings, database)
    with TestClient(app=first) as client:
        client.get("/health/")
    health = {"method": "GET", "route": "/health", "status_class": "2xx"}
    assert (
        value(
            samples(scrape(first).text), "appliance_http_request_duration_seconds_count", **health
        )
        == 1
    )
    assert (
        "appliance_http_request_duration_seconds_count",
        frozenset(health.items()),
    ) not in samples(scrape(second).text)


@pytest.fixture
def recording(
    session: Session, settings: Settings, store: KeyStore, alice: UserPublic, bob: PatientPublic
) -> Any:
    row = consented_session(session, bob.id, alice.id, Purpose.recording, Purpose.transcription)
    return add_recording(session, settings, store, row, make_audio("wav"))


def test_queue_depth_dead_jobs_and_durations_are_read_from_the_jobs_table(
    app: Litestar, database: Database, settings: Settings, store: KeyStore, recording: Any
) -> None:
    with database.engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE jobs SET state = 'succeeded', started_at = now() - interval '42 seconds',"
                " finished_at = now() WHERE recording_id = :r AND stage = 'probe'"
            ),
            {"r": recording.recording_id},
        )
        conn.execute(
            text(
                "UPDATE jobs SET state = 'dead', started_at = now() - interval '700 seconds',"
                " finished_at = now() WHERE recording_id = :r AND stage = 'transcribe'"
            ),
            {"r": recording.recording_id},
        )
    found = samples(scrape(app).text)
    assert value(found, "appliance_jobs", stage="probe", state="succeeded") == 1
    assert value(found, "appliance_jobs", stage="probe", state="queued") == 0
    assert value(found, "appliance_jobs", stage="diarize", state="queued") == 1
    assert value(found, "appliance_jobs", stage="transcribe", state="dead") == 1
    assert value(found, "appliance_jobs_dead") == 1
    probe = {"stage": "probe", "outcome": "succeeded"}
    bucket = "appliance_job_duration_seconds_bucket"
    assert value(found, bucket, le="30.0", **probe) == 0
    assert value(found, bucket, le="60.0", **probe) == 1
    assert value(found, bucket, le="+Inf", **probe) == 1
    assert value(found, "appliance_job_duration_seconds_gsum", **probe) == pytest.approx(42, abs=1)
    dead = {"stage": "transcribe", "outcome": "dead"}
    assert value(found, bucket, le="600.0", **dead) == 0
    assert value(found, bucket, le="1200.0", **dead) == 1
    assert (
        "appliance_job_duration_seconds_bucket",
        frozenset({("le", "60.0"), ("stage", "diarize"), ("outcome", "succeeded")}),
    ) not in found


def test_an_unreadable_database_reads_as_down_and_the_rest_is_still_served(
    settings: Settings,
) -> None:
    from appliance.db import Database, make_engine

    nowhere = Database(make_engine("postgresql+psycopg://x@/none?host=/nonexistent"), False)
    response = scrape(create_app(settings, nowhere))
    assert response.status_code == 200
    found = samples(response.text)
    assert value(found, "appliance_database_up") == 0
    assert value(found, "appliance_build_info", version="0.1.0") == 1


def test_a_model_load_is_reported_by_model_name(app: Litestar) -> None:
    with timed_model_load("test-model-xyz"):
        time.sleep(0.05)
    found = samples(scrape(app).text)
    assert 0.05 <= value(found, "appliance_model_load_seconds", model="test-model-xyz") < 5


def test_a_load_in_another_process_reaches_the_web_process_metrics(
    app: Litestar, settings: Settings
) -> None:
    """A worker (here: a separate Python process) shares its load time via the data dir."""
    import subprocess
    import sys

    code = (
        "import sys, time\n"
        "from appliance.settings import load_settings\n"
        "from appliance.observability.loads import share_loads, timed_model_load\n"
        "share_loads(load_settings(data_dir=sys.argv[1]))\n"
        "with timed_model_load('worker-model-abc'):\n"
        "    time.sleep(0.2)\n"
    )
    subprocess.run([sys.executable, "-c", code, str(settings.data_dir)], check=True, timeout=60)
    found = samples(scrape(app).text)
    assert 0.2 <= value(found, "appliance_model_load_seconds", model="worker-model-abc") < 5
    shared = settings.data_dir / "metrics" / "model-loads.json"
    assert shared.stat().st_mode & 0o077 == 0


def test_gpu_memory_is_parsed_per_device_from_nvidia_smi_and_absent_without_a_gpu(
    app: Litestar,
) -> None:
    output = "0, 1234, 81559\n1, [N/A], [N/A]\n2, 0, 40960\n"
    parsed = parse_nvidia_smi(output)
    assert [(g.device, g.used_bytes, g.total_bytes) for g in parsed] == [
        ("0", 1234 * 1024**2, 81559 * 1024**2),
        ("2", 0, 40960 * 1024**2),
    ]
    import shutil

    if shutil.which("nvidia-smi") is None:
        assert "appliance_gpu_memory_bytes" not in scrape(app).text


# Chat -----------------------------------------------------------------------------------------


def test_the_chat_stream_reports_time_to_first_words_but_not_for_a_refusal(
    session: Session,
    settings: Settings,
    store: KeyStore,
    database: Database,
    people: dict[str, UserPublic],
    alice: UserPublic,
    bob: PatientPublic,
    charlie: PatientPublic,
    browser: Browser,
) -> None:
    from tests.chat_fakes import FakeChatModel
    from tests.conftest import signed_in
    from tests.retrieval_fixtures import Clinic, record_practice
    from tests.speech_fakes import FakeSpeech

    clinic = Clinic(session, settings, store, database, FakeSpeech())
    record_practice(clinic, alice, bob, charlie)
    client, csrf = signed_in(browser, "bob@portal.example")
    client.app.state.chat_model = FakeChatModel(reply="You kept the sleep diary every night.")
    asked = client.post(
        "/api/v1/chat/stream",
        json={"question": "Did I keep the sleep diary every night?"},
        headers={"X-CSRF-Token": csrf},
    )
    assert asked.status_code == 200
    assert "event: delta" in asked.text
    refused = client.post(
        "/api/v1/chat/stream",
        json={"question": "What dose of my medication should I take?"},
        headers={"X-CSRF-Token": csrf},
    )
    assert refused.status_code == 200
    assert "event: delta" not in refused.text
    found = samples(scrape(client.app).text)
    assert value(found, "appliance_chat_time_to_first_token_seconds_count") == 1
    assert 0 < value(found, "appliance_chat_time_to_first_token_seconds_sum") < 60
    stream = {"method": "POST", "route": "/api/v1/chat/stream", "status_class": "2xx"}
    assert value(found, "appliance_http_request_duration_seconds_count", **stream) == 2


@pytest.mark.model
def test_the_real_embedder_load_in_this_process_is_reported(
    app: Litestar, settings: Settings
) -> None:
    from appliance.retrieval.embedder import embedder_for

    assert embedder_for(settings).embed(["how did the sleep diary go?"]).shape == (1, 384)
    found = samples(scrape(app).text)
    assert 0 < value(found, "appliance_model_load_seconds", model=settings.retrieval.embedder) < 120
