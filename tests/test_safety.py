"""Crisis language and out-of-scope questions are caught before any model sees them."""

from __future__ import annotations

import pytest

from appliance.chat.safety import (
    CRISIS_PATTERNS,
    SCOPE_PATTERNS,
    CrisisCategory,
    ScopeCategory,
    detect_crisis,
    detect_out_of_scope,
    redirect_text,
)

SUICIDE, SELF_HARM, OTHERS = (
    CrisisCategory.suicide,
    CrisisCategory.self_harm,
    CrisisCategory.harm_to_others,
)


@pytest.mark.parametrize(
    ("text", "category"),
    [
        # The examples.
        ("I want to kill myself", SUICIDE),
        ("I don't want to be here anymore", SUICIDE),
        ("I keep thinking about ending it all", SUICIDE),
        ("everyone would be better off without me", SUICIDE),
        ("I've been cutting again", SELF_HARM),
        ("I want to hurt myself", SELF_HARM),
        ("I took too many pills on purpose", SELF_HARM),
        ("I'm going to hurt him", OTHERS),
        ("I want to kill my boss", OTHERS),
        ("there's no reason to live", SUICIDE),
        ("I wish I could go to sleep and never wake up", SUICIDE),
        ("kms", SUICIDE),
        ("honestly i might just unalive myself", SUICIDE),
        ("I feel suicidal", SUICIDE),
        # Decided: any mention of suicide fires; a kind crisis text costs little.
        ("the movie was about suicide prevention", SUICIDE),
        # Our own: paraphrases, misspellings, typography.
        ("I\u2019ve been thinking about killing myself", SUICIDE),
        ("I have a plan to end my life", SUICIDE),
        ("sometimes I just want to die", SUICIDE),
        ("I want to just die", SUICIDE),
        ("I wish I was dead", SUICIDE),
        ("they'd all be better off if I wasn't here", SUICIDE),
        ("life isn't worth living", SUICIDE),
        ("I'm going to jump off the bridge tonight", SUICIDE),
        ("I feel so sucidal lately", SUICIDE),
        ("I keep thinking about suicde", SUICIDE),
        ("I want to kil my self", SUICIDE),
        ("I wish I'd never been born", SUICIDE),
        ("I don't want to live like this anymore", SUICIDE),
        ("What's the point of living?", SUICIDE),
        ("I've been burning myself with a lighter", SELF_HARM),
        ("I relapsed into self-harm last night", SELF_HARM),
        ("I took all of my sleeping pills", SELF_HARM),
        ("I cut my wrists last night", SELF_HARM),
        ("I think I overdosed", SELF_HARM),
        ("I'm having thoughts of hurting my kids", OTHERS),
        ("I'm so angry I could strangle my roommate", OTHERS),
        ("I'm going to beat him up", OTHERS),
        ("sometimes I think about stabbing someone", OTHERS),
        ("I'll kill him if he does that again", OTHERS),
        ("I feel homicidal", OTHERS),
    ],
)
def test_crisis_language_is_detected_with_its_category(text: str, category: CrisisCategory) -> None:
    match = detect_crisis(text)
    assert match is not None, text
    assert match.category == category


@pytest.mark.parametrize(
    "text",
    [
        # The examples.
        "I need something to kill time between appointments",
        "I've been killing it at work",
        "I'm dying to see my nephew",
        "I cut the onions for dinner",
        "I want to cut down on coffee",
        "I hurt my knee running",
        "the homework killed me",
        # Decided: something else "killing me" is hyperbole; only "kill myself" fires.
        "my sister's wedding will kill me with stress",
        # Our own.
        "This traffic is killing me",
        "I killed it in my presentation",
        "I'm dead tired after work",
        "I laughed so hard I nearly died",
        "I'm cutting back on sugar",
        "I've been cutting my hair shorter",
        "My phone died during the call",
        "My dad will kill me if I fail the exam",
        "I ran 5 kms this morning",
        "I'm going to shoot him a text later",
        "I don't want to hurt her feelings",
        "I hurt my back lifting boxes",
        "I don't want to live with my parents anymore",
        "I never want to wake up early again",
        "We cut the session short",
        "The plants died while I was away",
        "I'm going to die of embarrassment",
        "What homework did we discuss last week?",
    ],
)
def test_everyday_idiom_is_not_crisis_language(text: str) -> None:
    assert detect_crisis(text) is None


