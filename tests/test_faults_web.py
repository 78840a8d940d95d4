"""Faults at the web edge (issue 10, item 1), short form of `appliance soak web-faults`: the
real `appliance web` process SIGKILLed mid-upload, the files disk filled (a size-limited tmpfs;
root only), and the LLM service killed or stopped mid-answer. Each scenario counts orphan
files, orphan rows, 5xx other than 503/507 and half answers; all must be zero."""

from __future__ import annotations

import signal
import uuid
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session

from appliance.clinic.schemas import PatientPublic, UserPublic
from appliance.crypto.keystore import KeyStore
from appliance.crypto.streams import EncryptingWriter, FileContext
from appliance.recordings.partials import partial_uploads, sweep_partial_uploads
from appliance.settings import Settings
from appliance.soak import web_faults
from appliance.soak.web_faults import Site, Tally
from appliance.soak.web_faults_llm import kill_llm_mid_answer
from tests.conftest import PASSWORD, consented_session, run_cli
from tests.retrieval_fixtures import ALL, SLEEP, Clinic
from tests.test_chat import clinic  # noqa: F401 (a fixture)


@pytest.fixture
def site(
    session: Session,
    settings: Settings,
    people: dict[str, UserPublic],
    bob: PatientPublic,
    alice: UserPublic,
    tmp_path: Path,
) -> Site:
    therapy = consented_session(session, bob.id, alice.id)
    return Site(
        settings, therapy.id, "alice@clinic.example", "bob@portal.example", PASSWORD, tmp_path
    )


def clean(tally: Tally) -> None:
    assert tally.clean(), f"{tally.summary()}: {tally.notes}"


def test_the_start_up_sweep_removes_a_dead_uploads_temp_file_but_never_a_live_one(
    tmp_path: Path, store: KeyStore, bob: PatientPublic
) -> None:
    recordings = tmp_path / str(bob.id) / "recordings"
    context = FileContext("recording", uuid.uuid4(), bob.id)
    live = EncryptingWriter(b"k" * 32, recordings / f"{context.object_id}.rec", context)
    live.write(b"still arriving")
    dead = recordings / ".0000.rec.dead.tmp"  # what a SIGKILLed writer leaves: nobody holds it
    dead.write_bytes(b"partial ciphertext")
    assert sweep_partial_uploads(tmp_path) == 1
    assert not dead.exists()
    assert partial_uploads(tmp_path) != []  # the live writer's file stays
    live.abort()
    assert partial_uploads(tmp_path) == []


MOUNT = web_faults.can_mount()


@pytest.mark.slow
def test_a_web_process_killed_mid_upload_leaves_no_orphans_and_a_full_disk_is_a_clean_507(
    site: Site,
) -> None:
    """SIGKILL mid-upload, restart: the sweep leaves no temp file, no row, and the next upload
    works. Then (root only) a 2 MiB files disk: the declared upload is refused by the reserve,
    the chunked one cut by ENOSPC, both 507 problems leaving nothing; freed, it uploads."""
    tally, seen = Tally(), dict[str, Any]()
    with web_faults.kill_mid_upload(
        site, tally, seen, web_faults.fault_env(web_faults.free_port())
    ) as base:
        assert seen["left_by_kill"] == 1  # the kill really landed mid-write
        assert seen["recovered"] == 202
        if MOUNT is None:
            full = web_faults.fill_disk(site, tally, base)
            for name in ("declared", "chunked"):
                assert full[name] == (507, "application/problem+json"), full
                assert full[name + "_title"] == "Insufficient Storage"
            assert full["form"] == 507
            assert full["recovered"] == 202
    clean(tally)
    if MOUNT is not None:
        pytest.skip(f"the full-disk half needs a size-limited disk: {MOUNT}")


@pytest.mark.slow
@pytest.mark.skipif(MOUNT is not None, reason=f"no size-limited disk: {MOUNT}")
def test_appliance_ingest_on_a_full_disk_says_so_in_one_line_and_stores_nothing(
    site: Site, tmp_path: Path
) -> None:
    audio = tmp_path / "long.wav"
    audio.write_bytes(web_faults.wav(40))
    env = {"APPLIANCE_DATABASE__URL": site.settings.database.url or ""}
    args = ["ingest", "--session", str(site.session_id), str(audio)]
    args += ["--data-dir", str(site.settings.data_dir)]
    with web_faults.small_disk(site.settings.files_dir, "512k"):
        # A real process, as clinic IT runs it (an in-process CLI would reconfigure this
        # process's logging for the tests after it).
        done = run_cli(*args, env=env)
        assert done.returncode == 1, done.stderr
        assert done.stdout == ""
        assert "Traceback" not in done.stderr
        assert done.stderr.strip().splitlines()[-1] == (
            "Error: the recordings disk is full; nothing was stored. Free space, then upload again."
        )
        assert [p for p in site.settings.files_dir.rglob("*") if p.is_file()] == []
    tally = Tally()
    web_faults.check_storage(site, tally, "after the CLI")
    clean(tally)


@pytest.fixture
def asked_about(
    clinic: Clinic,  # noqa: F811
    alice: UserPublic,
    bob: PatientPublic,
    people: dict[str, UserPublic],
) -> None:
    """bob's released sleep-diary session: what `QUESTION` is answered from."""
    clinic.consent(bob, *ALL)
    clinic.recorded(bob, alice, date(2026, 11, 12), SLEEP)


@pytest.mark.slow
def test_the_llm_service_dying_mid_answer_shows_the_patient_an_error_never_a_half_answer(
    site: Site, asked_about: None
) -> None:
    """Killed (SIGKILL) or stopped (SIGTERM) after the patient saw a first sentence: the
    stream ends with an error event and no answer, the JSON API and the portal's form answer
    503, no assistant turn is stored, each failure is audited; restarted, it answers whole."""
    tally, port = Tally(), web_faults.free_port()
    with web_faults.web(site, **web_faults.fault_env(port)) as (_, base):
        for how in (signal.SIGKILL, signal.SIGTERM):
            seen = kill_llm_mid_answer(site, tally, base, port, how)
            assert seen["stream"] == ["delta", "error"], how  # words shown, then the error
            assert seen["json"] == 503
            assert seen["page"] == 503
            assert seen["assistant_turns"] == 0
            assert seen["audited_failures"] == 3
            assert seen["recovered"][-1] == "answer"
    clean(tally)
