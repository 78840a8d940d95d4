"""The speech pipeline's pure parts: quality guards, word-to-speaker alignment, roles, exports
and the evaluation metrics (no models, no database)."""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np
import pytest

from appliance.errors import Invalid
from appliance.pipeline.align import align, speaker_of, talk_time
from appliance.pipeline.evaluate import diarization_error_rate, read_rttm, word_error_rate
from appliance.pipeline.exports import to_srt, to_text, to_vtt
from appliance.pipeline.guards import flag_segments, has_loop
from appliance.pipeline.roles import assign_roles
from appliance.pipeline.schemas import SegmentPublic, TranscriptPublic
from appliance.pipeline.speech import Segment, SpeakerTurn, Word


def segment(
    text: str,
    start: float = 0.0,
    end: float = 2.0,
    *,
    compression: float = 1.3,
    no_speech: float = 0.05,
    logprob: float = -0.3,
    probability: float = 0.9,
) -> Segment:
    pieces = text.split()
    step = (end - start) / max(len(pieces), 1)
    words = tuple(
        Word(start + i * step, start + (i + 1) * step, piece, probability)
        for i, piece in enumerate(pieces)
    )
    return Segment(start, end, text, words, logprob, compression, no_speech)


def test_ordinary_speech_passes_every_guard() -> None:
    [checked] = flag_segments([segment("I went for a walk every morning this week.")])
    assert not checked.low_confidence
    assert checked.flags == ()


@pytest.mark.parametrize(
    ("text", "kwargs", "flag"),
    [
        ("and then and then and then and then we", {}, "repetition"),
        ("okay okay okay okay okay", {}, "repetition"),
        ("we talked about it at length", {"compression": 2.9}, "repetition"),
        ("Thank you for watching.", {"no_speech": 0.45}, "silence"),
        ("so what I mean", {"no_speech": 0.8, "logprob": -1.3}, "silence"),
        ("mumbled words here", {"logprob": -1.4}, "uncertain"),
        ("mumbled words here", {"probability": 0.2}, "uncertain"),
    ],
)
def test_loops_silence_and_guesswork_are_marked_low_confidence(
    text: str, kwargs: dict[str, float], flag: str
) -> None:
    [checked] = flag_segments([segment(text, **kwargs)])
    assert checked.low_confidence
    assert flag in checked.flags


def test_short_real_repetitions_are_not_loops() -> None:
    assert not has_loop(["no", "no", "no", "I", "did", "not"])
    assert not has_loop(["I", "think", "I", "think", "so"])
    assert has_loop(["I", "think", "so", "I", "think", "so", "I", "think", "so"])


def test_the_same_sentence_again_and_again_is_a_loop_across_segments() -> None:
    line = "we will talk about it next week"
    checked = list(flag_segments([segment(line), segment(line, 2, 4), segment("Bye now.", 4, 5)]))
    assert [s.low_confidence for s in checked] == [False, True, False]
    assert "repeated_segment" in checked[1].flags


TURNS = [
    SpeakerTurn(0.0, 2.0, "A"),
    SpeakerTurn(1.8, 4.0, "B"),
    SpeakerTurn(6.0, 7.0, "A"),
]


def test_a_word_belongs_to_the_speaker_who_covers_most_of_it() -> None:
    assert speaker_of(Word(0.5, 1.0, "hi", 0.9), TURNS) == ("A", False, True)
    assert speaker_of(Word(1.85, 2.4, "yes", 0.9), TURNS) == ("B", False, True)


def test_a_word_in_overlapping_speech_is_marked_and_given_to_the_dominant_speaker() -> None:
    speaker, overlapped, voiced = speaker_of(Word(1.7, 2.05, "mm", 0.9), TURNS)
    assert (speaker, overlapped, voiced) == ("A", True, True)


def test_a_word_between_turns_goes_to_the_nearest_turn_within_a_second() -> None:
    assert speaker_of(Word(4.2, 4.5, "so", 0.9), TURNS) == ("B", False, False)
    assert speaker_of(Word(5.2, 5.5, "um", 0.9), TURNS) == ("A", False, False)
    assert speaker_of(Word(10.0, 10.5, "far", 0.9), TURNS) == (None, False, False)


def test_a_segment_spoken_by_two_people_splits_into_two_utterances() -> None:
    utterances = align([segment("how are you fine thanks", 0.0, 3.0)], TURNS)
    assert [(u.speaker, u.text) for u in utterances] == [
        ("A", "how are you"),
        ("B", "fine thanks"),
    ]
    assert talk_time(utterances) == pytest.approx({"A": 1.8, "B": 1.2})


def test_text_where_no_voice_was_heard_is_low_confidence() -> None:
    [heard, invented] = align(
        [segment("hello there", 0.0, 1.0), segment("Thanks for watching", 8.5, 9.5)], TURNS
    )
    assert not heard.low_confidence
    assert invented.low_confidence
    assert "no_voice" in invented.flags


def test_the_speaker_most_like_the_enrolled_voice_is_the_therapist() -> None:
    therapist = np.asarray([1.0, 0.0])
    prints = {"A": np.asarray([0.2, 0.98]), "B": np.asarray([0.97, 0.1])}
    roles = {r.speaker: r for r in assign_roles(TURNS, prints, therapist, 0.72)}
    assert roles["B"].role == "therapist"
    assert roles["B"].source == "voiceprint"
    assert roles["A"].role == "patient"
    assert 0.6 <= roles["B"].confidence <= 1.0


