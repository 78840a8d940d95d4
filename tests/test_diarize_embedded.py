"""The embedded diarizer (silero VAD + resemblyzer) and the voiceprint encoder it shares.

The model tests run the packaged weights on pyannote's shipped sample (two real speakers,
30 s, with a reference RTTM) and on a Piper monologue, so they measure the real thing; the
rest check the numeric helpers on made-up embeddings.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from appliance.pipeline.diarize_clustering import (
    ClusterSettings,
    absorb_short_runs,
    majority_filter,
    speaker_centroids,
)
from appliance.pipeline.diarize_embedded import EmbeddedDiarizer
from appliance.pipeline.speech import SAMPLE_RATE, SpeakerTurn

REPO = Path(__file__).resolve().parent.parent
MODELS = REPO / "models"
PIPER = MODELS / "piper-joe-us" / "en_US-joe-medium.onnx"


def _pyannote_sample() -> Path:
    import pyannote.audio

    return Path(pyannote.audio.__file__).parent / "sample"


@pytest.fixture(scope="module")
def sample() -> np.ndarray:
    from faster_whisper import decode_audio

    audio = decode_audio(str(_pyannote_sample() / "sample.wav"), sampling_rate=SAMPLE_RATE)
    return np.asarray(audio, dtype=np.float32)


@pytest.fixture(scope="module")
def diarizer() -> EmbeddedDiarizer:
    return EmbeddedDiarizer(MODELS)


def _cut(audio: np.ndarray, *spans: tuple[float, float]) -> np.ndarray:
    pause = np.zeros(SAMPLE_RATE // 2, dtype=np.float32)
    pieces = [audio[int(a * SAMPLE_RATE) : int(b * SAMPLE_RATE)] for a, b in spans]
    return np.concatenate([x for piece in pieces for x in (piece, pause)])


@pytest.mark.model
def test_the_sample_recording_is_diarized_within_15_percent_der(
    diarizer: EmbeddedDiarizer,
    sample: np.ndarray,
) -> None:
    from appliance.pipeline.evaluate import diarization_error_rate, read_rttm

    reference, _ = read_rttm(_pyannote_sample() / "sample.rttm")
    seen: list[float] = []
    turns = diarizer.diarize(sample, progress=seen.append)

    hypothesis = [(turn.start, turn.end, turn.speaker) for turn in turns]
    assert diarization_error_rate(reference, hypothesis)["der"] <= 0.15
    assert {t.speaker for t in turns} == {"SPEAKER_00", "SPEAKER_01"}
    assert turns[0].speaker == "SPEAKER_00"  # numbered in order of first appearance
    assert all(isinstance(t, SpeakerTurn) and t.start < t.end for t in turns)
    assert seen == sorted(seen)
    assert seen[-1] == pytest.approx(len(sample) / SAMPLE_RATE)


@pytest.mark.model
def test_one_real_speaker_cut_from_the_sample_is_one_speaker(
    diarizer: EmbeddedDiarizer,
    sample: np.ndarray,
) -> None:
    alone = _cut(sample, (14.75, 17.92), (21.80, 27.80))  # speaker91, no one else
    turns = diarizer.diarize(alone)
    assert turns
    assert {t.speaker for t in turns} == {"SPEAKER_00"}


@pytest.mark.model
def test_a_synthesised_monologue_is_one_speaker(diarizer: EmbeddedDiarizer) -> None:
    if not PIPER.exists():
        pytest.skip("the Piper voice is not installed (appliance models install)")
    from piper import PiperVoice, SynthesisConfig
    from scipy.signal import resample_poly

    voice = PiperVoice.load(str(PIPER))
    text = (
        "I have been sleeping badly since the move. I wake up at three and cannot get back "
        "to sleep. Work is on my mind, mostly the deadlines. I used to keep a journal."
    )
    chunks = voice.synthesize(text, SynthesisConfig(length_scale=1.0))
    parts = []
    for chunk in chunks:
        parts += [chunk.audio_float_array, np.zeros(chunk.sample_rate // 3, dtype=np.float32)]
    audio = resample_poly(np.concatenate(parts), SAMPLE_RATE, voice.config.sample_rate)

    turns = diarizer.diarize(audio.astype(np.float32))
    assert sum(t.end - t.start for t in turns) > 5.0
    assert {t.speaker for t in turns} == {"SPEAKER_00"}


@pytest.mark.model
def test_silence_and_empty_audio_yield_no_turns(diarizer: EmbeddedDiarizer) -> None:
    rng = np.random.default_rng(0)
    hiss = (rng.normal(0, 1e-4, 5 * SAMPLE_RATE)).astype(np.float32)
    seen: list[float] = []
    assert diarizer.diarize(hiss, progress=seen.append) == []
    assert seen[-1] == pytest.approx(5.0)
    assert diarizer.diarize(np.zeros(0, dtype=np.float32)) == []


@pytest.mark.model
def test_a_voiceprint_is_closer_to_the_same_voice_than_to_another(sample: np.ndarray) -> None:
    from appliance.pipeline.voiceprint import ResemblyzerEncoder, similarity

    encoder = ResemblyzerEncoder(MODELS)
    first = encoder.embed(_cut(sample, (21.80, 24.80)))  # speaker91
    again = encoder.embed(_cut(sample, (24.80, 27.80), (14.75, 17.92)))  # speaker91 later
    other = encoder.embed(_cut(sample, (11.05, 14.45), (18.62, 21.49)))  # speaker90

    assert first.shape == (256,)
    assert np.linalg.norm(first) == pytest.approx(1.0, abs=1e-5)
    assert similarity(first, again) > similarity(first, other)
    assert similarity(again, first) > similarity(again, other)


def test_similarity_is_the_cosine_of_two_voiceprints() -> None:
    from appliance.pipeline.voiceprint import similarity

    assert similarity([1.0, 0.0], [2.0, 0.0]) == pytest.approx(1.0)
    assert similarity([1.0, 0.0], [0.0, 3.0]) == pytest.approx(0.0)
    assert similarity([0.0, 0.0], [1.0, 0.0]) == 0.0


# Two made-up, clearly different "voices" (cosine similarity about 0.4).
VOICE_A = np.array([1.0] * 36 + [0.1] * 28)
VOICE_B = np.array([0.1] * 28 + [1.0] * 36)


def _voices(rng: np.random.Generator, centres: list[np.ndarray], each: int) -> np.ndarray:
    rows = [c + rng.normal(0, 0.05, (each, len(c))) for c in centres]
    points: np.ndarray = np.concatenate(rows).astype(np.float32)
    points /= np.linalg.norm(points, axis=1, keepdims=True)
    return points


def test_clustering_finds_one_voice_as_one_speaker_and_two_as_two() -> None:
    rng = np.random.default_rng(1)
    one = _voices(rng, [VOICE_A], 60)
    two = _voices(rng, [VOICE_A, VOICE_B], 40)
    usable = np.ones(len(one), dtype=bool)

    assert len(speaker_centroids(one, usable, max_speakers=4, settings=ClusterSettings())) == 1
    found = speaker_centroids(two, np.ones(80, bool), max_speakers=4, settings=ClusterSettings())
    assert len(found) == 2
    capped = speaker_centroids(two, np.ones(80, bool), max_speakers=1, settings=ClusterSettings())
    assert len(capped) == 1


def test_clustering_caps_the_points_it_compares_pairwise() -> None:
    rng = np.random.default_rng(2)
    many = _voices(rng, [VOICE_A, VOICE_B], 3000)  # 6000 windows: a full matrix would be 288 MB
    settings = ClusterSettings(max_points=500)
    assert len(speaker_centroids(many, np.ones(6000, bool), max_speakers=4, settings=settings)) == 2


def test_smoothing_removes_flicker_but_keeps_a_clear_short_answer() -> None:
    labels = np.array([0] * 20 + [1] * 2 + [0] * 20 + [1] * 8 + [0] * 20, dtype=np.int64)
    assert majority_filter(labels, 5, 2)[20:22].tolist() == [0, 0]

    scores = np.zeros((len(labels), 2), dtype=np.float32)
    scores[np.arange(len(labels)), labels] = 1.0
    no_pauses = np.zeros(len(labels), dtype=bool)
    no_pauses[0] = True
    merged = absorb_short_runs(labels, scores, 10, no_pauses)
    assert set(merged.tolist()) == {0}

    pauses = no_pauses.copy()
    pauses[[42, 50]] = True  # the 8-frame answer is a voiced region of its own
    kept = absorb_short_runs(labels, scores * 3, 10, pauses)
    assert kept[42:50].tolist() == [1] * 8
    assert kept[20:22].tolist() == [0, 0]


def test_importing_the_diarizer_does_not_import_model_libraries() -> None:
    code = (
        "import sys, appliance.pipeline.diarize_embedded, appliance.pipeline.voiceprint;"
        "print(','.join(m for m in ('torch', 'resemblyzer', 'silero_vad', 'sklearn', 'librosa')"
        " if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == ""
