"""The audit log: append-only in the database, tamper-evident in an exported bundle."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session

from appliance.audit import service as audit
from appliance.audit.chain import GENESIS, entry_hash, verify_bundle
from appliance.clinic.schemas import PatientPublic, UserPublic
from appliance.settings import Settings
from tests.conftest import CLINIC_IT, run_cli


def entries(session: Session) -> list[Any]:
    return list(
        session.execute(text("SELECT action, prev_hash, hash FROM audit_events ORDER BY id"))
    )


def test_actions_on_patient_data_are_audited_with_ids_only(
    session: Session, bob: PatientPublic
) -> None:
    rows = session.execute(
        text(
            "SELECT action, object_id, patient_id, row_to_json(audit_events)::text AS raw "
            "FROM audit_events ORDER BY id"
        )
    ).all()
    actions = [row.action for row in rows]
    assert actions[0] == "appliance.init"
    assert "user.create" in actions
    assert actions[-1] == "patient.create"
    assert rows[-1].patient_id == bob.id
    assert all("Bob" not in row.raw and "bob@home" not in row.raw for row in rows)


def test_each_entry_links_to_the_one_before(session: Session, alice: UserPublic) -> None:
    chain = entries(session)
    assert chain[0].prev_hash == GENESIS
    for before, after in itertools.pairwise(chain):
        assert after.prev_hash == before.hash


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_events SET action = 'nothing.happened'",
        "DELETE FROM audit_events",
        "TRUNCATE audit_events",
    ],
)
def test_the_app_role_cannot_change_or_remove_audit_rows(
    settings: Settings, session: Session, statement: str
) -> None:
    app = create_engine(settings.external_database_url() or "")
    with app.connect() as conn, pytest.raises(DBAPIError, match="permission denied"):
        conn.execute(text(statement))
    app.dispose()


def test_even_the_owner_is_stopped_by_the_trigger(admin_url: str, session: Session) -> None:
    owner = create_engine(admin_url)
    with owner.connect() as conn, pytest.raises(DBAPIError, match="append-only"):
        conn.execute(text("DELETE FROM audit_events"))
    owner.dispose()
    assert len(entries(session)) >= 1


@pytest.fixture
def bundle(
    settings: Settings, session: Session, bob: PatientPublic, tmp_path: Path
) -> dict[str, Any]:
    key = audit.load_signing_key(settings.audit_key_path)
    audit.checkpoint(session, key)  # a checkpoint in the middle ...
    audit.record(session, CLINIC_IT, audit.AuditEntry("patient.read", patient_id=bob.id))
    audit.record(session, CLINIC_IT, audit.AuditEntry("patient.read", patient_id=bob.id))
    audit.checkpoint(session, key)  # ... and one at the end
    session.commit()
    out = tmp_path / "audit.json"
    audit.export_bundle(session, key, out)
    data: dict[str, Any] = json.loads(out.read_text())
    assert verify_bundle(data).ok
    return data


def test_an_altered_entry_is_named_by_position(bundle: dict[str, Any]) -> None:
    bundle["entries"][2]["outcome"] = "denied"
    verdict = verify_bundle(bundle)
    assert (verdict.ok, verdict.first_bad_position) == (False, 3)
    assert "altered" in verdict.reason


def test_an_altered_entry_with_a_recomputed_hash_breaks_the_next_link(
    bundle: dict[str, Any],
) -> None:
    bundle["entries"][2]["outcome"] = "denied"
    bundle["entries"][2]["hash"] = entry_hash(bundle["entries"][2])
    verdict = verify_bundle(bundle)
    assert verdict.first_bad_position == 4


def test_a_removed_entry_is_named_by_position(bundle: dict[str, Any]) -> None:
    del bundle["entries"][1]
    verdict = verify_bundle(bundle)
    assert (verdict.ok, verdict.first_bad_position) == (False, 2)
    assert "removed" in verdict.reason


def test_reordered_entries_are_named_by_position(bundle: dict[str, Any]) -> None:
    entries_ = bundle["entries"]
    entries_[1], entries_[2] = entries_[2], entries_[1]
    assert verify_bundle(bundle).first_bad_position == 2


def test_removing_the_tail_is_caught_by_the_signed_checkpoint(bundle: dict[str, Any]) -> None:
    del bundle["entries"][-1]
    verdict = verify_bundle(bundle)
    assert not verdict.ok
    assert "checkpoint" in verdict.reason


def test_a_forged_checkpoint_signature_fails(bundle: dict[str, Any]) -> None:
    bundle["checkpoints"][0]["event_hash"] = bundle["entries"][0]["hash"]
    assert "bad signature" in verify_bundle(bundle).reason


def test_export_and_verify_from_the_command_line_offline(
    settings: Settings, bob: PatientPublic, tmp_path: Path
) -> None:
    env = {
        "APPLIANCE_DATA_DIR": str(settings.data_dir),
        "APPLIANCE_DATABASE__URL": settings.database.url or "",
    }
    out = tmp_path / "bundle.json"
    exported = run_cli("audit", "export", "--out", str(out), "--json", env=env)
    assert exported.returncode == 0, exported.stderr
    # verify needs no database and no data dir at all
    verified = run_cli("audit", "verify", str(out), "--json")
    assert verified.returncode == 0, verified.stderr
    report = json.loads(verified.stdout)
    assert report["ok"] is True
    assert report["entries"] == json.loads(exported.stdout)["entries"]
    data = json.loads(out.read_text())
    assert data["entries"][-1]["action"] == "audit.export"
    data["entries"][1]["action"] = "user.delete"
    out.write_text(json.dumps(data))
    failed = run_cli("audit", "verify", str(out))
    assert failed.returncode == 1
    assert failed.stderr.strip() == (
        "Error: audit log fails verification: "
        "position 2: its content does not match its hash (altered)"
    )
    wrong_key = run_cli("audit", "verify", str(out), "--expect-key", "0" * 16)
    assert "not 0000000000000000" in wrong_key.stderr