def test_a_crisis_match_names_its_rule_and_never_repeats_the_text() -> None:
    match = detect_crisis("I want to kill myself")
    assert match is not None
    assert match.pattern_id == "kill_self"
    assert "myself" not in repr(match)


DIAGNOSIS, MEDICATION, JUDGEMENT = (
    ScopeCategory.diagnosis,
    ScopeCategory.medication,
    ScopeCategory.clinical_judgement,
)


@pytest.mark.parametrize(
    ("text", "category"),
    [
        # The examples.
        ("Do I have bipolar?", DIAGNOSIS),
        ("Am I depressed?", DIAGNOSIS),
        ("What's my diagnosis?", DIAGNOSIS),
        ("Is this PTSD?", DIAGNOSIS),
        ("Should I stop taking sertraline?", MEDICATION),
        ("Can I double my dose?", MEDICATION),
        ("What medication should I take?", MEDICATION),
        ("Is it ok to drink on Xanax?", MEDICATION),
        ("Am I getting better?", JUDGEMENT),
        ("Is my therapist right about my mother?", JUDGEMENT),
        ("Should I leave my husband?", JUDGEMENT),
        ("Do I still need therapy?", JUDGEMENT),
        # Our own.
        ("Do you think I have ADHD?", DIAGNOSIS),
        ("Could I be autistic?", DIAGNOSIS),
        ("Am I an alcoholic?", DIAGNOSIS),
        ("Can you diagnose me?", DIAGNOSIS),
        ("Is this a panic attack?", DIAGNOSIS),
        ("Should I get tested for autism?", DIAGNOSIS),
        ("Can I take melatonin with my antidepressant?", MEDICATION),
        ("Is it safe to come off lithium quickly?", MEDICATION),
        ("How much Xanax is too much?", MEDICATION),
        ("I missed a dose, should I take two tomorrow?", MEDICATION),
        ("Which antidepressant is best for anxiety?", MEDICATION),
        ("Does sertraline have side effects?", MEDICATION),
        ("What did we say about my sertraline? Should I stop it?", MEDICATION),
        ("How am I doing compared to other patients?", JUDGEMENT),
        ("Is therapy working for me?", JUDGEMENT),
        ("Should I break up with my boyfriend?", JUDGEMENT),
        ("What would you do in my situation?", JUDGEMENT),
        ("Is it normal to cry after every session?", JUDGEMENT),
        ("Was it my fault that we argued?", JUDGEMENT),
        ("Should I stop seeing my therapist?", JUDGEMENT),
        ("Am I making progress?", JUDGEMENT),
        ("Do you agree with my therapist?", JUDGEMENT),
        ("Is my husband a narcissist?", JUDGEMENT),
    ],
)
def test_requests_for_diagnosis_medication_advice_or_judgement_are_redirected(
    text: str, category: ScopeCategory
) -> None:
    match = detect_out_of_scope(text)
    assert match is not None, text
    assert match.category == category


@pytest.mark.parametrize(
    "text",
    [
        # Decided: asking what was said is retrieval, in scope, even about medicine or diagnosis.
        "What did we say about my medication last week?",
        "When did we talk about my sertraline dose?",
        "Did my therapist say I have PTSD?",
        "What was said about my diagnosis?",
        "What dose did my therapist say the doctor prescribed?",
        # Our own.
        "What homework did we discuss last week?",
        "What did my therapist suggest for my anxiety?",
        "Remind me what we agreed about sleep.",
        "What should I practise this week?",
        "What breathing exercise did we go over?",
        "Have we ever discussed my brother?",
        "What did you tell me about panic attacks?",
        "Which day did I say I would walk?",
        "Do I have homework this week?",
        "Can you summarise my last session?",
        "How did we plan to handle the holidays?",
    ],
)
def test_questions_about_what_was_said_stay_in_scope(text: str) -> None:
    assert detect_out_of_scope(text) is None


@pytest.mark.parametrize("category", list(ScopeCategory))
def test_every_redirect_is_short_kind_and_points_to_the_therapist(
    category: ScopeCategory,
) -> None:
    text = redirect_text(category)
    assert "therapist" in text
    assert len(text) < 240


def test_every_pattern_id_names_one_rule() -> None:
    ids = [
        pattern_id
        for table in (CRISIS_PATTERNS, SCOPE_PATTERNS)
        for patterns in table.values()
        for pattern_id, _ in patterns
    ]
    assert len(ids) == len(set(ids))