def test_without_a_similar_enough_voice_roles_are_a_low_confidence_guess() -> None:
    therapist = np.asarray([1.0, 0.0])
    prints = {"A": np.asarray([0.6, 0.8]), "B": np.asarray([0.5, 0.86])}
    roles = assign_roles(TURNS, prints, therapist, 0.72)
    assert {r.source for r in roles} == {"talk_time"}
    assert {r.confidence for r in roles} == {0.5}
    assert [r.role for r in roles] == ["patient", "therapist"]  # A talked most
    assert assign_roles([], {}, None, 0.72) == []


def _transcript() -> TranscriptPublic:
    def seg(start: float, end: float, role: str, text: str, low: bool = False) -> SegmentPublic:
        return SegmentPublic(
            start=start,
            end=end,
            speaker="SPEAKER_00" if role == "therapist" else "SPEAKER_01",
            role=role,  # type: ignore[arg-type]
            text=text,
            confidence=0.9,
            low_confidence=low,
            flags=["silence"] if low else [],
            words=[],
        )

    return TranscriptPublic(
        session_id=uuid.uuid4(),
        language="en",
        duration=3725.0,
        models=["fake"],
        speakers=[],
        segments=[
            seg(0.0, 2.5, "therapist", "How was <the> week?"),
            seg(3.0, 3725.25, "patient", "Better & calmer."),
            seg(3725.3, 3725.9, "patient", "Thanks for watching.", low=True),
        ],
    )


def test_webvtt_export_has_voices_escaped_text_and_hour_timestamps() -> None:
    vtt = to_vtt(_transcript())
    assert vtt.startswith("WEBVTT\n\n1\n00:00:00.000 --> 00:00:02.500\n")
    assert "<v Therapist>How was &lt;the&gt; week?" in vtt
    assert "00:00:03.000 --> 01:02:05.250\n<v Patient>Better &amp; calmer." in vtt
    assert "<v Patient>[unclear] Thanks for watching." in vtt


def test_srt_and_text_exports_name_speakers_and_mark_unclear_passages() -> None:
    srt = to_srt(_transcript())
    assert "1\n00:00:00,000 --> 00:00:02,500\nTherapist: How was <the> week?\n" in srt
    text = to_text(_transcript())
    assert text.startswith("[00:00:00] Therapist:\nHow was <the> week?\n\n[00:00:03] Patient:")
    assert "[unclear] Thanks for watching." in text


def test_word_error_rate_ignores_case_and_punctuation() -> None:
    assert word_error_rate("Hello, World!", "hello world")["wer"] == 0.0
    scored = word_error_rate("we went for a walk", "we want for walk")
    assert (scored["wer"], scored["substitutions"], scored["deletions"]) == (0.4, 1, 1)
    with pytest.raises(Invalid):
        word_error_rate("...", "anything")


def test_diarization_error_rate_counts_confusion_and_ignores_label_names() -> None:
    reference = [(0.0, 10.0, "alice"), (10.0, 20.0, "bob")]
    assert diarization_error_rate(reference, [(0, 10, "X"), (10, 20, "Y")])["der"] == 0.0
    swapped_half = diarization_error_rate(reference, [(0, 15, "X"), (15, 20, "Y")])
    assert swapped_half["der"] == pytest.approx(0.25)
    assert swapped_half["confusion"] == pytest.approx(0.25)
    assert diarization_error_rate(reference, [])["missed"] == pytest.approx(1.0)


def test_rttm_files_are_read_and_bad_ones_refused(tmp_path: Path) -> None:
    good = tmp_path / "good.rttm"
    good.write_text("SPEAKER s 1 0.50 1.25 <NA> <NA> spk1 <NA> <NA>\n")
    assert read_rttm(good) == ([(0.5, 1.75, "spk1")], "s")
    bad = tmp_path / "bad.rttm"
    bad.write_text("SPEAKER s 1 zero one <NA> <NA> spk1\n")
    with pytest.raises(Invalid, match="line 1"):
        read_rttm(bad)
    empty = tmp_path / "empty.rttm"
    empty.write_text("# nothing\n")
    with pytest.raises(Invalid, match="no SPEAKER"):
        read_rttm(empty)


def test_the_batched_decoder_runs_only_where_the_vad_can_cut_the_audio(tmp_path: Path) -> None:
    from appliance.pipeline.whisper import ModelMissing, WhisperTranscriber
    from appliance.settings import TranscriptionSettings

    def made(**options: object) -> WhisperTranscriber:
        return WhisperTranscriber(tmp_path, TranscriptionSettings(device="cpu", **options))  # type: ignore[arg-type]

    assert made().batched
    assert made().compute_type == "int8"
    assert not made(batched=False).batched
    assert not made(vad_filter=False).batched
    assert (
        WhisperTranscriber(tmp_path, TranscriptionSettings(device="cuda")).compute_type == "float16"
    )
    with pytest.raises(ModelMissing, match="appliance models install"):
        made().model()  # an empty folder: a clear error, never a download
