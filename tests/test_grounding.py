"""The appliance, not the model, decides which sentences of an answer are supported and cited."""

from __future__ import annotations

import uuid
from datetime import date

from appliance.chat.grounding import (
    NOT_FOUND,
    extractive_answer,
    ground,
    split_sentences,
    stem,
)
from appliance.retrieval.search import Hit

WALK_SESSION = uuid.uuid4()
SLEEP_SESSION = uuid.uuid4()
WALK = Hit(
    "passage",
    uuid.uuid4(),
    WALK_SESSION,
    date(2026, 11, 12),
    120.0,
    185.5,
    0.9,
    "Therapist: How was the week? Did the walking help?\n"
    "Patient: I walked by the river with my brother Tomasz. It helped a bit.\n"
    "Therapist: Keep walking three mornings a week. And try the 4-7-8 breathing before bed.",
    "Therapist: Keep walking three mornings a week.",
)
SLEEP = Hit(
    "passage",
    uuid.uuid4(),
    SLEEP_SESSION,
    date(2026, 11, 5),
    600.0,
    660.0,
    0.5,
    "Patient: I couldn't sleep most nights.\n"
    "Therapist: Let's write down worries in a notebook before bed.",
    "Patient: I couldn't sleep most nights.",
)
PASSAGES = [WALK, SLEEP]

RAMBLING = """Sure! Here is what I found:
- Your therapist suggested walking three mornings a week.
- You should walk five mornings a week.
- You walked by the river with your sister Maria.
I hope this helps."""


def test_a_rambling_answer_keeps_only_its_true_sentence_with_its_citation() -> None:
    grounded = ground(RAMBLING, PASSAGES)

    assert grounded.supported
    assert grounded.answer == "Your therapist suggested walking three mornings a week."
    (sentence,) = grounded.sentences
    citation = sentence.citation
    assert citation.passage_id == WALK.id
    assert citation.session_id == WALK_SESSION
    assert citation.session_date == date(2026, 11, 12)
    assert (citation.start, citation.end) == (120.0, 185.5)
    assert citation.speaker == "Therapist"
    assert citation.excerpt == "Therapist: Keep walking three mornings a week."
    # The invented number and the invented name are dropped claims; the filler is not listed.
    assert grounded.dropped == (
        "You should walk five mornings a week.",
        "You walked by the river with your sister Maria.",
    )


def test_the_patients_own_words_are_cited_to_the_patient() -> None:
    grounded = ground("You walked along the river with your brother Tomasz.", PASSAGES)

    (sentence,) = grounded.sentences
    assert sentence.citation.speaker == "Patient"
    assert sentence.citation.excerpt == ("Patient: I walked by the river with my brother Tomasz.")


def test_a_paraphrase_passes_through_stemming_and_number_words() -> None:
    grounded = ground("Your therapist asked you to walk 3 mornings each week.", PASSAGES)

    assert grounded.supported
    assert grounded.sentences[0].citation.excerpt.startswith("Therapist: Keep walking")


def test_a_paraphrase_is_cited_to_the_right_session() -> None:
    grounded = ground("You agreed to write your worries down in a notebook before bed.", PASSAGES)

    (sentence,) = grounded.sentences
    assert sentence.citation.session_id == SLEEP_SESSION
    assert sentence.citation.session_date == date(2026, 11, 5)


def test_model_markup_labels_and_citation_markers_do_not_block_support() -> None:
    grounded = ground("- **Homework:** keep walking three mornings a week [1].", PASSAGES)

    assert grounded.answer == "keep walking three mornings a week."


def test_a_changed_digit_is_an_invented_number() -> None:
    assert ground("Try the 4-7-8 breathing before bed.", PASSAGES).supported
    assert not ground("Try the 4-7-9 breathing before bed.", PASSAGES).supported


def test_a_name_from_another_sentence_does_not_count_as_support() -> None:
    grounded = ground("Tomasz told you to keep walking three mornings a week.", PASSAGES)

    assert not grounded.supported


def test_a_negated_claim_is_not_supported_by_its_opposite() -> None:
    assert not ground("You did not walk by the river with Tomasz.", PASSAGES).supported


def test_an_empty_answer_is_not_supported() -> None:
    grounded = ground("", PASSAGES)

    assert not grounded.supported
    assert grounded.answer == ""
    assert grounded.dropped == ()


def test_an_answer_of_only_filler_is_not_supported_and_drops_no_claims() -> None:
    grounded = ground("Sure! Here is what I found: I hope this helps.", PASSAGES)

    assert not grounded.supported
    assert grounded.dropped == ()


def test_an_answer_of_only_inventions_is_not_supported() -> None:
    answer = "You should take 50 mg of sertraline. Dr. Patel prescribed it in March."
    grounded = ground(answer, PASSAGES)

    assert not grounded.supported
    assert grounded.dropped == (
        "You should take 50 mg of sertraline.",
        "Dr. Patel prescribed it in March.",
    )


def test_nothing_is_supported_without_passages() -> None:
    assert not ground("You walked by the river.", []).supported


