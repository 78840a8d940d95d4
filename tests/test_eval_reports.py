"""`appliance eval reports`: the committed set parses and covers what the evaluation needs, the
figures' arithmetic on made-up drafts, and the whole set drafted with an injected fake model."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from appliance.errors import Invalid
from appliance.reports.document import HomeworkItem, Report, RiskFinding, RiskStatus, Statement
from appliance.reports.draft import Drafted
from appliance.reports.evaluate import (
    ExpectedItem,
    Outcome,
    Scripted,
    evaluate,
    load_set,
    pair_homework,
    render,
    score,
)
from appliance.reports.models import RiskCategory
from appliance.settings import load_settings
from tests.chat_fakes import FakeChatModel
from tests.conftest import REPO, run_cli

SET = REPO / "demo" / "reports" / "set.toml"


def test_the_committed_set_parses_and_passes_its_own_check() -> None:
    sessions = load_set(SET)
    assert 6 <= len(sessions) <= 8
    for scripted in sessions:
        assert 20 <= len(scripted.lines) <= 40, scripted.key
        assert [line.start for line in scripted.lines] == [
            6.0 * n for n in range(len(scripted.lines))
        ]
    checked = subprocess.run(
        [sys.executable, str(REPO / "demo" / "reports" / "check_set.py"), str(SET)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout


def test_the_set_has_every_kind_of_session_the_evaluation_needs() -> None:
    sessions = load_set(SET)
    flagged = {c for s in sessions for c, st in s.risk.items() if st == RiskStatus.flagged}
    assert {RiskCategory.suicidal_ideation, RiskCategory.abuse_neglect} <= flagged
    screened = [s for s in sessions if s.risk.get(RiskCategory.suicidal_ideation) == "discussed"]
    assert screened
    assert sum(not s.risk for s in sessions) >= 2  # no risk talk at all
    assert sum(1 <= len(s.homework) <= 3 for s in sessions) >= 5
    assert any(not s.homework for s in sessions)  # drafted homework there is noise


def _drafted(report: Report, dropped: int = 0) -> Drafted:
    return Drafted(report, "made-up", "0" * 64, windows=1, dropped=dropped)


def test_the_figures_count_matches_extras_flags_and_assumed_normal_phrases() -> None:
    walk = ExpectedItem(("walk",), often="every day", due="next")
    letter = ExpectedItem(("letter",), due="next")
    flagged_si = {RiskCategory.suicidal_ideation: RiskStatus.flagged}
    first = Scripted("first", (), (walk, letter), flagged_si)
    second = Scripted("second", (), (), {RiskCategory.abuse_neglect: RiskStatus.discussed})
    first_report = Report(
        summary=(Statement("The patient denies feeling low."),),
        homework=(
            HomeworkItem("Go for a walk", "every day", "Friday"),
            HomeworkItem("Go for a walk", "every day", None),  # a duplicate: noise
        ),
    )
    second_report = Report(
        homework=(HomeworkItem("Read the leaflet"),),
        risk=(
            RiskFinding(RiskCategory.self_harm, RiskStatus.flagged),
            RiskFinding(RiskCategory.abuse_neglect, RiskStatus.discussed),
        ),
    )
    result = score(
        [
            Outcome(first, _drafted(first_report, dropped=2), 10.0),
            Outcome(second, _drafted(second_report, dropped=1), 30.0),
        ]
    )
    assert (result["homework_expected"], result["homework_drafted"]) == (2, 3)
    assert result["homework_recall"] == 0.5
    assert result["homework_precision"] == 0.3333
    assert result["homework_fields_right"] == 0.5  # "every day" right, due "Friday" wrong
    assert (result["flags_expected"], result["flags_drafted"]) == (1, 1)
    assert result["flag_recall"] == 0.0
    assert result["flag_precision"] == 0.0
    assert result["not_assessed_kept"] == 0.8333  # 5 of the 6 expected not assessed
    assert result["risk_status_right"] == 0.75
    assert result["assumed_normal_phrases"] == 1  # "denies"
    assert result["dropped_notes"] == 3
    assert result["seconds_per_report"] == 20.0
    assert not result["goals_met"]
    failed = {f["session"]: f for f in result["failures"]}
    assert failed["first"]["homework_missed"] == ["letter"]
    assert failed["first"]["homework_extra"] == ["Go for a walk"]
    assert failed["first"]["risk"] == ["suicidal_ideation: not_assessed not flagged"]
    assert failed["second"]["homework_extra"] == ["Read the leaflet"]
    text = render({**result, "set": "made-up.toml", "sessions": 2, "model": "made-up"})
    assert "homework recall       0.50   precision 0.33" in text
    assert "goals NOT met" in text


def test_a_drafted_item_matches_one_expected_item_at_most() -> None:
    walk = ExpectedItem(("walk",))
    pairs = pair_homework([walk, walk], [HomeworkItem("Go for a walk daily")])
    assert len(pairs) == 1


def test_the_evaluator_drafts_the_whole_set_with_an_injected_model(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path, models_dir=REPO / "models")
    model = FakeChatModel(reply="SUMMARY: The patient denies suicidal ideation. [1]")
    result = evaluate(settings, model=model)
    assert (result["reports"], result["sessions"], result["model"]) == (8, 8, "fake-chat")
    assert len(model.calls) == 8  # one window each: the sessions are short
    # The appliance's own checks carry homework and risk, whatever the model says.
    assert result["homework_recall"] >= 0.8
    assert result["homework_precision"] >= 0.8
    assert result["flag_recall"] == 1.0
    assert result["flag_precision"] == 1.0
    assert result["not_assessed_kept"] == 1.0
    assert result["assumed_normal_phrases"] == 0
    assert result["assumed_normal_notes_dropped"] == 8
    assert result["goals_met"]
    assert "all goals met" in render(result)


def test_eval_reports_refuses_a_file_that_is_not_a_report_set(tmp_path: Path) -> None:
    bogus = tmp_path / "set.toml"
    bogus.write_text('[[sessions]]\nkey = "x"\nlines = [["doctor", "Hi."]]\nhomework = []\n')
    result = run_cli("eval", "reports", str(bogus), env={"APPLIANCE_DATA_DIR": str(tmp_path)})
    assert result.returncode == 1
    assert result.stderr.startswith("Error: set.toml is not a report set")
    assert len(result.stderr.strip().splitlines()) == 1


ONE_LINE = '[[sessions]]\nkey = "x"\nlines = [["patient", "Hi."]]\n'


@pytest.mark.parametrize(
    "labels",
    ["homework = [{ what = [] }]\nrisk = {}\n", 'homework = []\nrisk = { x = "flagged" }\n'],
)
def test_a_malformed_label_is_refused_with_one_line(tmp_path: Path, labels: str) -> None:
    bogus = tmp_path / "set.toml"
    bogus.write_text(ONE_LINE + labels)
    with pytest.raises(Invalid, match="is not a report set"):
        load_set(bogus)
