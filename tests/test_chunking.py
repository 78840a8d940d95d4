"""Chunks are whole sentences of consecutive turns, timed by their words, with a small
overlap, and never contain low-confidence text."""

from __future__ import annotations

import itertools

from appliance.pipeline.schemas import SegmentPublic, WordPublic
from appliance.retrieval.chunking import chunk, sentences


def said(start: float, role: str, text: str, *, low: bool = False) -> SegmentPublic:
    pieces = text.split()
    return SegmentPublic(
        start=start,
        end=start + len(pieces) * 0.5,
        speaker="SPEAKER_00" if role == "therapist" else "SPEAKER_01",
        role=role,  # type: ignore[arg-type]
        text=text,
        confidence=0.9,
        low_confidence=low,
        flags=["silence"] if low else [],
        words=[
            WordPublic(start=start + i * 0.5, end=start + i * 0.5 + 0.4, text=w, probability=0.9,
                       overlap=False)
            for i, w in enumerate(pieces)
        ],
    )  # fmt: skip


def test_sentences_are_cut_at_their_end_and_timed_by_their_words() -> None:
    found = list(sentences([said(10.0, "patient", "I walked daily. It rained on Thursday!")]))
    assert [(s.text, s.start, s.end) for s in found] == [
        ("I walked daily.", 10.0, 11.4),
        ("It rained on Thursday!", 11.5, 13.4),
    ]


def test_low_confidence_text_is_never_chunked() -> None:
    chunks = chunk(
        [
            said(0, "therapist", "How was your week?"),
            said(3, "patient", "Thank you for watching.", low=True),
            said(6, "patient", "Better, thanks."),
        ]
    )
    assert [c.text for c in chunks] == ["Therapist: How was your week?\nPatient: Better, thanks."]
    assert (chunks[0].start, chunks[0].end) == (0.0, 6.9)
    assert chunks[0].roles == ("therapist", "patient")


def test_long_conversations_make_bounded_chunks_of_whole_sentences_with_overlap() -> None:
    sentence = "We talked about the walk in the morning and the breathing before bed."  # 14
    turns = [
        said(i * 60.0, "therapist" if i % 2 == 0 else "patient", " ".join([sentence] * 4))
        for i in range(12)
    ]
    chunks = chunk(turns, min_words=100, max_words=300, overlap_words=30)
    assert len(chunks) > 2
    for piece in chunks:
        assert piece.words <= 300
        assert piece.text.endswith(".")  # whole sentences only
    for before, after in itertools.pairwise(chunks):
        assert after.start < before.end  # the next chunk starts inside the previous one
    covered = {round(s, 1) for c in chunks for s in (c.start, c.end)}
    assert 0.0 in covered


def test_a_sentence_longer_than_the_maximum_stands_alone_uncut() -> None:
    long = " ".join(["word"] * 40) + "."
    chunks = chunk([said(0, "patient", "Short one."), said(5, "patient", long)], max_words=20)
    assert [c.words for c in chunks] == [2, 40]