def test_a_repeated_sentence_is_kept_once() -> None:
    grounded = ground("Keep walking three mornings a week. " * 3, PASSAGES)

    assert len(grounded.sentences) == 1


def test_a_structured_fact_is_cited_without_a_speaker() -> None:
    fact = Hit(
        "fact",
        uuid.uuid4(),
        WALK_SESSION,
        date(2026, 11, 12),
        150.0,
        160.0,
        1.0,
        "Walk three mornings a week before work.",
        "Walk three mornings a week before work.",
    )
    grounded = ground("Your homework is to walk three mornings a week before work.", [fact])

    (sentence,) = grounded.sentences
    assert sentence.citation.speaker is None
    assert sentence.citation.excerpt == "Walk three mornings a week before work."


def test_the_extractive_fallback_quotes_and_cites_passage_sentences() -> None:
    grounded = extractive_answer("What did we say about walking?", PASSAGES)

    assert grounded.supported
    assert len(grounded.sentences) <= 3
    for sentence in grounded.sentences:
        assert sentence.text == sentence.citation.excerpt
        speaker, _, said = sentence.text.partition(": ")
        assert speaker == sentence.citation.speaker
        assert said in WALK.text
        assert sentence.citation.session_id == WALK_SESSION
    assert "Therapist: Keep walking three mornings a week." in grounded.answer


def test_the_extractive_fallback_finds_nothing_for_an_unrelated_question() -> None:
    grounded = extractive_answer("What did we say about my job interview?", PASSAGES)

    assert not grounded.supported


def test_the_extractive_fallback_lists_quotes_in_session_order() -> None:
    grounded = extractive_answer("What did we say about bed?", PASSAGES, max_sentences=2)

    dates = [sentence.citation.session_date for sentence in grounded.sentences]
    assert dates == sorted(dates)
    assert len(dates) == 2


HOLIDAY = Hit(
    "passage",
    uuid.uuid4(),
    SLEEP_SESSION,
    date(2026, 11, 20),
    0.0,
    90.0,
    0.8,
    "Patient: I helped Sofia with her fractions homework without getting impatient.\n"
    "Patient: The worries were mostly about Thanksgiving.\n"
    "Therapist: So here's your homework before Thanksgiving. Write a coping card for your "
    "wallet. Read it every morning.",
    "Therapist: So here's your homework before Thanksgiving.",
)


def test_the_best_line_and_the_lines_after_it_are_quoted_before_earlier_weaker_ones() -> None:
    grounded = extractive_answer(
        "What homework did I get for Thanksgiving?", [HOLIDAY], max_sentences=2, follow=2, limit=3
    )

    assert [s.text for s in grounded.sentences] == [
        "Therapist: So here's your homework before Thanksgiving.",
        "Therapist: Write a coping card for your wallet.",
        "Therapist: Read it every morning.",
    ]  # "get" frames the question: it does not pick "getting impatient"


def test_a_line_repeated_by_overlapping_passages_is_quoted_once() -> None:
    overlap = Hit(
        "passage", uuid.uuid4(), WALK_SESSION, WALK.session_date, 150.0, 200.0, 0.8,
        "Patient: I walked by the river with my brother Tomasz. It helped a bit.",
        "Patient: I walked by the river with my brother Tomasz.",
    )  # fmt: skip

    grounded = extractive_answer("Who did I walk by the river with?", [WALK, overlap], follow=1)

    texts = [s.text for s in grounded.sentences]
    assert texts.count("Patient: I walked by the river with my brother Tomasz.") == 1


def test_lines_the_caller_will_not_show_are_skipped_not_counted() -> None:
    grounded = extractive_answer(
        "What homework did I get for Thanksgiving?",
        [HOLIDAY],
        max_sentences=1,
        follow=1,
        accept=lambda text: "here's" not in text,
    )

    assert [s.text for s in grounded.sentences] == [
        "Therapist: Write a coping card for your wallet."
    ]


def test_sentences_split_around_titles_decimals_and_list_markers() -> None:
    text = (
        "Here is a summary:\n"
        "1. Dr. Lee suggested 2.5 hours of walking.\n"
        "* **Sleep** by 11 p.m. every night!\n"
        "- Write worries down. Then close the notebook."
    )
    assert split_sentences(text) == [
        "Here is a summary:",
        "Dr. Lee suggested 2.5 hours of walking.",
        "Sleep by 11 p.m. every night!",
        "Write worries down.",
        "Then close the notebook.",
    ]


def test_the_stemmer_matches_word_forms_and_number_words() -> None:
    assert {stem(w) for w in ("walked", "walking", "walks", "walk")} == {"walk"}
    assert stem("three") == stem("3") == "3"
    assert stem("stopped") == stem("stop")
    assert stem("breathing") == stem("breathe")
    assert stem("weekly") == stem("week")


def test_the_not_found_text_sends_the_patient_to_their_therapist() -> None:
    assert NOT_FOUND == "I can't find that in your sessions \u2014 please ask your therapist."
