"""A cited minute of a recording, decrypted on the fly and cut to a small WAV.

Why a cut and not the file: the patient may hear the passage a citation points at, not the
whole session (a therapist may have marked other passages clinical-only), and a browser's range
requests cannot be trusted to stay inside it. The recording is decrypted chunk by chunk in
memory (`DecryptingReader`), PyAV seeks near the start, and only the frames inside the window
are resampled and written; nothing decrypted touches the disk.
"""

from __future__ import annotations

import io
import wave
from typing import Any

from appliance.crypto.keystore import KeyStore
from appliance.crypto.service import patient_cipher
from appliance.crypto.streams import DecryptingReader, FileContext
from appliance.errors import Conflict
from appliance.jobs.runner import recording_path
from appliance.recordings.models import Recording
from appliance.settings import Settings

RATE = 16000  # speech: 16 kHz mono 16-bit is 32 KB a second, a minute under 2 MB
LONGEST = 90.0  # seconds one request may play


def clip_wav(
    settings: Settings, store: KeyStore, recording: Recording, start: float, end: float
) -> bytes:
    """`start`..`end` seconds of `recording` (its own timeline) as 16 kHz mono WAV."""
    import av

    end = min(end, start + LONGEST, recording.duration_seconds)
    cipher = patient_cipher(store, recording.patient_id)
    context = FileContext("recording", recording.id, recording.patient_id)
    samples = bytearray()
    wanted = int((end - start) * RATE) * 2
    try:
        with (
            DecryptingReader(cipher.dek, recording_path(settings, recording), context) as reader,
            av.open(reader, mode="r") as container,
        ):
            stream = container.streams.audio[0]
            if start > 1.0:
                container.seek(int(start * av.time_base), any_frame=False, backward=True)
            resampler = av.AudioResampler(format="s16", layout="mono", rate=RATE)
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    samples += _inside(out, start, len(samples))
                if len(samples) >= wanted:
                    break
    except av.error.FFmpegError:
        raise Conflict("this recording cannot be played; ask your clinic") from None
    return _wav(bytes(samples[:wanted]))


def _inside(frame: Any, start: float, have: int) -> bytes:
    """The part of a resampled frame at or after `start` (frames before it are skipped)."""
    data = bytes(frame.planes[0])[: frame.samples * 2]
    if have or frame.time is None:
        return data
    late = start - float(frame.time)
    if late <= 0:
        return data
    skip = int(late * RATE) * 2
    return data[skip:]


def _wav(pcm: bytes) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(RATE)
        writer.writeframes(pcm)
    return out.getvalue()
