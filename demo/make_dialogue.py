"""Make the demo and test session: a short therapy-like dialogue in two very different voices.

The therapist speaks with the packaged Piper voice (joe, US English), the patient with
espeak-ng (a female US English variant), so the diarizer has two real voices to separate and
the roles are known. Writes, next to this script:

  dialogue.ogg         the session (16 kHz mono Ogg Vorbis, ~60 s)
  dialogue.rttm        who spoke when (voiced part of each line, from the audio itself)
  dialogue.txt         what was said (the WER reference)
  dialogue.roles       speaker label -> role
  therapist-voice.ogg  a separate recording of the therapist, for voice enrolment

Needs espeak-ng and sox (Debian packages) and `appliance models install` (for Piper); run
from the repository root:  .venv/bin/python demo/make_dialogue.py
"""

from __future__ import annotations

import functools
import io
import subprocess
import wave
from pathlib import Path
from typing import Any

import numpy as np

RATE = 16000
HERE = Path(__file__).parent
MODELS = HERE.parent / "models" / "piper-joe-us"
PATIENT_VOICE = ["-v", "en-us+f3", "-s", "150", "-p", "60"]
GAP = 0.6  # seconds between lines

LINES = [
    ("therapist", "Welcome back. How did the week go?"),
    ("patient", "It was better than the last one. I slept a little more, and I felt calmer."),
    ("therapist", "That is good to hear. Last week we agreed on some homework."),
    (
        "patient",
        "Yes. I went for a ten minute walk every morning, and I wrote down one good thing "
        "each evening. I missed the walk on Thursday because it rained.",
    ),
    ("therapist", "Missing one day is fine. What did you notice when you wrote things down?"),
    (
        "patient",
        "I noticed that small things count. A friend called me, and my sister sent a photo "
        "of her garden.",
    ),
    (
        "therapist",
        "Let us keep the walks, and add five minutes of slow breathing before bed. "
        "We will talk about it next Tuesday.",
    ),
    ("patient", "Okay. Breathing before bed, and the walks. I can do that."),
]
ENROLMENT = (
    "This is my voice for the clinic appliance. I am reading a few sentences so that the "
    "system can recognise me in my sessions. The quick brown fox jumps over the lazy dog."
)


@functools.cache
def _voice() -> Any:
    from piper import PiperVoice

    return PiperVoice.load(
        MODELS / "en_US-joe-medium.onnx", config_path=MODELS / "en_US-joe-medium.onnx.json"
    )


def piper(text: str) -> np.ndarray:
    voice = _voice()
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        voice.synthesize_wav(text, out)
    return _resample(buffer.getvalue())


def espeak(text: str) -> np.ndarray:
    wav = subprocess.run(
        ["espeak-ng", *PATIENT_VOICE, "--stdout", text], check=True, capture_output=True
    ).stdout
    return _resample(wav)


def _resample(wav_bytes: bytes) -> np.ndarray:
    """Any WAV -> 16 kHz mono float32 peaking at -3 dBFS (no clipping), through sox."""
    raw = subprocess.run(
        [
            "sox",
            "-t",
            "wav",
            "-",
            "-t",
            "raw",
            "-r",
            str(RATE),
            "-c",
            "1",
            "-e",
            "floating-point",
            "-b",
            "32",
            "-",
        ],
        input=wav_bytes,
        check=True,
        capture_output=True,
    ).stdout
    audio = np.frombuffer(raw, dtype=np.float32)
    return audio * (0.7 / max(float(np.abs(audio).max()), 1e-6))


def voiced_bounds(audio: np.ndarray, frame: int = 160) -> tuple[float, float]:
    """First and last 10 ms frame louder than -40 dBFS (TTS pads lines with silence)."""
    frames = audio[: len(audio) // frame * frame].reshape(-1, frame)
    loud = np.flatnonzero(np.sqrt((frames**2).mean(axis=1)) > 0.01)
    return loud[0] * frame / RATE, (loud[-1] + 1) * frame / RATE


def write_ogg(audio: np.ndarray, path: Path) -> None:
    pcm = (np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes()
    subprocess.run(
        [
            "sox",
            "-t",
            "raw",
            "-r",
            str(RATE),
            "-c",
            "1",
            "-e",
            "signed-integer",
            "-b",
            "16",
            "-",
            "-C",
            "2",
            str(path),
        ],
        input=pcm,
        check=True,
    )


def main() -> None:
    speakers = {"therapist": "THERAPIST", "patient": "PATIENT"}
    pieces, rttm, clock = [np.zeros(int(0.5 * RATE), dtype=np.float32)], [], 0.5
    for role, text in LINES:
        audio = piper(text) if role == "therapist" else espeak(text)
        start, end = voiced_bounds(audio)
        rttm.append(
            f"SPEAKER dialogue 1 {clock + start:.3f} {end - start:.3f} <NA> <NA> "
            f"{speakers[role]} <NA> <NA>"
        )
        pieces += [audio, np.zeros(int(GAP * RATE), dtype=np.float32)]
        clock += len(audio) / RATE + GAP
    write_ogg(np.concatenate(pieces), HERE / "dialogue.ogg")
    (HERE / "dialogue.rttm").write_text("\n".join(rttm) + "\n")
    (HERE / "dialogue.txt").write_text("\n".join(text for _, text in LINES) + "\n")
    (HERE / "dialogue.roles").write_text(
        "".join(f"{label} {role}\n" for role, label in speakers.items())
    )
    write_ogg(piper(ENROLMENT), HERE / "therapist-voice.ogg")


if __name__ == "__main__":
    main()
