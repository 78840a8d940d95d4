"""The AI report drafter (`appliance.reports.draft`): every statement linked to the utterances
it came from, long sessions mapped in windows that fit the context, risk and homework carried
by the appliance's own checks rather than the model's word, and never an assumed-normal phrase.
Domain tests run on a scripted fake model; one test drafts with the real demo GGUF."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from appliance.chat.llm import ChatMessage, GenerationOptions, LlamaServiceClient, ModelUnavailable
from appliance.errors import Invalid
from appliance.reports import homework, prompt, risk
from appliance.reports.document import Line, NoteFormat, Report, RiskStatus, Source, sections
from appliance.reports.draft import Drafted, Profile, draft_report, parse_notes
from appliance.reports.models import RiskCategory
from tests.chat_fakes import FakeChatModel
from tests.test_llm_service import llm_process


@dataclass
class ScriptedModel:
    """A `ChatModel` whose reply is worked out from the request: `answer(messages)`. Records
    every request; the reply comes in word pieces like a real stream."""

    answer: Callable[[Sequence[ChatMessage]], str]
    model_id: str = "scripted"
    calls: list[list[ChatMessage]] = field(default_factory=list)
    options: list[GenerationOptions] = field(default_factory=list)

    def stream(self, messages: Sequence[ChatMessage], options: GenerationOptions) -> Iterator[str]:
        self.calls.append(list(messages))
        self.options.append(options)
        yield from re.findall(r"\S+\s*|\s+", self.answer(messages))


def replying(text: str) -> ScriptedModel:
    return ScriptedModel(lambda _: text)


def numbers_of(messages: Sequence[ChatMessage]) -> list[int]:
    """The utterance numbers of the window in a map request (its last message)."""
    return [int(n) for n in re.findall(r"^\[(\d+)\]", messages[-1].content, re.MULTILINE)]


def transcript(*pairs: tuple[str, str], seconds: float = 6.0) -> list[Line]:
    return [
        Line(n * seconds, (n + 1) * seconds, role, text) for n, (role, text) in enumerate(pairs)
    ]


SLEEP = transcript(
    ("therapist", "Welcome back. How did the week go with your sleep?"),
    ("patient", "Badly. I lay awake until three on Thursday worrying about my deadline."),
    ("therapist", "What did you do while you were lying awake?"),
    ("patient", "I checked my work email on my phone, which made the worry worse."),
    ("therapist", "Let's talk about keeping the phone out of the bedroom."),
    ("patient", "That would be hard, but I can see why it matters."),
    (
        "therapist",
        "I'd like you to keep a sleep diary every morning until our next session, "
        "and charge your phone in the kitchen.",
    ),
    ("patient", "Okay, I can do that."),
)


def report_text(report: Report) -> str:
    return "\n".join(
        st.text for f in NoteFormat for section in sections(report, f) for st in section.statements
    )


# Linking ------------------------------------------------------------------------------------


def test_each_statement_is_linked_to_the_times_and_speakers_of_the_utterances_it_cites() -> None:
    model = replying(
        "SUMMARY: The patient lay awake until three worrying about a deadline. [2]\n"
        "POINT: Checking work email on the phone made the worry worse. [4]\n"
        "INTERVENTION: The therapist talked about keeping the phone out of the bedroom. [5]\n"
    )
    drafted = draft_report(SLEEP, model)
    report = drafted.report
    assert [s.text for s in report.summary] == [
        "The patient lay awake until three worrying about a deadline."
    ]
    assert report.summary[0].sources == (Source(6.0, 12.0, "patient"),)
    assert report.key_points[0].sources == (Source(18.0, 24.0, "patient"),)
    assert report.interventions[0].sources == (Source(24.0, 30.0, "therapist"),)
    assert (drafted.windows, drafted.dropped, drafted.model_id) == (1, 0, "scripted")


def test_a_statement_citing_no_utterance_or_one_outside_its_window_is_dropped_and_counted() -> None:
    model = replying(
        "POINT: Checking work email on the phone made the worry worse.\n"
        "POINT: The patient lay awake until three. [99]\n"
        "POINT: The patient worried about a deadline. [2]\n"
    )
    drafted = draft_report(SLEEP, model)
    assert [s.text for s in drafted.report.key_points] == ["The patient worried about a deadline."]
    assert drafted.dropped == 2


def test_a_statement_the_cited_utterance_does_not_support_is_dropped() -> None:
    drafted = draft_report(SLEEP, replying("POINT: The patient plans a holiday in Spain. [2]\n"))
    assert drafted.report.key_points == ()
    assert drafted.dropped == 1


def test_a_statement_cited_one_line_off_is_linked_to_the_neighbour_that_says_it() -> None:
    drafted = draft_report(SLEEP, replying("POINT: Checking work email made the worry worse. [5]"))
    assert drafted.report.key_points[0].sources == (Source(18.0, 24.0, "patient"),)


def test_a_copy_of_the_worked_example_or_a_copied_question_is_dropped() -> None:
    model = replying(
        "INTERVENTION: The therapist listed other things to do after work. [5]\n"
        "POINT: What did you do while you were lying awake? [3]\n"
    )
    drafted = draft_report(SLEEP, model)
    assert drafted.report.interventions == ()
    assert drafted.report.key_points == ()
    assert drafted.dropped == 2


def test_notes_are_parsed_with_their_cited_numbers_and_ranges() -> None:
    notes = parse_notes(
        "Here are the notes:\nSUMMARY: A talk about sleep. [2, 4]\n- POINT: Worry. [3-5]\n"
        "HOMEWORK: keep a diary | every morning | next session [7]\nNONSENSE: x [1]\n"
    )
    assert [(n.kind, n.text, n.numbers) for n in notes] == [
        ("SUMMARY", "A talk about sleep.", (2, 4)),
        ("POINT", "Worry.", (3, 4, 5)),
        ("HOMEWORK", "keep a diary | every morning | next session", (7,)),
    ]


# Long transcripts -----------------------------------------------------------------------------


def long_session(utterances: int) -> list[Line]:
    said = [
        ("therapist", "How did you feel when your manager moved the deadline again this week?"),
        ("patient", "Angry at first and then tired, because I had already worked late twice."),
    ]
    return transcript(*(said[n % 2] for n in range(utterances)), seconds=5.0)


def first_line_notes(messages: Sequence[ChatMessage]) -> str:
    """A map reply with a point on the window's first therapist utterance and a summary on its
    first patient utterance; a reduce reply repeating the first note it was given."""
    content = messages[-1].content
    if "Notes on the parts of one session" in content:
        first = re.search(r"^- (.*)$", content, re.MULTILINE)
        return f"{first[1] if first else ''} More followed."
    said = re.findall(r"^\[(\d+)\] (\w+): (.*)$", content, re.MULTILINE)
    patient = next(s for s in said if s[1] == "patient")
    therapist = next(s for s in said if s[1] == "therapist")
    words = " ".join(re.findall(r"[\w']+", patient[2])[:6])
    return (
        f"SUMMARY: The patient talked about {words} [{patient[0]}]\n"
        f"POINT: The manager moved the deadline again. [{therapist[0]}]\n"
    )


def test_a_long_transcript_is_mapped_in_windows_that_fit_the_context() -> None:
    lines = long_session(700)  # about an hour of talk, far beyond one 4k context
    model = ScriptedModel(first_line_notes)
    percents: list[int] = []
    drafted = draft_report(
        lines, model, max_tokens=400, context_tokens=4096, progress=percents.append
    )
    assert drafted.windows >= 3
    for messages in model.calls:
        estimated = sum(prompt.estimate_tokens(m.content) for m in messages)
        assert estimated + 400 <= 4096
    windows = [numbers_of(messages) for messages in model.calls[: drafted.windows]]
    assert [w[0] for w in windows] == [1, *(w[-1] + 1 for w in windows[:-1])]  # no gap
    assert windows[-1][-1] == len(lines)
    assert percents == sorted(percents)
    assert percents[-1] == 100
    # Every window's point kept its own utterance (the same words: folded into one statement).
    [point] = drafted.report.key_points
    firsts = [next(n for n in w if lines[n - 1].speaker == "therapist") for w in windows]
    assert {s.start for s in point.sources} == {lines[n - 1].start for n in firsts}
    assert all(s.speaker == "therapist" for s in point.sources)
    assert all(o.temperature == 0.0 for o in model.options)


VARIED = [
    ("therapist", "How was the weekend with your sister visiting?"),
    ("patient", "Tense. She criticised my cooking and my flat within an hour of arriving."),
    ("therapist", "What did you notice in your body when she said that?"),
    ("patient", "My stomach knotted up and I went quiet, like when I was a teenager."),
    ("therapist", "And how did the job interview on Tuesday go?"),
    ("patient", "Better than expected. The panel laughed at my joke about spreadsheets."),
    ("therapist", "How has your sleep been since you stopped drinking coffee after lunch?"),
    ("patient", "Deeper. I woke only once on Thursday, when the neighbour's dog barked."),
    ("therapist", "Tell me about the argument with your landlord."),
    ("patient", "He wants to raise the rent by a third and refuses to fix the boiler."),
    ("therapist", "What did your friend Dario suggest?"),
    ("patient", "Dario thinks I should join the tenants union and write a formal letter."),
]


def test_the_windows_summaries_are_reduced_to_one_linked_to_all_of_their_sources() -> None:
    lines = transcript(*(VARIED * 6))
    model = ScriptedModel(first_line_notes)
    percents: list[int] = []
    drafted = draft_report(
        lines, model, max_tokens=100, context_tokens=1200, progress=percents.append
    )
    assert drafted.windows >= 3
    assert len(model.calls) == drafted.windows + 1  # the map calls and one reduce
    assert len(percents) == drafted.windows + 1
    assert percents[-1] == 100
    mapped = [
        next(n for n in numbers_of(m) if lines[n - 1].speaker == "patient")
        for m in model.calls[:-1]
    ]
    [summary] = drafted.report.summary
    assert summary.text == "The patient talked about Tense She criticised my cooking and."
    assert {s.start for s in summary.sources} == {lines[n - 1].start for n in mapped}


def test_an_unsupported_reduced_summary_falls_back_to_the_windows_summaries() -> None:
    def answer(messages: Sequence[ChatMessage]) -> str:
        if "Notes on the parts of one session" in messages[-1].content:
            return "The patient is doing well and enjoys gardening."
        return first_line_notes(messages)

    lines = transcript(*(VARIED * 6))
    drafted = draft_report(lines, ScriptedModel(answer), max_tokens=100, context_tokens=1200)
    assert len(drafted.report.summary) > 1
    assert all(s.text.startswith("The patient talked about") for s in drafted.report.summary)
    assert all(s.sources for s in drafted.report.summary)


def test_an_utterance_too_long_for_a_window_is_cut_to_fit_and_keeps_its_number() -> None:
    lines = [*SLEEP[:2], Line(12.0, 600.0, "patient", "I kept going over it. " * 1500), *SLEEP[3:]]
    model = replying("")
    drafted = draft_report(lines, model, max_tokens=400, context_tokens=4096)
    assert drafted.windows == 3
    for messages in model.calls:
        assert sum(prompt.estimate_tokens(m.content) for m in messages) + 400 <= 4096
    assert numbers_of(model.calls[1]) == [3]


def test_a_context_too_small_for_any_window_is_refused() -> None:
    with pytest.raises(Invalid, match="raise \\[llm\\] n_ctx"):
        draft_report(SLEEP, replying(""), max_tokens=400, context_tokens=700)


# Risk -------------------------------------------------------------------------------------


LOW_MOOD = transcript(
    ("therapist", "How has your mood been this week?"),
    ("patient", "Low. I come home and lie on the sofa until bedtime."),
    ("therapist", "What goes through your mind in the evenings?"),
    ("patient", "Lately I keep thinking everyone would be better off without me."),
    ("therapist", "Thank you for telling me. We'll make a safety plan together today."),
)


def test_a_planted_suicidal_disclosure_is_flagged_with_its_utterance_when_the_model_is_silent() -> (
    None
):
    drafted = draft_report(LOW_MOOD, replying("SUMMARY: A talk about mood. [1]"))
    found = drafted.report.finding(RiskCategory.suicidal_ideation)
    assert found.status == RiskStatus.flagged
    assert found.sources == (Source(18.0, 24.0, "patient"),)
    others = [f for f in drafted.report.risk_assessment() if f.category != found.category]
    assert all(f.status == RiskStatus.not_assessed for f in others)


SCREENED = transcript(
    (
        "therapist",
        "I ask everyone this. Have you had any thoughts of suicide or of ending your life?",
    ),
    ("patient", "No, never. I'm frustrated, but I want my life back."),
    ("therapist", "Thank you. Let's plan the week."),
)


def test_a_screening_question_answered_no_is_discussed_with_the_question_and_answer() -> None:
    drafted = draft_report(SCREENED, replying(""))
    found = drafted.report.finding(RiskCategory.suicidal_ideation)
    assert found.status == RiskStatus.discussed
    assert found.sources == (Source(0.0, 6.0, "therapist"), Source(6.0, 12.0, "patient"))
    assert "denies" not in report_text(drafted.report).lower()


def test_a_session_without_risk_talk_is_not_assessed_for_every_category_and_never_denies() -> None:
    model = replying(
        "SUMMARY: Patient denies suicidal ideation. [2]\n"
        "POINT: No safety concerns were raised. [4]\n"
        "POINT: The patient has no thoughts of self-harm. [2]\n"
        "POINT: The patient lay awake until three worrying about a deadline. [2]\n"
    )
    drafted = draft_report(SLEEP, model)
    report = drafted.report
    assert [f.status for f in report.risk_assessment()] == [RiskStatus.not_assessed] * 4
    assert [s.text for s in report.key_points] == [
        "The patient lay awake until three worrying about a deadline."
    ]
    assert report.summary == ()
    assert drafted.assumed_normal == 3
    text = report_text(report).lower()
    for phrase in ("denies", "no risk", "no concern", "within normal limits", "no safety"):
        assert phrase not in text
    assert "suicidal ideation: not assessed." in text


@pytest.mark.parametrize(
    ("text", "normal"),
    [
        ("Patient denies suicidal ideation.", True),
        ("No risk to self or others.", True),
        ("Mental status within normal limits.", True),
        ("The patient is not suicidal.", True),
        ("She said she has no thoughts of hurting anyone.", True),
        ("The patient worried about a deadline.", False),
        ("The patient described thoughts of suicide.", False),
    ],
)
def test_assumed_normal_wording_is_recognised(text: str, normal: bool) -> None:
    assert risk.assumed_normal(text) is normal


def test_a_model_risk_note_adds_a_flag_only_where_the_cited_words_match_the_category() -> None:
    lines = transcript(
        ("therapist", "How have the evenings been?"),
        ("patient", "Some nights I think about just not being around anymore."),
        ("therapist", "And work?"),
        ("patient", "Work is fine, I like my team."),
    )
    drafted = draft_report(lines, replying("RISK: suicide [2]\nRISK: harm to others [4]\n"))
    found = drafted.report.finding(RiskCategory.suicidal_ideation)
    assert found.status == RiskStatus.flagged  # the patterns miss this wording; the model not
    assert found.sources == (Source(6.0, 12.0, "patient"),)
    assert drafted.report.finding(RiskCategory.harm_to_others).status == RiskStatus.not_assessed
    assert drafted.dropped == 1


@pytest.mark.parametrize(
    ("said", "category", "status"),
    [
        ("Sometimes I wish I could go to sleep and never wake up.", "suicidal_ideation", "flagged"),
        ("No, but sometimes I want to die.", "suicidal_ideation", "flagged"),
        ("I'm not suicidal, just exhausted.", "suicidal_ideation", "discussed"),
        ("I started cutting again, on my arms.", "self_harm", "flagged"),
        ("He grabbed my arm and pushed me against the wall.", "abuse_neglect", "flagged"),
        ("Some days I want to hurt my boss.", "harm_to_others", "flagged"),
        ("It would be easier for everyone if I just wasn't here.", "suicidal_ideation", "flagged"),
        ("My stepdad used to hit me when I was little.", "abuse_neglect", "flagged"),
        ("There was never any food in the house.", "abuse_neglect", "flagged"),
        ("No, I've never thought about ending my life.", "suicidal_ideation", "discussed"),
        ("This job is killing me, and the deadline is going to kill me.", None, None),
        ("I'm dying to see the new film, I could murder a pizza.", None, None),
        ("My grandmother died in March and it still hits me out of nowhere.", None, None),
        ("The film about the war was hard to watch.", None, None),
    ],
)
def test_what_the_patient_says_is_flagged_discussed_or_left_unassessed(
    said: str, category: str | None, status: str | None
) -> None:
    findings = risk.assess(transcript(("therapist", "How was your week?"), ("patient", said)))
    raised = {f.category.value: f.status.value for f in findings if f.sources}
    assert raised == ({category: status} if category else {})


def test_speakers_of_unknown_role_are_screened_flagged_and_assigned_by_what_they_say() -> None:
    lines = transcript(
        ("SPEAKER_00", "Have you had any thoughts of suicide?"),
        ("SPEAKER_01", "No, never."),
        ("SPEAKER_00", "Has anyone at home hurt you?"),
        ("SPEAKER_01", "My brother hit me last month."),
        ("SPEAKER_00", "I'd like you to call the advice line before our next session."),
    )
    drafted = draft_report(lines, replying(""))
    report = drafted.report
    assert report.finding(RiskCategory.suicidal_ideation).status == RiskStatus.discussed
    abuse = report.finding(RiskCategory.abuse_neglect)
    assert (abuse.status, abuse.sources) == (RiskStatus.flagged, (lines[3].source,))
    assert [h.what for h in report.homework] == ["Call the advice line"]


def test_the_therapist_words_alone_never_raise_a_flag() -> None:
    lines = transcript(
        ("therapist", "Many people with low mood have thoughts of suicide; we will watch for it."),
        ("patient", "Okay."),
    )
    assert all(f.status == RiskStatus.not_assessed for f in risk.assess(lines))


# Homework -----------------------------------------------------------------------------------


def test_homework_is_structured_and_linked_to_the_utterance_that_assigned_it() -> None:
    drafted = draft_report(SLEEP, replying(""))
    [item] = drafted.report.homework
    assert item.what == "Keep a sleep diary"
    assert (item.how_often, item.due) == ("every morning", "next session")
    assert item.sources == (Source(36.0, 42.0, "therapist"),)


def test_the_model_homework_is_merged_with_the_detected_item_and_never_duplicates_it() -> None:
    model = replying("HOMEWORK: keep a sleep diary | every morning | next session [7]\n")
    drafted = draft_report(SLEEP, model)
    assert [h.what for h in drafted.report.homework] == ["Keep a sleep diary"]


def test_a_model_homework_note_stands_only_where_its_utterance_asks_for_that_task() -> None:
    lines = transcript(
        ("therapist", "What did you do while you were lying awake?"),
        ("patient", "I checked my email."),
        ("therapist", "Could you read the leaflet about sleep I gave you?"),
        ("patient", "Sure."),
    )
    model = replying(
        "HOMEWORK: check email | every night | next week [1]\n"
        "HOMEWORK: go for a run | three evenings | this week [3]\n"
        "HOMEWORK: read the leaflet about sleep | | [3]\n"
    )
    drafted = draft_report(lines, model)
    assert [(h.what, h.sources) for h in drafted.report.homework] == [
        ("Read the leaflet about sleep", (Source(12.0, 18.0, "therapist"),))
    ]
    assert drafted.dropped == 2


@pytest.mark.parametrize(
    ("said", "what", "how_often", "due"),
    [
        (
            "So for homework, I'd like you to stand at the station entrance for ten minutes, "
            "three times this week.",
            "Stand at the station entrance for ten minutes",
            "three times this week",
            None,
        ),
        (
            "Between now and next week, I'd like you to go for a twenty minute walk every day.",
            "Go for a twenty minute walk",
            "every day",
            "next week",
        ),
        (
            "Here's my suggestion for this week. Whenever you feel the urge, try the ice cubes "
            "first, and write down what happened.",
            "Try the ice cubes first",
            "whenever you feel the urge",
            "this week",
        ),
        (
            "Your homework this week is to fill in the thought record whenever your mood drops.",
            "Fill in the thought record",
            "whenever your mood drops",
            "this week",
        ),
        (
            "What I'd like you to do is write down three things that went well each evening.",
            "Write down three things that went well",
            "each evening",
            None,
        ),
        (
            "For next time, read chapter two of the workbook.",
            "Read chapter two of the workbook",
            None,
            "next time",
        ),
        (
            "So the plan for this week: walk the dog every morning.",
            "Walk the dog",
            "every morning",
            "this week",
        ),
        (
            "I'd encourage you to call your sister before we meet again.",
            "Call your sister",
            None,
            "next session",
        ),
        (
            "Please bring the completed form to our next session.",
            "Bring the completed form",
            None,
            "next session",
        ),
        (
            "And please agree on a time-out signal with your wife before next session.",
            "Agree on a time-out signal with your wife",
            None,
            "next session",
        ),
    ],
)
def test_a_therapist_assignment_becomes_what_how_often_and_by_when(
    said: str, what: str, how_often: str | None, due: str | None
) -> None:
    [(_, task)] = homework.detect(transcript(("therapist", said)))
    assert (task.what, task.how_often, task.due) == (what, how_often, due)


@pytest.mark.parametrize(
    "said",
    [
        "I'd like you to tell me about one of those memories.",
        "Let's try the slow breathing together now.",
        "I'll send you the questionnaires by email this week.",
        "Next time we'll look at your diary together.",
        "If the thoughts get stronger before we meet, please call the crisis line.",
        "Could you talk to her about it?",
        "I want you to know that this is very common.",
        "Take your time.",
        "Last week you said you would try the breathing every morning. How did that go?",
        "Every morning, what's the first thing you think about?",
        "Did you manage to keep the diary every day?",
        "Try to describe what you felt in that moment.",
        "Please, sit down wherever you like.",
    ],
)
def test_requests_for_now_the_therapists_own_tasks_and_emergency_advice_are_not_homework(
    said: str,
) -> None:
    assert homework.detect(transcript(("therapist", said))) == []


def test_the_patient_is_never_given_homework_from_their_own_words() -> None:
    lines = transcript(("patient", "I'd like you to call my mother every day this week."))
    assert homework.detect(lines) == []


# Profile, provenance, errors ---------------------------------------------------------------------

PROFILE = Profile(
    approach="ACT",
    tone="warm, concise",
    preferred_terms="values, willingness",
    example_notes="Client explored values around family; practised defusion.",
)


def test_the_profile_reaches_the_system_prompt_of_every_call() -> None:
    model = replying("")
    draft_report(SLEEP, model, profile=PROFILE)
    system = model.calls[0][0]
    assert system.role == "system"
    for text in ("ACT", "warm, concise", "values, willingness", "practised defusion"):
        assert text in system.content
    assert not any("practised defusion" in m.content for m in model.calls[0][1:])


def test_the_prompt_hash_is_the_same_for_any_transcript_and_changes_with_the_profile() -> None:
    first = draft_report(SLEEP, replying(""), profile=PROFILE)
    second = draft_report(LOW_MOOD, replying(""), profile=PROFILE)
    other = draft_report(SLEEP, replying(""), profile=Profile(approach="CBT"))
    plain = draft_report(SLEEP, replying(""))
    assert re.fullmatch(r"[0-9a-f]{64}", first.prompt_hash)
    assert first.prompt_hash == second.prompt_hash
    assert len({first.prompt_hash, other.prompt_hash, plain.prompt_hash}) == 3


def test_an_empty_transcript_is_invalid() -> None:
    with pytest.raises(Invalid, match="empty"):
        draft_report([], replying(""))
    with pytest.raises(Invalid, match="empty"):
        draft_report(transcript(("patient", "   ")), replying(""))


def test_a_model_failure_propagates_instead_of_leaving_a_half_draft() -> None:
    with pytest.raises(ModelUnavailable):
        draft_report(SLEEP, FakeChatModel(reply="SUMMARY: sleep [2]", fail_after=1))


def test_a_looping_reply_is_cut_off_and_its_stream_closed() -> None:
    looping = "POINT: Checking work email made the worry worse. [4]\n" * 30
    model = FakeChatModel(reply=looping)
    drafted = draft_report(SLEEP, model)
    assert model.closed_early
    assert model.produced < len(model.pieces())
    assert len(drafted.report.key_points) == 1


def test_the_reply_is_capped_at_max_tokens_and_decoded_greedily() -> None:
    model = replying("")
    draft_report(SLEEP, model, max_tokens=123)
    assert [(o.max_tokens, o.temperature) for o in model.options] == [(123, 0.0)]


# The real demo model ----------------------------------------------------------------------------


@pytest.mark.model
@pytest.mark.timeout(240)
def test_the_demo_gguf_drafts_a_report_whose_homework_is_found_and_linked(tmp_path: Path) -> None:
    with llm_process(tmp_path) as base, LlamaServiceClient(base) as model:
        drafted: Drafted = draft_report(SLEEP, model)
    report = drafted.report
    assert drafted.model_id.startswith("qwen2.5-0.5b-instruct-q4@sha256:")
    assert drafted.windows == 1
    [item] = report.homework
    assert "sleep diary" in item.what.lower()
    assert item.sources == (SLEEP[6].source,)
    statements = report.summary + report.key_points + report.interventions + report.plan
    assert all(s.sources for s in statements)
    assert all(src in {line.source for line in SLEEP} for s in statements for src in s.sources)
    assert [f.status for f in report.risk_assessment()] == [RiskStatus.not_assessed] * 4
    assert "denies" not in report_text(report).lower()


@pytest.mark.parametrize(
    ("said", "expected"),
    [
        (  # the demo's dialogue, as faster-whisper heard it
            "Let us keep the walks and add five minutes of slow breathing before bed.",
            [("Keep the walks", None), ("Add five minutes of slow breathing", "before bed")],
        ),
        (
            "I'd like you to walk every morning and write one good thing each evening.",
            [("Walk", "every morning"), ("Write one good thing", "each evening")],
        ),
        (
            "Keep the diary every morning, and bring it next Tuesday.",
            [("Keep the diary", "every morning")],
        ),
        (
            "Before our next session, I'd like you to pack a small bag with your documents, "
            "and leave it at Ana's place.",
            [("Pack a small bag with your documents", None)],
        ),
        ("Let's try it now together.", []),
        ("Let us talk about your mother.", []),
    ],
)
def test_a_sentence_asking_for_two_tasks_gives_two_homework_items_and_carrying_on_counts(
    said: str, expected: list[tuple[str, str | None]]
) -> None:
    found = homework.detect([Line(0.0, 5.0, "therapist", said)])
    assert [(task.what, task.how_often) for _, task in found] == expected


def test_a_first_person_disclosure_is_flagged_even_when_diarization_gave_it_to_the_therapist() -> (
    None
):
    lines = transcript(
        ("patient", "How have the evenings been?"),
        ("therapist", "Honestly, some nights I think about killing myself."),
    )
    found = {f.category: f for f in risk.assess(lines)}
    assert found[RiskCategory.suicidal_ideation].status == RiskStatus.flagged
    assert found[RiskCategory.suicidal_ideation].sources[0].speaker == "therapist"
